"""A project's own plots (``report.plots``) as images mlci will publish: PNG, checked chunk
by chunk and rebuilt with only the chunks an image needs; SVG, parsed (no DTD, no entity)
and rebuilt from an allowlist of elements and attributes (an SVG can carry script, links
and requests). Everything else, and anything past the limits, is refused with a reason.
Pure: bytes in, bytes out. Used where the training writes its plots and again, as hostile
input, in every job that publishes them (a fork's artifact)."""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

MAX_BYTES = 5 * 1024 * 1024  # of one image as written
MAX_SIDE = 8192  # pixels (a PNG), or user units (an SVG's width, height, viewBox)
MAX_PIXELS = 25_000_000  # of a PNG: its decompressed rows are held once, to check them
MAX_PLOTS = 20  # report.plots entries
SUFFIXES = {".png": "image/png", ".svg": "image/svg+xml"}
PLOTS_TAG = "mlci.plots"  # a run's report.plots: [{"name", "sha256"}], its files mlci-plot-<name>
PLOT_PREFIX = "mlci-plot-"  # a plot's file among the run's artifacts
# A plot's file name wherever mlci stores or reads one back (an asset, an artifact, a bundle).
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}"


class BadImage(ValueError):
    """Not an image mlci publishes: the message says why."""


@dataclass(frozen=True)
class Image:
    name: str  # the file's name, as report.plots gives it
    data: bytes  # the checked, rebuilt bytes
    content_type: str
    width: float
    height: float

    @property
    def sha256(self) -> str:
        import hashlib

        return hashlib.sha256(self.data).hexdigest()


def checked(name: str, data: bytes) -> Image:
    """``data`` (the file ``name``) checked and rebuilt, or ``BadImage``."""
    suffix = name[name.rfind(".") :].lower() if "." in name else ""
    if suffix not in SUFFIXES:
        raise BadImage(f"{name}: only .png and .svg plots are published")
    if len(data) > MAX_BYTES:
        raise BadImage(f"{name}: {len(data):,} bytes, more than {MAX_BYTES:,}")
    if suffix == ".png":
        rebuilt, pixels_wide, pixels_high = png(data)
        return Image(name, rebuilt, SUFFIXES[suffix], float(pixels_wide), float(pixels_high))
    rebuilt, width, height = svg(data)
    return Image(name, rebuilt, SUFFIXES[suffix], width, height)


# --------------------------------------------------------------------------- PNG

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_KEPT = {b"PLTE", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"pHYs"}  # with IHDR, IDAT and IEND
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _raw_size(width: int, height: int, bits_per_pixel: int, interlaced: bool) -> int:
    """The bytes of the decompressed image data: each row's filter byte and its pixels."""

    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + (w * bits_per_pixel + 7) // 8)

    if not interlaced:
        return rows(width, height)
    return sum(
        rows(
            (width - x0 + dx - 1) // dx if width > x0 else 0,
            (height - y0 + dy - 1) // dy if height > y0 else 0,
        )
        for x0, y0, dx, dy in _ADAM7
    )


def png(data: bytes) -> tuple[bytes, int, int]:
    """A PNG checked (its signature, every chunk's length and CRC, the header's fields, the
    decompressed data's exact size) and rebuilt with its image chunks only: text, EXIF and
    any other ancillary chunk is dropped. Returns the bytes, the width and the height."""
    if not data.startswith(_SIGNATURE):
        raise BadImage("not a PNG (no PNG signature)")
    at, chunks = len(_SIGNATURE), []
    while True:
        if at + 12 > len(data):
            raise BadImage("a PNG chunk is cut short")
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        end = at + 12 + length
        if length > len(data) or end > len(data):
            raise BadImage(f"PNG chunk {kind!r} runs past the end of the file")
        body, crc = data[at + 8 : at + 8 + length], data[at + 8 + length : end]
        if not re.fullmatch(rb"[A-Za-z]{4}", kind):
            raise BadImage("a PNG chunk has a malformed type")
        if struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF) != crc:
            raise BadImage(f"PNG chunk {kind.decode()} fails its CRC")
        chunks.append((kind, body, data[at:end]))
        at = end
        if kind == b"IEND":
            break
    if at != len(data):
        raise BadImage("bytes after the PNG's end (IEND)")
    kinds = [k for k, _, _ in chunks]
    if kinds[0] != b"IHDR" or len(chunks[0][1]) != 13:
        raise BadImage("the PNG does not start with its header (IHDR)")
    width, height, depth, colour, compression, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE) or width * height > MAX_PIXELS:
        raise BadImage(f"a PNG of {width}x{height} pixels, beyond {MAX_SIDE} a side or {MAX_PIXELS:,} in all")
    if colour not in _DEPTHS or depth not in _DEPTHS[colour] or compression or filtering or interlace > 1:
        raise BadImage("the PNG's header has values no PNG decoder accepts")
    unknown = [k for k in kinds if k[:1].isupper() and k not in (b"IHDR", b"PLTE", b"IDAT", b"IEND")]
    if unknown or kinds.count(b"IHDR") != 1 or b"IDAT" not in kinds:
        raise BadImage("the PNG's chunks are not those of an image (IHDR, IDAT ... IEND)")
    first, last = kinds.index(b"IDAT"), len(kinds) - 1 - kinds[::-1].index(b"IDAT")
    if any(k != b"IDAT" for k in kinds[first : last + 1]):
        raise BadImage("the PNG's image data (IDAT) is not in one run")
    if colour == 3 and b"PLTE" not in kinds[:first]:
        raise BadImage("a palette PNG without its palette (PLTE)")
    expected = _raw_size(width, height, depth * _CHANNELS[colour], interlace == 1)
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(b"".join(b for k, b, _ in chunks if k == b"IDAT"), expected + 1)
    except zlib.error as exc:
        raise BadImage(f"the PNG's image data does not decompress ({exc})") from None
    if len(raw) != expected or not inflate.eof:
        raise BadImage("the PNG's image data is not the size its header says")
    kept = [whole for k, _, whole in chunks if k in (b"IHDR", b"IDAT", b"IEND") or k in _KEPT]
    return _SIGNATURE + b"".join(kept), width, height


