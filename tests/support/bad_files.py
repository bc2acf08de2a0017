"""Files a new user may hand the CLI or the batch client by mistake."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def bomb_png(path: Path, side: int = 30000) -> Path:
    """A tiny file whose PNG header declares side x side pixels (PIL refuses to open over ~179 Mpx)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path
