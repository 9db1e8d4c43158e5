"""Attachments as each wire format's content parts, added to the last user message (the
prompt). Sans-IO: plain dicts in, plain dicts out. Images and PDFs go base64-encoded inline;
text files as text, labelled with their name."""

from __future__ import annotations

import re
from typing import Any

from callm.drivers.structured import b64, data_url, text_of
from callm.types import Attachment


def _last_user(items: list[dict[str, Any]], empty: dict[str, Any]) -> dict[str, Any]:
    """The last user message of `items`; `empty` appended when there is none."""
    for item in reversed(items):
        if item.get("role") == "user":
            return item
    items.append(empty)
    return empty


def openai_chat(messages: list[dict[str, Any]], atts: tuple[Attachment, ...]) -> None:
    """Chat Completions: text, image_url (a data URL) and file (file_data) parts."""
    last = _last_user(messages, {"role": "user", "content": ""})
    parts: list[dict[str, Any]] = (
        [{"type": "text", "text": last["content"]}] if last["content"] else []
    )
    for a in atts:
        if a.kind == "image":
            parts.append({"type": "image_url", "image_url": {"url": data_url(a)}})
        elif a.kind == "pdf":
            parts.append({"type": "file", "file": {"filename": a.name, "file_data": data_url(a)}})
        else:
            parts.append({"type": "text", "text": text_of(a)})
    last["content"] = parts


def responses(items: list[dict[str, Any]], atts: tuple[Attachment, ...]) -> None:
    """Responses API: input_text, input_image and input_file parts."""
    last = _last_user(items, {"role": "user", "content": ""})
    parts: list[dict[str, Any]] = []
    if last["content"]:
        parts.append({"type": "input_text", "text": last["content"]})
    for a in atts:
        if a.kind == "image":
            parts.append({"type": "input_image", "image_url": data_url(a), "detail": "auto"})
        elif a.kind == "pdf":
            parts.append({"type": "input_file", "filename": a.name, "file_data": data_url(a)})
        else:
            parts.append({"type": "input_text", "text": text_of(a)})
    last["content"] = parts


def anthropic(messages: list[dict[str, Any]], atts: tuple[Attachment, ...]) -> None:
    """Messages API: image and document blocks first (Anthropic's advice), then the prompt.
    A text file is a document with a plain-text source."""
    last = _last_user(messages, {"role": "user", "content": ""})
    blocks: list[dict[str, Any]] = []
    for a in atts:
        if a.kind == "image":
            src = {"type": "base64", "media_type": a.mime, "data": b64(a)}
            blocks.append({"type": "image", "source": src})
        elif a.kind == "pdf":
            src = {"type": "base64", "media_type": "application/pdf", "data": b64(a)}
            blocks.append({"type": "document", "source": src, "title": a.name})
        else:
            text = a.data.decode("utf-8", "replace")
            src = {"type": "text", "media_type": "text/plain", "data": text}
            blocks.append({"type": "document", "source": src, "title": a.name})
    if last["content"]:
        blocks.append({"type": "text", "text": last["content"]})
    last["content"] = blocks


def gemini(contents: list[dict[str, Any]], atts: tuple[Attachment, ...]) -> None:
    """generateContent: inlineData parts before the prompt of the last user turn."""
    last = _last_user(contents, {"role": "user", "parts": []})
    files: list[dict[str, Any]] = []
    for a in atts:
        if a.kind == "text":
            files.append({"text": text_of(a)})
        else:
            files.append({"inlineData": {"mimeType": a.mime, "data": b64(a)}})
    last["parts"] = files + [p for p in last["parts"] if p.get("text")]


def ollama(messages: list[dict[str, Any]], atts: tuple[Attachment, ...]) -> None:
    """/api/chat: images base64 in `images`; text files join the content. PDFs are refused
    before this (drivers.limits: Ollama takes none)."""
    last = _last_user(messages, {"role": "user", "content": ""})
    texts = [text_of(a) for a in atts if a.kind == "text"]
    if texts:
        last["content"] = "\n\n".join([t for t in [last["content"], *texts] if t])
    images = [b64(a) for a in atts if a.kind == "image"]
    if images:
        last["images"] = images


def bedrock(messages: list[dict[str, Any]], atts: tuple[Attachment, ...]) -> None:
    """Converse: image and document blocks (bytes, base64 in JSON) before the prompt's text.
    A document needs a name of letters, digits, spaces, hyphens and brackets, unique per
    request; text files go as documents of format txt."""
    last = _last_user(messages, {"role": "user", "content": []})
    blocks: list[dict[str, Any]] = []
    names: set[str] = set()
    for a in atts:
        if a.kind == "image":
            fmt = a.mime.removeprefix("image/")
            blocks.append({"image": {"format": fmt, "source": {"bytes": b64(a)}}})
            continue
        name = " ".join(re.sub(r"[^A-Za-z0-9\-()\[\] ]", "-", a.name).split()) or "file"
        while name in names:
            name += "-2"
        names.add(name)
        fmt = "pdf" if a.kind == "pdf" else "txt"
        blocks.append({"document": {"format": fmt, "name": name, "source": {"bytes": b64(a)}}})
    last["content"] = blocks + [b for b in last["content"] if b.get("text")]
