"""`callm chat`: prompt from args and stdin, stream the reply, report tokens and cost."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from callm.cli.context import State, state
from callm.errors import EXIT_INTERRUPTED, UsageError

if TYPE_CHECKING:
    from callm.engine import CallOutcome, CallSpec

HELP = """Call a model. MODEL is provider/model, an alias or a provider name (its default model).

The prompt is the arguments; text piped on stdin is appended after a blank line. With no
prompt on a terminal, starts an interactive session (/exit or Ctrl-D to leave).
Try it offline: callm chat -m sim "hello"."""


def chat(
    ctx: typer.Context,
    prompt: Annotated[
        list[str] | None, typer.Argument(metavar="PROMPT", help="The prompt (words are joined).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", metavar="MODEL", help="provider/model, alias or provider."),
    ] = None,
    system: Annotated[
        str | None, typer.Option("--system", "-s", metavar="TEXT", help="System prompt.")
    ] = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            "-o",
            metavar="KEY=VAL|KEY:=JSON",
            help="Driver option (repeatable): KEY=VALUE sends a string, KEY:=JSON a JSON value"
            " (-o user=12345 -o seed:=42 -o stop:='[\"END\"]').",
        ),
    ] = None,
    schema: Annotated[
        str | None,
        typer.Option(
            "--schema",
            metavar="SCHEMA",
            help="Reply as JSON matching a schema: a FILE, inline JSON, or 'name, age int'.",
        ),
    ] = None,
    attach: Annotated[
        list[str] | None,
        typer.Option(
            "--attach",
            "-a",
            metavar="FILE",
            help="Send an image, PDF or text file; - reads it from stdin (repeatable).",
        ),
    ] = None,
    temperature: Annotated[
        float | None, typer.Option("--temperature", metavar="T", min=0.0, max=2.0)
    ] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", metavar="N", min=1)] = None,
    no_stream: Annotated[
        bool, typer.Option("--no-stream", help="Ask for the whole reply at once.")
    ] = False,
    fallback: Annotated[
        list[str] | None,
        typer.Option(
            "--fallback", metavar="MODEL", help="Try this model if the first fails (repeatable)."
        ),
    ] = None,
    estimate: Annotated[
        bool, typer.Option("--estimate", help="Print the estimated cost and exit.")
    ] = False,
    max_cost: Annotated[
        float | None,
        typer.Option(
            "--max-cost", metavar="USD", min=0.0, help="Refuse if the worst case costs more."
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="The most one request may take, however slowly the reply arrives.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    from callm.engine import CallSpec
    from callm.options import parse_options
    from callm.types import Message

    st = state(ctx)
    if json_out:
        st.out.json_mode = True
    if timeout is not None and not 0 < timeout < float("inf"):
        raise UsageError(f"--timeout must be a number of seconds greater than 0, not {timeout:g}")
    files = list(attach or [])
    if files.count("-") > 1:
        raise UsageError("-a - can be given once: stdin holds one file")
    atts = _attachments(files)
    text = _prompt_text(prompt or [], stdin_taken="-" in files)
    spec = CallSpec(
        model=model,
        messages=[Message("user", text)] if text else [],
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        stream=not no_stream,
        options=parse_options(option or []),
        fallbacks=list(fallback or []),
        schema=_schema(schema),
        attachments=atts,
        timeout=timeout,
    )
    if not text and atts:
        text = "Describe the attached file." if len(atts) == 1 else "Describe the attached files."
        spec.messages = [Message("user", text)]
    if not text:
        if _isatty(sys.stdin) and _isatty(sys.stdout) and not (estimate or st.out.json_mode):
            raise typer.Exit(_interactive(st, spec))
        raise UsageError("no prompt given", hint='callm chat -m sim "hello", or pipe text on stdin')
    if estimate or max_cost is not None:
        _estimate(st, spec, text, max_cost, print_only=estimate)
        if estimate:
            return
    outcome = _run(st, spec)
    raise typer.Exit(_finish(st, outcome))


def _attachments(files: list[str]) -> tuple[Any, ...]:
    if not files:
        return ()
    from callm.attachments import load

    return tuple(load(f) for f in files)


def _schema(arg: str | None) -> dict[str, Any] | None:
    if arg is None:
        return None
    from callm.schema_output import load_schema

    return load_schema(arg)


def _prompt_text(words: list[str], stdin_taken: bool = False) -> str:
    text = " ".join(words).strip()
    if not stdin_taken and sys.stdin is not None and not _isatty(sys.stdin):
        try:
            piped = sys.stdin.read()
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read the prompt from stdin: {exc}") from None
        if piped.strip():
            text = f"{text}\n\n{piped}" if text else piped
    return text


def _isatty(stream: Any) -> bool:
    """False for a closed or missing stream (`callm chat ... <&-` leaves sys.stdin None)."""
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):
        return False


def _estimate(
    st: State, spec: "CallSpec", text: str, max_cost: float | None, print_only: bool
) -> None:
    from callm.endpoints import resolve_target
    from callm.pricing import check_budget, estimate

    cfg = st.config()
    target = resolve_target(cfg, spec.model)
    prompt = f"{spec.system}\n{text}" if spec.system else text
    extra = 0
    if spec.attachments:
        from callm.attachments import attachment_tokens

        extra = sum(attachment_tokens(target.config.driver, a) for a in spec.attachments)
    est = estimate(cfg, target.provider, target.model, prompt, spec.max_tokens, extra=extra)
    if print_only:
        if st.out.json_mode:
            st.out.emit_json({"model": target.model, "provider": target.provider, **_est_dict(est)})
        else:
            st.out.data(_est_line(target.label, est))
        return
    if not st.out.quiet:
        st.out.info(_est_line(target.label, est))
    check_budget(est, max_cost)


def _est_dict(est: Any) -> dict[str, Any]:
    return {
        "input_tokens": est.input_tokens,
        "max_output_tokens": est.max_output_tokens,
        "min_cost_usd": est.min_cost,
        "max_cost_usd": est.max_cost,
        "method": est.method,
        "price_source": est.price.source if est.price else None,
    }


def _usd(v: float | None) -> str:
    return "unknown" if v is None else f"${v:.6f}".rstrip("0").rstrip(".") if v else "$0"


def _est_line(label: str, est: Any) -> str:
    out = "?" if est.max_output_tokens is None else str(est.max_output_tokens)
    return (
        f"estimate for {label}: ~{est.input_tokens} input tokens ({est.method}),"
        f" up to {out} output;"
        f" cost {_usd(est.min_cost)} to {_usd(est.max_cost)}"
        f" (prices: {est.price.source if est.price else 'unknown'})"
    )


def _sink(st: State, schema: bool = False) -> Any:
    from callm.render.stream import MarkdownSink, PlainSink

    if st.out.json_mode or schema:
        return None  # JSON output is printed whole, once it is checked
    if st.out.rich_stdout:
        return MarkdownSink(st.out.console())
    return PlainSink(st.out.stdout)


def _run(st: State, spec: "CallSpec") -> "CallOutcome":
    from callm.engine import call
    from callm.render.stream import PipeClosed

    cfg = st.config()
    sink = _sink(st, spec.schema is not None)
    try:
        outcome = call(cfg, spec, sink or (lambda ev: None), st.out.info)
    except KeyboardInterrupt:
        _close(sink)
        if st.out.json_mode:
            st.out.emit_json({"error": {"kind": "interrupted", "message": "interrupted"}})
        st.out.stderr.write("\ninterrupted\n")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except PipeClosed:
        from callm.cli.errors import _silence_stdout

        _silence_stdout()
        raise typer.Exit(0) from None
    _close(sink)
    return outcome


def _close(sink: Any) -> None:
    from callm.render.stream import PipeClosed

    if sink is not None:
        try:
            sink.close()
        except PipeClosed:
            from callm.cli.errors import _silence_stdout

            _silence_stdout()


def _finish(st: State, o: "CallOutcome") -> int:
    """Print the JSON object or the stderr summary; return the exit code."""
    from callm.secrets import scrub

    err = o.error
    if st.out.json_mode:
        st.out.emit_json(_json(o))
    if err is not None:  # one line on stderr in every mode; the text that arrived stays
        st.out.stderr.write(f"error: {scrub(err.one_line())}\n")
        if err.hint:
            st.out.stderr.write(f"hint: {scrub(err.hint)}\n")
        return err.exit_code
    if o.parsed is not None and not st.out.json_mode:
        _print_parsed(st, o.parsed)
    if not st.out.quiet and not st.out.json_mode:
        st.out.info(_summary(o))
    return 0


def _print_parsed(st: State, obj: Any) -> None:
    """A checked --schema reply: indented on a terminal, one line in a pipe."""
    import json

    indent = 2 if st.out.rich_stdout else None
    try:
        st.out.stdout.write(json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")
        st.out.stdout.flush()
    except BrokenPipeError:
        from callm.cli.errors import _silence_stdout

        _silence_stdout()


def _summary(o: "CallOutcome") -> str:
    u = o.usage
    est = " (estimated)" if o.usage_source == "estimated" else ""
    cached = f", {u.cache_read_tokens} cached" if u.cache_read_tokens else ""
    label = o.target.label if o.target else "?"
    return (
        f"{label}: {u.input_tokens} in{cached} / {u.output_tokens} out tokens{est}"
        f" · cost {_usd(o.cost_usd)} · {o.latency_ms / 1000:.2f} s"
    )


def _json(o: "CallOutcome") -> dict[str, Any]:
    from callm.secrets import scrub

    r = o.result
    obj: dict[str, Any] = {
        "model": o.target.model if o.target else None,
        "provider": o.target.provider if o.target else None,
        "text": r.text,
        "finish_reason": r.finish_reason,
        "usage": {**o.usage.as_dict(), "source": o.usage_source},
        "cost_usd": o.cost_usd,
        "price_source": o.price.source if o.price else None,
        "latency_ms": o.latency_ms,
        "ttft_ms": o.ttft_ms,
        "attempts": [a.as_dict() for a in o.attempts],
    }
    if o.parsed is not None:
        obj["parsed"] = o.parsed
    if r.reasoning:
        obj["reasoning"] = r.reasoning
    if r.refusal:
        obj["refusal"] = r.refusal
    if r.tool_calls:
        obj["tool_calls"] = [
            {"id": t.id, "name": t.name, "arguments": t.arguments} for t in r.tool_calls
        ]
    if o.error is not None:
        obj["error"] = {"kind": o.error.kind, "message": scrub(o.error.one_line())}
    return obj


def _interactive(st: State, spec: "CallSpec") -> int:
    """A multi-turn session; history stays in memory only."""
    from callm.endpoints import resolve_target
    from callm.types import Message

    target = resolve_target(st.config(), spec.model)
    st.out.info(f"chatting with {target.label}; /exit or Ctrl-D to leave")
    history: list[Message] = []
    while True:
        try:
            line = input("> ")
        except EOFError:
            st.out.info("")
            return 0
        except KeyboardInterrupt:
            st.out.info("")
            return EXIT_INTERRUPTED
        if line.strip() in ("/exit", "/quit"):
            return 0
        if not line.strip():
            continue
        history.append(Message("user", line))
        spec.messages = list(history)
        try:
            o = _run(st, spec)
        except typer.Exit as exc:  # Ctrl-C during a reply ends the reply, not the session
            if exc.exit_code != EXIT_INTERRUPTED:
                raise
            history.pop()
            continue
        if o.error is not None:
            _finish(st, o)
            history.pop()
            continue
        history.append(Message("assistant", o.result.text))
        if not st.out.quiet:
            st.out.info(_summary(o))
