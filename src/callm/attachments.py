"""`-a FILE` / `-a -`: read attachments, tell their type from their bytes (never the name),
read image sizes and PDF page counts for estimates, and refuse what a model cannot take."""

from __future__ import annotations

import math
import re
import struct
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from callm.errors import UsageError
from callm.types import Attachment

if TYPE_CHECKING:
    from callm.endpoints import Target

KINDS = "png, jpeg, webp, gif images, PDF and UTF-8 text"


def sniff(data: bytes) -> str | None:
    """The MIME type from magic bytes; text/plain for UTF-8 without NULs; None otherwise."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:1024].lstrip().startswith(b"%PDF-"):
        return "application/pdf"
    if b"\x00" in data:
        return None
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return "text/plain"


def image_size(data: bytes, mime: str) -> tuple[int, int] | None:
    """(width, height) from the image header; None when it cannot be read."""
    try:
        if mime == "image/png":
            return struct.unpack(">II", data[16:24])
        if mime == "image/gif":
            return struct.unpack("<HH", data[6:10])
        if mime == "image/webp":
            return _webp_size(data)
        if mime == "image/jpeg":
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8X":
        w = int.from_bytes(data[24:27], "little") + 1
        h = int.from_bytes(data[27:30], "little") + 1
        return w, h
    if chunk == b"VP8L":
        b = int.from_bytes(data[21:25], "little")
        return (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
            i += 1 if marker == 0xFF else 2
            continue
        (length,) = struct.unpack(">H", data[i + 2 : i + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5 : i + 9])
            return w, h
        i += 2 + length
    return None


def pdf_pages(data: bytes) -> int:
    """Page objects in the file (a rough count; at least 1)."""
    return max(1, len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", data)))


def load(arg: str, stdin: object = None) -> Attachment:
    """One `-a` argument: a path, or `-` for stdin's bytes."""
    if arg == "-":
        stream = getattr(stdin or sys.stdin, "buffer", None)
        if stream is None:
            raise UsageError("-a - wants the attachment on stdin, but stdin is closed")
        data, name = stream.read(), "stdin"
    else:
        try:
            data, name = Path(arg).expanduser().read_bytes(), Path(arg).name
        except OSError as exc:
            raise UsageError(f"cannot read attachment {arg}: {exc.strerror or exc}") from None
    if not data:
        raise UsageError(f"attachment {name} is empty")
    mime = sniff(data)
    if mime is None:
        raise UsageError(f"attachment {name}: unsupported file type", hint=f"callm takes {KINDS}")
    size = image_size(data, mime) if mime.startswith("image/") else None
    pages = pdf_pages(data) if mime == "application/pdf" else None
    return Attachment(
        name=name,
        mime=mime,
        data=data,
        width=size[0] if size else None,
        height=size[1] if size else None,
        pages=pages,
    )


def check_model(target: Target, attachments: tuple[Attachment, ...]) -> None:
    """Refuse images and PDFs for a model the catalog knows has no vision. An unknown model
    is given the benefit of the doubt (the vendor answers)."""
    binary = [a for a in attachments if a.kind != "text"]
    if not binary or target.config.driver == "sim":
        return
    from callm.catalog.models import lookup

    info = lookup(
        target.provider,
        target.model,
        driver=target.config.driver,
        base_url=target.config.base_url,
    )
    if info is not None and "vision" not in info.capabilities:
        what = "PDFs" if all(a.kind == "pdf" for a in binary) else "images or PDFs"
        raise UsageError(
            f"{target.label} cannot take {what} (catalog: no vision)",
            hint="pick a model with vision: callm models list --capability vision",
        )


# ---- token estimates ------------------------------------------------------------------------


def _openai_image(w: int, h: int) -> int:
    """OpenAI high detail: fit in 2048x2048, shortest side to 768, 170 per 512px tile + 85."""
    scale = min(1.0, 2048 / max(w, h))
    w, h = w * scale, h * scale
    scale = min(1.0, 768 / min(w, h))
    w, h = w * scale, h * scale
    return 85 + 170 * math.ceil(w / 512) * math.ceil(h / 512)


def _anthropic_image(w: int, h: int) -> int:
    """Anthropic: long edge over 1568 px is scaled down; tokens = width * height / 750."""
    scale = min(1.0, 1568 / max(w, h))
    return math.ceil(w * scale * h * scale / 750)


def attachment_tokens(driver: str, att: Attachment) -> int:
    """Input tokens one attachment is likely to cost, by the vendor's documented rule."""
    from callm.pricing import estimate_text_tokens

    if att.kind == "text":
        return estimate_text_tokens(att.data.decode("utf-8", "replace"))
    if att.kind == "pdf":
        per_page = 258 if driver in ("gemini", "sim") else 1500  # Anthropic: 1,500-3,000 a page
        return per_page * (att.pages or 1)
    if driver in ("gemini", "sim"):  # sim counts as Gemini does
        return 258
    w, h = att.width or 1024, att.height or 1024  # unknown size: a typical photo
    return _anthropic_image(w, h) if driver == "anthropic" else _openai_image(w, h)
