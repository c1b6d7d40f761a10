"""Dispatch: a saved batch run across several Forge servers from a durable job queue, every image made exactly once.

Nothing is imported here: SQLAlchemy is loaded only by the queue, so Forge's generation path never pays for it."""
