"""The Starlette app: routes for each inbound format, access tokens, model resolution, and
the one flow every chat request follows (parse, resolve, call on a worker thread, render)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from callm import __version__
from callm.call_types import CallOutcome, CallSpec
from callm.engine import call
from callm.errors import CallmError, UsageError
from callm.gateway import anthropic, ollama, openai_chat, openai_responses
from callm.gateway.common import (
    BadRequest,
    Call,
    ClientGone,
    Done,
    Inbound,
    public_message,
    retry_after,
    status_of,
)
from callm.gateway.ops import Stats
from callm.gateway.tokens import Keyring, TokenInfo, spent_today
from callm.ledger.backend import errors

_T = TypeVar("_T")

FORMATS: dict[str, ModuleType] = {
    "openai": openai_chat,
    "responses": openai_responses,
    "anthropic": anthropic,
    "ollama": ollama,
}


@dataclass
class Settings:
    auth: bool = True
    grace: float = 30.0
    workers: int = 256  # engine calls at once; more wait for a thread


class Refused(Exception):
    """A request turned away before any call: an HTTP status and a message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


class Gateway:
    def __init__(self, cfg: Any, settings: Settings, stats: Stats) -> None:
        self.cfg = cfg
        self.settings = settings
        self.stats = stats
        self.pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="callm-call")
        self.keyring = Keyring() if settings.auth else None
        self.calls: set[Call] = set()

    # ---- access ----
    def authorize(self, request: Request) -> TokenInfo | None:
        if self.keyring is None:
            return None
        h = request.headers
        auth = h.get("authorization", "")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else h.get("x-api-key")
        who = self.keyring.check(token)
        if who is None and token and self.keyring.error:
            busy = {"retry-after": "5"}
            raise Refused(503, "cannot check the access token: the ledger is unreachable", busy)
        if who is None:
            raise Refused(401, "invalid or missing access token (callm serve token create NAME)")
        return who

    def resolve(self, inb: Inbound, who: TokenInfo | None) -> list[Any] | None:
        """The targets of a route, or None for a plain model (the engine adds its
        fallbacks). Refused: 403 (token), 404 (unknown model), 400 (no route model fits)."""
        from callm.endpoints import resolve_target
        from callm.routing import choose, needs_for

        if who is not None and not who.allows(inb.model):
            raise Refused(403, f"token {who.name!r} may not use model {inb.model!r}")
        if inb.model in self.cfg.routes:
            try:
                return choose(self.cfg, inb.model, needs_for(inb.spec())).targets
            except UsageError as exc:
                raise Refused(400, public_message(exc)) from None
        try:
            resolve_target(self.cfg, inb.model)
        except UsageError as exc:
            raise Refused(404, f"model {inb.model!r} not found: {exc.message}") from None
        return None

    def check_budget(self, who: TokenInfo | None) -> None:
        if who is None or who.budget_usd_day is None:
            return
        try:
            spent = spent_today(who.name)
        except (CallmError, *errors()):  # the ledger out of reach: as [budgets] would do
            if self.cfg.budgets.fail_open:
                return
            raise Refused(
                429,
                f"cannot check token {who.name!r}'s daily budget: the ledger is unreachable",
                {"x-should-retry": "false"},
            ) from None
        if spent >= who.budget_usd_day:
            raise Refused(
                429,
                f"token {who.name!r} has spent its daily budget"
                f" (${spent:.4f} of ${who.budget_usd_day:g})",
                {"x-should-retry": "false"},
            )

    # ---- the call, on a worker thread ----
    def run(self, spec: CallSpec, sink: Any) -> CallOutcome:
        self.stats.begin()
        out: CallOutcome | None = None
        try:
            out = call(self.cfg, spec, sink, lambda _msg: None)
            return out
        except ClientGone:
            raise
        finally:
            self.stats.end(spec, out)

    def model_names(self, who: TokenInfo | None) -> list[tuple[str, str]]:
        """(name, owner) for every name a client may send: routes, aliases, models."""
        from callm.model_query import rows

        names: dict[str, str] = {}
        for r in self.cfg.routes:
            names[r] = "callm-route"
        for a in self.cfg.aliases:
            names[a] = "callm-alias"
        for row in rows(self.cfg):
            if row.configured:
                names.setdefault(f"{row.info.provider}/{row.info.id}", row.info.provider)
        return [(n, o) for n, o in names.items() if who is None or who.allows(n)]


