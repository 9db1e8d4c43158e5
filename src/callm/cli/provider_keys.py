"""`providers import` and `providers key`: keys in and out for scripts. Registered on the
`providers` group by cli/providers.py; heavy imports stay inside the functions."""

# No `from __future__ import annotations` in modules that define commands: typer would then
# compile and evaluate every annotation string (twice) each time it builds a command.

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from callm.cli.context import State, state
from callm.errors import UsageError

if TYPE_CHECKING:
    from callm.key_import import Step


def import_keys(
    ctx: typer.Context,
    from_: Annotated[
        list[str] | None,
        typer.Option(
            "--from",
            metavar="PATH",
            help="Read only this file: llm keys.json or aichat config.yaml (repeatable).",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Apply without asking.")] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only show what would change.")
    ] = False,
) -> None:
    """Import vendor keys from the environment, llm and aichat into the OS keychain."""
    from callm.key_import import discover, plan

    st = state(ctx)
    steps = plan(st.config(), discover(list(from_ or [])))
    todo = [s for s in steps if s.action != "skip"]
    _show(st, steps, applied=False if dry_run or not todo else None)
    if dry_run or not todo:
        if not todo and not st.out.json_mode:
            st.out.info("nothing to import")
        return
    if not yes:
        if not _isatty(sys.stdin):
            raise UsageError(
                "no terminal to confirm the import on",
                hint="add --yes to import without asking, or --dry-run to only look",
            )
        if not typer.confirm(f"Import {len(todo)} key(s) into the OS keychain?", default=False):
            raise typer.Exit(1)
    _apply(st, todo)
    if st.out.json_mode:
        from callm.outputs import dump

        st.out.emit_json(dump("providers-import", {"imported": [s.as_dict() for s in todo]}))
    else:
        names = ", ".join(s.found.provider for s in todo)
        st.out.info(f"imported {len(todo)} key(s) into the OS keychain: {names}")


def _isatty(stream: Any) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (ValueError, OSError):
        return False


def _show(st: State, steps: "list[Step]", applied: bool | None) -> None:
    """The plan: a table (stderr when the result follows as JSON), keys masked."""
    out = st.out
    if out.json_mode:
        if applied is False:  # --dry-run or nothing to do: the plan is the answer
            from callm.outputs import dump

            plan = [s.as_dict() for s in steps]
            out.emit_json(dump("providers-import", {"imported": [], "plan": plan}))
        return
    if not steps:
        out.info("no keys found (looked in the environment, llm's keys.json, aichat's config)")
        return
    rows = []
    for s in steps:
        d = s.as_dict()
        what = {"add": "add provider + store key", "store": "store key"}.get(s.action, "skip")
        rows.append([d["provider"], what, d["key"], d["source"], s.reason or "-"])
    out.table(["provider", "action", "key", "found in", "note"], rows)


def _apply(st: State, todo: "list[Step]") -> None:
    from callm.catalog.providers import template
    from callm.config.schema import ProviderConfig, updated
    from callm.secrets import keychain_set

    added: dict[str, ProviderConfig] = {}
    for s in todo:
        name = s.found.provider
        keychain_set(name, s.found.key)
        if s.action == "add":
            t = template(name)
            assert t is not None
            added[name] = ProviderConfig.make(
                driver=t.driver, base_url=t.base_url, default_model=t.default_model
            )
    if added:  # under the config lock; a provider another callm added meanwhile is kept
        st.update(
            lambda now: updated(
                now,
                providers={
                    **now.providers,
                    **{n: pc for n, pc in added.items() if n not in now.providers},
                },
            )
        )


def key(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="A configured provider.")],
    show: Annotated[
        bool, typer.Option("--show", help="Print it even when stdout is a terminal.")
    ] = False,
) -> None:
    """Print a provider's key for scripts: export OPENAI_API_KEY=$(callm providers key openai)."""
    from callm.endpoints import endpoint, provider_config

    st = state(ctx)
    if st.out.stdout_isatty and not show:
        raise UsageError(
            "refusing to print a key to a terminal",
            hint=f"use it in a script (export VAR=$(callm providers key {name})), or add --show",
        )
    pc = provider_config(st.config(), name)
    secret = endpoint(name, pc).key  # MissingKeyError (exit 3) when there is none
    if not secret:
        raise UsageError(f"{name} is configured without a key")
    st.out.stdout.write(secret + "\n")
    st.out.stdout.flush()
