"""Batches: a planned set of images (prompts, LoRAs, settings) saved as json/txt/csv, and their run state."""
from .formats import BatchFileError, load_batch, save_batch
from .model import Batch, BatchImage, Settings
from .plan import plan_batch
from .state import RunState

__all__ = ["Batch", "BatchFileError", "BatchImage", "RunState", "Settings", "load_batch", "plan_batch", "save_batch"]
