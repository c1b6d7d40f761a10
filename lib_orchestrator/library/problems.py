"""What can be wrong with a LoRA or a file beside it: a code and where it was found."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

CORRUPT_HEADER = "corrupt_header"
CORRUPT_SIDECAR = "corrupt_sidecar"
STALE_SIDECAR = "stale_sidecar"
STEM_COLLISION = "stem_collision"
ALIAS_COLLISION = "alias_collision"
DUPLICATE = "duplicate"
EXCLUDED_ARCHITECTURE = "excluded_architecture"
NOT_SAFETENSORS = "not_safetensors"
PARTIAL_DOWNLOAD = "partial_download"
BROKEN_PREVIEW = "broken_preview"
# The file could not be read at all (a broken or looping link, a device, an error no reader expected):
# it is reported and skipped, and the rest of the scan goes on.
UNREADABLE = "unreadable"
# The name cannot be written in a prompt or an infotext (not UTF-8, or a control character such as a
# newline): the LoRA is indexed but never picked.
BAD_NAME = "bad_name"
# A folder entry that leads back to a folder it is inside (`loop -> ..`): Forge's os.walk(followlinks=True)
# walks it again and again until the path is too long; the scan reports it once and does not walk it.
SYMLINK_LOOP = "symlink_loop"

# Trusted sources (Civitai, the user json, the header) disagree on the base model, or contradict the
# tensors: the more trusted one is kept (docs/lora-library.md §3.6) and the user should know.
BASE_MODEL_CONFLICT = "base_model_conflict"

CODES = (CORRUPT_HEADER, CORRUPT_SIDECAR, STALE_SIDECAR, STEM_COLLISION, ALIAS_COLLISION, DUPLICATE,
         EXCLUDED_ARCHITECTURE, NOT_SAFETENSORS, PARTIAL_DOWNLOAD, BROKEN_PREVIEW, UNREADABLE, BAD_NAME,
         SYMLINK_LOOP, BASE_MODEL_CONFLICT)


@dataclass(frozen=True)
class Problem:
    code: str
    file: str  # relative path of the file at fault
    message: str

    def to_dict(self) -> Dict[str, str]:
        return {"code": self.code, "file": self.file, "message": self.message}

    @classmethod
    def from_dict(cls, data: Dict[str, str]) -> "Problem":
        return cls(data["code"], data["file"], data["message"])
