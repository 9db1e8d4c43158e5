"""Incremental framing for Server-Sent Events and NDJSON.

Both decoders take bytes in arbitrary chunks (a network read may split a line, a CRLF pair
or a UTF-8 sequence anywhere) and return complete frames. They never decode text: JSON
parsers take bytes directly, which saves a copy per event.
"""

from __future__ import annotations

from callm.errors import BadResponseError

# A single line longer than this is not a real vendor frame; refuse instead of eating memory.
MAX_LINE_BYTES = 16 * 1024 * 1024


def _split_lines(pending: bytes, chunk: bytes) -> tuple[list[bytes], bytes]:
    """Split pending+chunk into complete lines (LF, CRLF or CR endings) and a remainder."""
    buf = pending + chunk if pending else chunk
    if b"\r" not in buf:
        lines = buf.split(b"\n")
        return lines, lines.pop()
    # A CR at the very end may be the first half of a CRLF split across reads: keep it with
    # the unfinished line, so the next read decides.
    tail = b""
    if buf[-1:] == b"\r":
        buf, tail = buf[:-1], b"\r"
    lines = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
    return lines, lines.pop() + tail


class _LongLine:
    """The later pieces of a line that spans many reads. Joining them once, when the line
    ends, keeps a long line linear (pending + chunk on every read copies it again each time:
    a 16 MB line took seconds)."""

    __slots__ = ("parts", "size")

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def __bool__(self) -> bool:
        return bool(self.parts)

    def add(self, chunk: bytes, pending: int) -> None:
        self.parts.append(chunk)
        self.size += len(chunk)
        if pending + self.size > MAX_LINE_BYTES:
            raise BadResponseError(f"stream line longer than {MAX_LINE_BYTES} bytes")

    def join(self, pending: bytes) -> bytes:
        whole = b"".join([pending, *self.parts])
        self.parts, self.size = [], 0
        return whole


class SSEDecoder:
    """WHATWG event-stream parsing: `data:` lines joined by LF, `event:` names, comments
    (`: ping`) ignored, dispatch on a blank line. Yields (event name or None, data bytes)."""

    __slots__ = ("_data", "_event", "_long", "_pending")

    def __init__(self) -> None:
        self._pending = b""
        self._long = _LongLine()  # the rest of an unfinished line that spans many reads
        self._event: str | None = None
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        pending = self._pending
        if pending:
            # A line that goes on without an end (no LF/CR, and no CR left that a LF may
            # complete) is only collected: no rescan or copy of what came before.
            if b"\n" not in chunk and b"\r" not in chunk and (self._long or pending[-1:] != b"\r"):
                self._long.add(chunk, len(pending))
                return []
            if self._long:
                pending = self._long.join(pending)
        lines, rest = _split_lines(pending, chunk)
        if len(rest) > MAX_LINE_BYTES:
            raise BadResponseError(f"stream line longer than {MAX_LINE_BYTES} bytes")
        self._pending = rest
        out: list[tuple[str | None, bytes]] = []
        data = self._data
        for line in lines:
            if line[:6] == b"data: ":  # fast path for the usual line; same result as below
                data.append(line[6:])
                continue
            if not line:
                if data:
                    out.append((self._event, data[0] if len(data) == 1 else b"\n".join(data)))
                    data = self._data = []
                self._event = None
                continue
            if line[0] == 58:  # ":" comment, e.g. ": OPENROUTER PROCESSING"
                continue
            field, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if field == b"data":
                data.append(value)
            elif field == b"event":
                self._event = value.decode("utf-8", "replace")
            # id: and retry: fields carry nothing callm needs
        return out

    @property
    def idle(self) -> bool:
        """Nothing buffered: the next read starts a new line of a new event. Lets a parser
        take a whole `data: {...}\\n\\n` read without the line loop."""
        return not self._pending and not self._data and self._event is None

    def close(self) -> list[tuple[str | None, bytes]]:
        """End of stream: a final event without its blank line still counts."""
        out = self.feed(b"\n\n") if (self._pending or self._data) else []
        self._pending = b""
        return out


class NDJSONDecoder:
    """Newline-delimited JSON (Ollama): yields each non-blank line."""

    __slots__ = ("_long", "_pending")

    def __init__(self) -> None:
        self._pending = b""
        self._long = _LongLine()

    def feed(self, chunk: bytes) -> list[bytes]:
        pending = self._pending
        if pending:
            if b"\n" not in chunk:  # the line goes on: collect, do not copy again
                self._long.add(chunk, len(pending))
                return []
            if self._long:
                pending = self._long.join(pending)
        buf = pending + chunk if pending else chunk
        lines = buf.split(b"\n")
        self._pending = lines.pop()
        if len(self._pending) > MAX_LINE_BYTES:
            raise BadResponseError(f"stream line longer than {MAX_LINE_BYTES} bytes")
        return [s for line in lines if (s := line.strip())]

    def close(self) -> list[bytes]:
        rest = (self._long.join(self._pending) if self._long else self._pending).strip()
        self._pending = b""
        return [rest] if rest else []
