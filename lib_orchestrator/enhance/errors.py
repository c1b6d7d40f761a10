"""The one error of the LLM step (in its own module so that reading templates does not import requests)."""


class LlmError(Exception):
    """A call that gave no usable answer; str() is the reason, recorded with the fallback (so it never
    holds the server's address or key)."""
