"""Full-file and tensor-only SHA-256: slow, so only ever on request."""
from __future__ import annotations

import hashlib
from typing import Optional

CHUNK = 1024 * 1024


def file_sha256(path: str, offset: int = 0) -> str:
    """SHA-256 of the file from `offset` on: 0 for Civitai's SHA256/AutoV2, 8+N for the tensor hash."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(offset)
        while True:
            block = fh.read(CHUNK)
            if not block:
                break
            digest.update(block)
    return digest.hexdigest()


def tensor_sha256(path: str, data_offset: Optional[int]) -> Optional[str]:
    """kohya's `sshs_model_hash` (Civitai AutoV3 is its first 12 characters)."""
    return file_sha256(path, data_offset) if data_offset else None
