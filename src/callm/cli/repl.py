"""The interactive session of `callm chat` (no prompt, on a terminal). Every turn is logged
with the session's conversation id, so `callm chat -c` resumes it later.

Lines starting with `/` are commands, never sent to the model; `//text` sends `/text`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import typer

from callm.errors import EXIT_INTERRUPTED, CallmError

if TYPE_CHECKING:
    from callm.call_types import CallSpec
    from callm.cli.context import State
    from callm.types import Message

COMMANDS = {
    "/help": "this list",
    "/model NAME": "switch model (provider/model, alias or provider) for the next turns",
    "/system TEXT": "set the system prompt (/system alone clears it)",
    "/save NAME": "save the model, system prompt and options as template NAME",
    "/exit": "leave (also /quit, Ctrl-D)",
    "//text": "send a line that starts with /",
}


def session(st: State, spec: CallSpec, history: list[Message]) -> int:
    from callm.endpoints import resolve_target

    target = resolve_target(st.config(), spec.model)
    if history:
        st.out.info(
            f"continuing conversation {spec.cid} ({len(history) // 2} turns) with"
            f" {target.label}; /help for commands"
        )
    else:
        st.out.info(f"chatting with {target.label}; /help for commands, /exit or Ctrl-D to leave")
    while True:
        try:
            line = input("> ")
        except EOFError:
            st.out.info("")
            return 0
        except KeyboardInterrupt:
            st.out.info("")
            return EXIT_INTERRUPTED
        text = line.strip()
        if not text:
            continue
        if text.startswith("/") and not text.startswith("//"):
            try:
                done = command(st, spec, text)
            except CallmError as exc:
                st.out.error(exc.one_line(), exc.hint)
                continue
            if done:
                return 0
            continue
        history = turn(st, spec, history, text[1:] if text.startswith("//") else line)


def turn(st: State, spec: CallSpec, history: list[Message], text: str) -> list[Message]:
    """One exchange; returns the history after it."""
    from callm.cli.chat import _finish, _run, _summary
    from callm.conversations import fit
    from callm.types import Message

    user = Message("user", text)
    spec.messages = [*history, user]
    try:
        fit(st.config(), spec, st.out.warn)
        o = _run(st, spec)
    except typer.Exit as exc:  # Ctrl-C during a reply ends the reply, not the session
        if exc.exit_code != EXIT_INTERRUPTED:
            raise
        return _reload(st, spec, history)
    except CallmError as exc:
        st.out.error(exc.one_line(), exc.hint)
        return history
    if o.error is not None:
        _finish(st, o)  # a broken stream keeps its text, and so does the conversation
        if not o.result.text:
            return history
    elif not st.out.quiet:
        st.out.info(_summary(o))
    return [*history, user, Message("assistant", o.result.text)]


def _reload(st: State, spec: CallSpec, history: list[Message]) -> list[Message]:
    """After Ctrl-C: the log has the partial reply, and the next turn continues from it."""
    from callm import conversations
    from callm.ledger import logs

    if not conversations.logging_on(st.config(), spec) or spec.cid is None:
        return history
    conn = logs.connect()
    try:
        return conversations.history(logs.turns(conn, spec.cid))
    finally:
        conn.close()


def command(st: State, spec: CallSpec, text: str) -> bool:
    """Run a /command; True when the session should end."""
    name, _, arg = text.partition(" ")
    arg = arg.strip()
    if name in ("/exit", "/quit"):
        return True
    if name == "/help":
        width = max(len(k) for k in COMMANDS)
        st.out.info("\n".join(f"  {k.ljust(width)}  {v}" for k, v in COMMANDS.items()))
    elif name == "/model":
        _model(st, spec, arg)
    elif name == "/system":
        spec.system = arg or None
        st.out.info(f"system prompt {'set' if arg else 'cleared'}")
    elif name == "/save":
        _save(st, spec, arg)
    else:
        st.out.error(
            f"unknown command {name} (not sent)",
            "/help lists the commands; start a line with // to send text beginning with /",
        )
    return False


def _model(st: State, spec: CallSpec, arg: str) -> None:
    from callm.endpoints import resolve_target
    from callm.errors import UsageError

    if not arg:
        raise UsageError("/model wants a model: /model provider/model")
    target = resolve_target(st.config(), arg)  # an unknown model is refused here
    spec.model = arg
    st.out.info(f"now using {target.label}")


def _save(st: State, spec: CallSpec, arg: str) -> None:
    from callm import templates
    from callm.endpoints import resolve_target
    from callm.errors import UsageError

    if not arg:
        raise UsageError("/save wants a template name: /save NAME")
    cfg = st.config()
    model = spec.model or resolve_target(cfg, None).label
    options: dict[str, Any] = dict(spec.options)
    schema = getattr(spec, "schema", None)
    st.update(
        lambda now: templates.save(
            now,
            arg,
            model=model,
            system=spec.system,
            options=options,
            schema=json.dumps(schema) if schema is not None else None,
        )
    )
    st.out.info(f"saved template {arg!r} (use it with: callm chat -t {arg})")