def _error(
    fmt: ModuleType, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(fmt.error_body(status, message), status_code=status, headers=headers)


def _call_error(fmt: ModuleType, err: CallmError) -> Response:
    status = status_of(err)
    headers: dict[str, str] = {}
    wait = retry_after(err)
    if wait:
        headers["retry-after"] = wait
    if err.kind == "budget":
        headers["x-should-retry"] = "false"
    return _error(fmt, status, public_message(err), headers)


def build(gw: Gateway) -> Starlette:
    async def chat(request: Request, fmt: ModuleType) -> Response:
        try:
            who = gw.authorize(request)
            try:
                body = json.loads(await request.body())
            except ValueError:
                raise BadRequest("the request body is not valid JSON") from None
            inb = fmt.parse(body)
            targets = gw.resolve(inb, who)
            await asyncio.to_thread(gw.check_budget, who)
        except Refused as r:
            gw.stats.refused(request.url.path, r.status)
            return _error(fmt, r.status, r.message, r.headers)
        except BadRequest as exc:
            gw.stats.refused(request.url.path, 400)
            return _error(fmt, 400, str(exc))
        spec = inb.spec()
        spec.targets = targets
        spec.token = who.name if who else None
        c = Call(gw.run, spec, gw.pool)
        gw.calls.add(c)
        c.future.add_done_callback(lambda _f: gw.calls.discard(c))
        it = c.events()
        first = await _unless_gone(request, c, anext(it))
        if isinstance(first, Done) or not inb.stream:
            out = (
                first.outcome
                if isinstance(first, Done)
                else await _unless_gone(request, c, c.outcome())
            )
            if out is None:
                return _error(fmt, 500, "the call was interrupted")
            if out.error is not None:
                return _call_error(fmt, out.error)
            if not inb.stream:
                return JSONResponse(fmt.complete(inb, out))
        return StreamingResponse(
            _stream(fmt, inb, c, first, it),
            media_type=fmt.MEDIA_TYPE,
            headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
        )

    def route(fmt: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            return await chat(request, fmt)

        return endpoint

    async def models(request: Request) -> Response:
        h = request.headers
        fmt = anthropic if "anthropic-version" in h or "x-api-key" in h else openai_chat
        try:
            who = gw.authorize(request)
        except Refused as r:
            return _error(fmt, r.status, r.message)
        names = await asyncio.to_thread(gw.model_names, who)
        if fmt is anthropic:
            data = [
                {"type": "model", "id": n, "display_name": n, "created_at": "1970-01-01T00:00:00Z"}
                for n, _ in names
            ]
            first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
            return JSONResponse(
                {"data": data, "has_more": False, "first_id": first, "last_id": last}
            )
        data = [{"id": n, "object": "model", "created": 0, "owned_by": o} for n, o in names]
        return JSONResponse({"object": "list", "data": data})

    async def tags(request: Request) -> Response:
        try:
            who = gw.authorize(request)
        except Refused as r:
            return _error(ollama, r.status, r.message)
        return JSONResponse(ollama.tags(await asyncio.to_thread(gw.model_names, who)))

    async def version(request: Request) -> Response:
        return JSONResponse({"version": ollama.API_VERSION})

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok", "version": __version__, "in_flight": len(gw.calls)})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        # uvicorn has waited up to --grace for open streams; whatever still runs is told the
        # client is gone, and every call's row is written before the process ends.
        for c in list(gw.calls):
            c.gone.set()
        await asyncio.to_thread(gw.pool.shutdown, True)

    return Starlette(
        routes=[
            Route("/v1/chat/completions", route(openai_chat), methods=["POST"]),
            Route("/v1/responses", route(openai_responses), methods=["POST"]),
            Route("/v1/messages", route(anthropic), methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
            Route("/api/chat", route(ollama), methods=["POST"]),
            Route("/api/generate", route(ollama.GENERATE), methods=["POST"]),
            Route("/api/tags", tags, methods=["GET"]),
            Route("/api/version", version, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )


async def _unless_gone(request: Request, c: Call, step: Awaitable[_T]) -> _T:
    """Await `step` (the first event, or the whole reply), telling the call to stop if the
    client hangs up meanwhile: nothing is being written to it, so only polling shows that."""
    task = asyncio.ensure_future(step)
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.25)
        if done:
            return task.result()
        if not c.gone.is_set() and await request.is_disconnected():
            c.gone.set()  # the call ends at its next event; its row says client_gone


def _renderer(fmt: ModuleType, inb: Inbound, c: Call) -> Any:
    if fmt is anthropic:
        return anthropic.Renderer(inb, c.usage.input_tokens)
    return fmt.Renderer(inb)


async def _stream(
    fmt: ModuleType, inb: Inbound, c: Call, first: Any, it: AsyncIterator[Any]
) -> AsyncIterator[bytes]:
    """The response body; a client that hangs up cancels this, which stops the call."""
    done = False
    try:
        r = _renderer(fmt, inb, c)
        head = r.start()
        if head:
            yield b"".join(head)
        batch = [first, *c.ready()]
        while True:
            frames: list[bytes] = []
            for item in batch:
                if isinstance(item, Done):
                    done = True
                    out = item.outcome
                    if out is None:
                        frames += r.fail(500, "the call was interrupted")
                    elif out.error is not None:
                        frames += r.fail(status_of(out.error), public_message(out.error))
                    else:
                        frames += r.end(out)
                    break
                frames += r.event(item)
            if frames:
                yield b"".join(frames)
            if done:
                return
            batch = [await anext(it), *c.ready()]
    finally:
        if not done:
            c.gone.set()