# --------------------------------------------------------------------------- SVG

_SVG = "http://www.w3.org/2000/svg"
_XLINK = "http://www.w3.org/1999/xlink"
_ELEMENTS = {
    "svg", "g", "defs", "title", "desc", "path", "rect", "circle", "ellipse", "line", "polyline",
    "polygon", "text", "tspan", "use", "symbol", "clipPath", "mask", "linearGradient",
    "radialGradient", "stop", "pattern", "marker",
}  # fmt: skip
_ATTRIBUTES = {
    "id", "class", "x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "rx", "ry", "width", "height",
    "d", "points", "transform", "viewBox", "preserveAspectRatio", "fill", "fill-opacity", "fill-rule",
    "stroke", "stroke-width", "stroke-opacity", "stroke-linecap", "stroke-linejoin", "stroke-dasharray",
    "stroke-dashoffset", "stroke-miterlimit", "opacity", "font-family", "font-size", "font-weight",
    "font-style", "text-anchor", "dominant-baseline", "alignment-baseline", "dx", "dy", "rotate",
    "clip-path", "clip-rule", "clipPathUnits", "mask", "maskUnits", "style", "href", "offset",
    "stop-color", "stop-opacity", "gradientUnits", "gradientTransform", "fx", "fy", "spreadMethod",
    "patternUnits", "patternTransform", "markerWidth", "markerHeight", "refX", "refY", "orient",
    "markerUnits", "marker-start", "marker-mid", "marker-end", "version", "visibility", "display",
    "letter-spacing", "word-spacing", "text-decoration", "color", "vector-effect", "shape-rendering",
    "text-rendering", "paint-order", "baseline-shift", "textLength", "lengthAdjust",
}  # fmt: skip
_LOCAL_URL = re.compile(r"url\(\s*#[\w.:-]+\s*\)")
_STYLE = re.compile(r"[\w\s:;#.,%()+\-/]*")
_NUMBER = re.compile(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(px|pt)?\s*")


def _safe_value(name: str, value: str) -> bool:
    """A value that neither runs nor fetches: a link only within the image (``#id``), a
    ``url()`` only of an element of it, and a style of plain declarations."""
    if len(value) > 100_000:
        return False
    lowered = value.lower()
    if name == "href":
        return value.startswith("#")
    if "url(" in lowered and _LOCAL_URL.sub("", lowered).count("url(") > 0:
        return False
    if name == "style":
        stripped = _LOCAL_URL.sub("", value)
        return bool(_STYLE.fullmatch(stripped)) and not any(
            w in lowered for w in ("expression", "import", "\\")
        )
    return "javascript:" not in lowered and "data:" not in lowered


def _size(value: str | None) -> float | None:
    if value is None:
        return None
    match = _NUMBER.fullmatch(value)
    if match is None:
        return None
    return float(match[1])


def svg(data: bytes) -> tuple[bytes, float, float]:
    """An SVG parsed (no DOCTYPE: no DTD, no entity, nothing fetched) and rebuilt from an
    allowlist: drawing elements only (no script, foreignObject, image, link, style, animation),
    their presentation attributes (no event handler), links only within the image. Its size
    (width, height, or the viewBox) must be given and within bounds."""
    import xml.etree.ElementTree as ET

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadImage("the SVG is not UTF-8 text") from None
    if re.search(r"<!(DOCTYPE|ENTITY)", text, re.IGNORECASE):
        raise BadImage("the SVG declares a DOCTYPE or an entity, which mlci never expands")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise BadImage(f"the SVG does not parse as XML ({exc})") from None
    if root.tag != f"{{{_SVG}}}svg":
        raise BadImage("the file's root element is not an SVG <svg> element")

    def local(name: str) -> tuple[str | None, str]:
        if name.startswith("{"):
            space, _, bare = name[1:].partition("}")
            return space, bare
        return None, name

    def clean(element: ET.Element) -> ET.Element:
        out = ET.Element(element.tag)
        for name, value in element.attrib.items():
            space, bare = local(name)
            if space == _XLINK and bare == "href":
                space = None
            if space is not None and space != "http://www.w3.org/XML/1998/namespace":
                continue
            if space is None and (bare not in _ATTRIBUTES or not _safe_value(bare, value)):
                continue
            out.set(bare if space is None else name, value)
        out.text, out.tail = element.text, element.tail
        for child in element:
            space, bare = local(child.tag)
            if space == _SVG and bare in _ELEMENTS:
                out.append(clean(child))
            elif child.tail:  # the text after a dropped element stays
                out.text = (out.text or "") + child.tail
        return out

    cleaned = clean(root)
    box = (root.get("viewBox") or "").replace(",", " ").split()
    width, height = _size(root.get("width")), _size(root.get("height"))
    if (width is None or height is None) and len(box) == 4:
        try:
            width, height = float(box[2]), float(box[3])
        except ValueError:
            width = height = None
    if width is None or height is None or not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise BadImage(f"the SVG's size (width and height, or viewBox) is missing or beyond {MAX_SIDE}")
    ET.register_namespace("", _SVG)
    rebuilt = ET.tostring(cleaned, encoding="utf-8", xml_declaration=True)
    return rebuilt, width, height
