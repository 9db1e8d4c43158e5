"""`callm chat`: prompt from args and stdin, stream the reply, report tokens and cost."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from callm.cli.context import State, number, state
from callm.errors import UsageError

if TYPE_CHECKING:
    from callm.call_types import CallOutcome, CallSpec

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
    cont: Annotated[
        bool, typer.Option("--continue", "-c", help="Continue the latest conversation.")
    ] = False,
    cid: Annotated[
        str | None, typer.Option("--cid", metavar="ID", help="Continue this conversation.")
    ] = None,
    no_log: Annotated[bool, typer.Option("--no-log", help="Do not log this call.")] = False,
    template: Annotated[
        str | None,
        typer.Option("--template", "-t", metavar="NAME", help="Start from a saved template."),
    ] = None,
) -> None:
    from callm.call_types import CallSpec
    from callm.options import parse_options
    from callm.types import Message

    st = state(ctx)
    if json_out:
        st.out.json_mode = True
    number(temperature, "--temperature")
    number(max_cost, "--max-cost")
    if getattr(sys.stdout, "callm_closed", False) and not estimate:
        raise UsageError("standard output is closed: the reply would be lost")
    if model is not None and not model.strip():
        raise UsageError("-m/--model is empty", hint="pass -m PROVIDER/MODEL, e.g. -m sim")
    if timeout is not None and not 0 < timeout < float("inf"):
        raise UsageError(f"--timeout must be a number of seconds greater than 0, not {timeout:g}")
    files = list(attach or [])
    if files.count("-") > 1:
        raise UsageError("-a - can be given once: stdin holds one file")
    atts = _attachments(files)
    text = _prompt_text(prompt or [], stdin_taken="-" in files)
    options = parse_options(option or [])
    if template:  # flags given with -t win over the template's
        from callm.templates import apply

        t = apply(
            st.config(), template, text, model=model, system=system, options=options, schema=schema
        )
        text, model, system, options, schema = t.text, t.model, t.system, t.options, t.schema
    spec = CallSpec(
        model=model,
        messages=[],
        system=system,
        temperature=temperature,
        max_tokens=max_tokens,
        stream=not no_stream,
        options=options,
        fallbacks=list(fallback or []),
        schema=_schema(schema),
        attachments=atts,
        log=False if no_log else None,
        timeout=timeout,
    )
    history = _conversation(st, spec, cont, cid)
    if not text and atts:
        text = "Describe the attached file." if len(atts) == 1 else "Describe the attached files."
    if not text:
        if _isatty(sys.stdin) and _isatty(sys.stdout) and not (estimate or st.out.json_mode):
            from callm.cli.repl import session

            raise typer.Exit(session(st, spec, history))
        hint = 'callm chat -m sim "hello", or pipe text on stdin'
        if template:
            hint = f"template {template!r} fills $input from the arguments or stdin"
        raise UsageError("no prompt given", hint=hint)
    spec.messages = [*history, Message("user", text)]
    if history:
        from callm.conversations import fit

        fit(st.config(), spec, st.out.warn)
    if estimate or max_cost is not None:
        _estimate(st, spec, max_cost, print_only=estimate)
        if estimate:
            return
    outcome = _run(st, spec)
    if st.out.json_mode and spec.log is not False and st.config().log_prompts:
        outcome.cid = spec.cid  # shown in --json: what `chat --cid` continues
    raise typer.Exit(_finish(st, outcome))


def _conversation(st: State, spec: "CallSpec", cont: bool, cid: str | None) -> list[Any]:
    """The turns of the conversation this call continues (-c, --cid), or none: a new one."""
    from callm import conversations

    history = conversations.resume(st.config(), spec, cid, st.out.warn) if cont or cid else []
    spec.cid = spec.cid or conversations.new_cid()
    return history


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
    _check_utf8(text, "the prompt")
    return text


def _check_utf8(text: str, what: str) -> None:
    """Bytes that are not UTF-8 arrive as lone surrogates (surrogateescape): name them here
    rather than fail while encoding the request."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start].encode("utf-8", "surrogateescape")
        raise UsageError(
            f"{what} is not valid UTF-8 (byte 0x{bad.hex()} at character {exc.start})",
            hint="convert it first, e.g. `iconv -f latin1 -t utf-8`",
        ) from None


def _isatty(stream: Any) -> bool:
    """False for a closed or missing stream (`callm chat ... <&-` leaves sys.stdin None)."""
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):
        return False


def _estimate(st: State, spec: "CallSpec", max_cost: float | None, print_only: bool) -> None:
    """Counts every message sent: a continued conversation's history too."""
    from callm.endpoints import resolve_target
    from callm.pricing import check_budget, estimate

    cfg = st.config()
    target = resolve_target(cfg, spec.model)
    text = "\n".join(m.content for m in spec.messages)
    prompt = f"{spec.system}\n{text}" if spec.system else text
    extra = 0
    if spec.attachments:
        from callm.attachments import attachment_tokens

        extra = sum(attachment_tokens(target.config.driver, a) for a in spec.attachments)
    est = estimate(
        cfg,
        target.provider,
        target.model,
        prompt,
        spec.max_tokens,
        messages=len(spec.messages),
        extra=extra,
    )
    if print_only:
        if st.out.json_mode:
            from callm.outputs import dump

            est_json = {"model": target.model, "provider": target.provider, **_est_dict(est)}
            st.out.emit_json(dump("chat-estimate", est_json))
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
    except KeyboardInterrupt as exc:
        from callm.errors import interrupt_exit_code

        _close(sink)
        if st.out.json_mode:
            from callm.outputs import dump

            st.out.emit_json(
                dump("error", {"error": {"kind": "interrupted", "message": "interrupted"}})
            )
        st.out.stderr.write("\ninterrupted\n")
        raise typer.Exit(interrupt_exit_code(exc)) from None
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
        from callm.outputs import dump

        st.out.emit_json(dump("chat", _json(o)))
    if err is not None:  # one line on stderr in every mode; the text that arrived stays
        st.out.error(scrub(err.one_line()), scrub(err.hint) if err.hint else None)
        return err.exit_code
    if o.parsed is not None and not st.out.json_mode:
        _print_parsed(st, o.parsed)
    if not st.out.quiet and not st.out.json_mode:
        st.out.info(_summary(o))
    return 0


def _print_parsed(st: State, obj: Any) -> None:
    """A checked --schema reply: indented on a terminal, one line in a pipe."""

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
    err = o.error  # a call refused before any model was tried still names the model
    obj: dict[str, Any] = {
        "model": o.target.model if o.target else err.model if err else None,
        "provider": o.target.provider if o.target else err.provider if err else None,
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
    if o.cid:
        obj["conversation"] = o.cid
    return obj
