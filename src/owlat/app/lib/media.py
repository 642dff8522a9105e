"""Media uploads: what an image file must be before it becomes a `mediaAssets` row.

The file's type is read from its first bytes (`SNIFF_BYTES`), never taken from the client:
PNG, JPEG, GIF or WebP, with its pixel size when the header gives it. SVG is refused (it
can carry scripts), as is anything else. The file name must end in an extension of that
same type and have no executable part (`photo.php.png`); the upload's declared
Content-Type (which the file URL is served with) must be that type too, so a file served
as an image is one.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from owlat.app.lib.errors import invalid

SNIFF_BYTES = 64 * 1024
MAX_FILENAME = 255
MAX_ALT = 1000
MAX_TAGS = 20
MAX_TAG = 50
EXTENSIONS = {
    "image/png": ("png",),
    "image/jpeg": ("jpg", "jpeg"),
    "image/gif": ("gif",),
    "image/webp": ("webp",),
}
_EXECUTABLE = """php php3 php4 php5 phtml phar asp aspx jsp cgi pl py rb sh bash exe dll com bat
cmd msi scr js mjs html htm xhtml shtml svg svgz xml hta jar vbs ps1"""
EXECUTABLE = frozenset(_EXECUTABLE.split())
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ImageInfo:
    mime_type: str
    width: int | None = None
    height: int | None = None


def sniff_image(head: bytes) -> ImageInfo | None:
    """The image type and size of a file that starts with `head`, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return ImageInfo("image/png", width, height)
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        width, height = struct.unpack("<HH", head[6:10])
        return ImageInfo("image/gif", width, height)
    if head.startswith(b"\xff\xd8\xff"):
        return ImageInfo("image/jpeg", *_jpeg_size(head))
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ImageInfo("image/webp", *_webp_size(head))
    return None


def _jpeg_size(head: bytes) -> tuple[int | None, int | None]:
    """The size in the first start-of-frame segment (SOF0–SOF15 but DHT, JPG, DAC)."""
    at = 2
    while at + 9 <= len(head):
        if head[at] != 0xFF:
            return None, None
        marker = head[at + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        (length,) = struct.unpack(">H", head[at + 2 : at + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", head[at + 5 : at + 9])
            return width, height
        at += 2 + length
    return None, None


def _webp_size(head: bytes) -> tuple[int | None, int | None]:
    chunk = head[12:16]
    if chunk == b"VP8 " and len(head) >= 30:
        width, height = struct.unpack("<HH", head[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L" and len(head) >= 25:
        bits = int.from_bytes(head[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(head) >= 30:
        width = int.from_bytes(head[24:27], "little") + 1
        height = int.from_bytes(head[27:30], "little") + 1
        return width, height
    return None, None


def clean_filename(filename: str, image: ImageInfo) -> str:
    """The file name, checked against the image's type (see the module docstring)."""
    name = filename.strip().replace("\\", "/").rsplit("/", 1)[-1]
    if not name or len(name) > MAX_FILENAME or _CONTROL.search(name):
        raise invalid(
            "INVALID_FILENAME",
            f"filename: must be 1 to {MAX_FILENAME} characters without control characters",
        )
    parts = name.lower().split(".")
    allowed = EXTENSIONS[image.mime_type]
    if len(parts) < 2 or parts[-1] not in allowed:
        raise invalid(
            "INVALID_FILENAME",
            f"filename: the file is {image.mime_type}, so its name must end in "
            + " or ".join(f".{e}" for e in allowed),
        )
    risky = [part for part in parts[1:-1] if part in EXECUTABLE]
    if risky:
        raise invalid("INVALID_FILENAME", f"filename: must not contain the extension .{risky[0]}")
    return name


def check_declared_type(declared: str | None, image: ImageInfo) -> None:
    """The upload's Content-Type must be the sniffed type (the file is served with it)."""
    media_type = (declared or "").split(";", 1)[0].strip().lower()
    if media_type != image.mime_type:
        raise invalid(
            "INVALID_FILE_TYPE",
            f"The file is {image.mime_type} but was uploaded as {media_type or 'no type'}: "
            f"upload it with Content-Type: {image.mime_type}",
        )


def clean_alt(alt: str) -> str | None:
    alt = alt.strip()
    if len(alt) > MAX_ALT:
        raise invalid("INVALID_INPUT", f"alt: must be at most {MAX_ALT} characters")
    return alt or None


def clean_tags(tags: list[str]) -> list[str]:
    """Tags trimmed, lower case, distinct; at most `MAX_TAGS` of at most `MAX_TAG` chars."""
    cleaned = list(dict.fromkeys(t.strip().lower() for t in tags if t.strip()))
    if len(cleaned) > MAX_TAGS:
        raise invalid("INVALID_INPUT", f"tags: at most {MAX_TAGS} tags")
    for tag in cleaned:
        if len(tag) > MAX_TAG or _CONTROL.search(tag):
            raise invalid(
                "INVALID_INPUT", f"tags: {tag[:60]!r} is not a tag (at most {MAX_TAG} characters)"
            )
    return cleaned


def searchable_text(filename: str, alt: str | None, tags: list[str]) -> str:
    return "\n".join((filename, alt or "", *tags)).lower()
