"""What every inbound format shares: the parsed request, the HTTP status of an error, and the
bridge that runs one engine call in a worker thread and hands its events to the event loop."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

from callm.call_types import CallOutcome, CallSpec
from callm.errors import CallmError, OutputClosed
from callm.types import Message, StreamEvent, Tool, ToolCall, Usage, UsageReport


class BadRequest(Exception):
    """The client's request is malformed: 400 in the client's format."""


class ClientGone(OutputClosed):
    """Raised in the engine's sink once the client hung up: the engine stops the call as
    for any reader that went away, and its ledger row says client_gone."""

    outcome = "client_gone"


@dataclass
class Inbound:
    """A request in canonical form, whatever format it came in."""

    model: str
    messages: list[Message]
    stream: bool = False
    system: str | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    tools: tuple[Tool, ...] = ()
    tool_choice: str | None = None
    stop: tuple[str, ...] = ()
    response_format: dict[str, Any] | None = None
    options: dict[str, Any] = field(default_factory=dict)
    include_usage: bool = False  # OpenAI stream_options.include_usage

    def spec(self) -> CallSpec:
        return CallSpec(
            model=self.model,
            messages=self.messages,
            system=self.system,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            stream=self.stream,
            options=dict(self.options),
            tools=self.tools,
            tool_choice=self.tool_choice,
            stop=self.stop,
            response_format=self.response_format,
        )

    def needs_vision(self) -> bool:
        return any(m.images for m in self.messages)


def want(obj: Any, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    """obj[key] if it has the right type; missing gives `default`; a wrong type is a 400."""
    value = obj.get(key, default) if isinstance(obj, dict) else default
    if value is None or value is default:
        return value
    if isinstance(value, bool) and kind in (int, float, (int, float)):
        raise BadRequest(f"'{key}' must be a number")
    if not isinstance(value, kind):
        name = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise BadRequest(f"'{key}' must be of type {name}")
    return value


def model_of(body: Any, missing: str) -> str:
    """The request's model; a body that is not an object, or no model, is a 400 (`missing`
    is that message in the client's dialect)."""
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    model = want(body, "model", str)
    if not model:
        raise BadRequest(missing)
    return str(model)


def sse(obj: Any, event: str | None = None) -> bytes:
    """One server-sent event: an optional `event:` line and the JSON `data:` line."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(obj)}\n\n".encode()


def tool_call(id_: Any, name: Any, arguments: Any) -> ToolCall:
    import json

    if not isinstance(name, str) or not name:
        raise BadRequest("a tool call needs a function name")
    args = arguments if isinstance(arguments, str) else json.dumps(arguments or {})
    return ToolCall(id_ if isinstance(id_, str) else None, name, args)


def tool(name: Any, description: Any, parameters: Any) -> Tool:
    if not isinstance(name, str) or not name:
        raise BadRequest("every tool needs a name")
    params = parameters if isinstance(parameters, dict) else {}
    return Tool(name, description if isinstance(description, str) else "", params)


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


# ---- errors -------------------------------------------------------------------------------------

# kind -> HTTP status the client sees. A provider that rejects *our* key is the gateway's
# problem (502), not the client's: its token was fine.
_STATUS = {
    "usage": 400,
    "config": 500,
    "not_found": 404,
    "rate_limit": 429,
    "budget": 429,
    "bad_request": 400,
    "context_length": 400,
    "auth": 502,
    "missing_key": 502,
    "keychain": 502,
    "timeout": 504,
}


def status_of(err: CallmError) -> int:
    return _STATUS.get(err.kind, 502)


def public_message(err: CallmError) -> str:
    """The error's one line, keys scrubbed; never a Python detail."""
    from callm.secrets import scrub

    return scrub(err.one_line())


def retry_after(err: CallmError) -> str | None:
    wait = getattr(err, "retry_after", None)
    if err.kind == "rate_limit":
        return str(max(1, int(wait + 0.999))) if wait else "1"
    return None


# ---- the bridge -------------------------------------------------------------------------------


@dataclass
class Done:
    outcome: CallOutcome | None  # None: the call raised (client gone, or a bug)


class Call:
    """One engine call on a worker thread. Events arrive on `queue`, then a Done."""

    def __init__(
        self,
        run: Callable[[CallSpec, Callable[[StreamEvent], None]], CallOutcome],
        spec: CallSpec,
        pool: Executor,
    ) -> None:
        self.queue: asyncio.Queue[StreamEvent | Done] = asyncio.Queue()
        self.gone = threading.Event()
        self.usage = Usage()  # the latest UsageReport
        self.started = time.time()
        loop = asyncio.get_running_loop()
        # Events wait in `pending` and the loop is woken once per batch, not once per event:
        # a fast upstream sends many events per read.
        pending: deque[StreamEvent | Done] = deque()
        lock = threading.Lock()
        woken = False

        def flush() -> None:
            nonlocal woken
            with lock:
                items = list(pending)
                pending.clear()
                woken = False
            for item in items:
                self.queue.put_nowait(item)

        def put(item: StreamEvent | Done) -> None:
            nonlocal woken
            with lock:
                pending.append(item)
                if woken:
                    return
                woken = True
            try:
                loop.call_soon_threadsafe(flush)
            except RuntimeError:  # the loop is closed: the server is gone too
                self.gone.set()

        def sink(ev: StreamEvent) -> None:
            if self.gone.is_set():
                raise ClientGone()
            put(ev)

        def work() -> None:
            outcome: CallOutcome | None = None
            try:
                outcome = run(spec, sink)
            except BaseException:  # ClientGone: the engine recorded its row
                outcome = None
            finally:
                put(Done(outcome))

        self.future = loop.run_in_executor(pool, work)

    async def events(self) -> AsyncIterator[StreamEvent | Done]:
        """Events as they come, then the Done. Usage reports are kept, not yielded."""
        while True:
            item = await self.queue.get()
            if isinstance(item, UsageReport):
                self.usage = item.usage
                continue
            yield item
            if isinstance(item, Done):
                return

    def ready(self) -> list[StreamEvent | Done]:
        """The events already queued (to render with the one just received, in one write)."""
        out: list[StreamEvent | Done] = []
        while not self.queue.empty():
            item = self.queue.get_nowait()
            if isinstance(item, UsageReport):
                self.usage = item.usage
            else:
                out.append(item)
                if isinstance(item, Done):
                    break
        return out

    async def outcome(self) -> CallOutcome | None:
        async for item in self.events():
            if isinstance(item, Done):
                return item.outcome
        return None  # pragma: no cover - events() always ends with a Done
