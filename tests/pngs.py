"""Small real PNG files for the tests, written with zlib (no imaging library)."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

# A PNG writer a training script can carry (the tests' projects put it in train.py).
WRITER = r"""
import struct
import zlib


def write_png(path, width, height, shade):
    def chunk(kind, body):
        crc = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        return struct.pack(">I", len(body)) + kind + body + crc

    rows = b"".join(b"\x00" + bytes((x + y + shade) % 256 for x in range(width * 3)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
    with open(path, "wb") as handle:
        handle.write(data + chunk(b"IEND", b""))
"""


def chunk(kind: bytes, body: bytes) -> bytes:
    return (
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
    )


def png(
    width: int = 8,
    height: int = 6,
    *,
    colour: int = 2,
    depth: int = 8,
    interlace: int = 0,
    extra: tuple[tuple[bytes, bytes], ...] = (),
    raw: bytes | None = None,
) -> bytes:
    """A valid PNG (RGB, 8 bits, by default) of ``width`` x ``height``; ``extra`` chunks go
    before the image data; ``raw`` replaces the decompressed rows."""
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}[colour]
    if raw is None:
        if interlace:
            from mlci.images import _raw_size

            raw = bytes(_raw_size(width, height, depth * channels, True))
        else:
            row = (width * depth * channels + 7) // 8
            raw = b"".join(b"\x00" + bytes((x * 37 + y) % 256 for x in range(row)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    body = chunk(b"IHDR", header)
    if colour == 3:
        body += chunk(b"PLTE", bytes(range(9)))
    for kind, data in extra:
        body += chunk(kind, data)
    return b"\x89PNG\r\n\x1a\n" + body + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def add_plot(root: Path) -> None:
    """A scaffold's train.py writes confusion.png beside its metrics (a PNG that changes with
    the accuracy), and its mlci.yaml lists it under report.plots."""
    train = root / "train.py"
    text = train.read_text()
    call = '    write_png(out / "confusion.png", 40, 30, int(metrics["accuracy"] * 1000))\n'
    text = text.replace("    print(json.dumps(metrics))", call + "    print(json.dumps(metrics))")
    text = text.replace('\n\nif __name__ == "__main__":', "\n" + WRITER + '\n\nif __name__ == "__main__":')
    assert call in text and "def write_png" in text
    train.write_text(text)
    config = root / "mlci.yaml"
    text = config.read_text()
    assert "report:\n  key_metric: accuracy\n" in text
    config.write_text(
        text.replace(
            "report:\n  key_metric: accuracy\n", "report:\n  key_metric: accuracy\n  plots: [confusion.png]\n"
        )
    )
