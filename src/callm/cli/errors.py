"""Exceptions -> one-line messages and the SPEC's exit codes. The only place that decides."""

from __future__ import annotations

import json
import sys

from callm.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, CallmError, interrupt_exit_code


def handle(exc: BaseException, *, verbose: bool = False, json_mode: bool = False) -> int:
    from callm.secrets import scrub

    if isinstance(exc, SystemExit):
        code = exc.code
        return code if isinstance(code, int) else (EXIT_OK if code is None else EXIT_FAILED)
    if isinstance(exc, BrokenPipeError):
        _silence_stdout()
        return EXIT_OK
    if isinstance(exc, KeyboardInterrupt) or _is_abort(exc):
        sys.stderr.write("\ninterrupted\n")
        return interrupt_exit_code(exc)
    exit_code = getattr(exc, "exit_code", None)
    if _is_click_exception(exc):
        if exit_code == 0:
            return EXIT_OK
        msg = scrub(exc.format_message())  # type: ignore[attr-defined]
        _print_error(msg, "run with --help to see the usage", json_mode, "usage")
        return EXIT_USAGE if exit_code is None else int(exit_code)
    if _is_exit(exc):
        return int(exit_code or 0)
    if verbose:
        import traceback

        sys.stderr.write(scrub("".join(traceback.format_exception(exc))))
    if isinstance(exc, CallmError):
        _print_error(
            scrub(exc.one_line()), scrub(exc.hint) if exc.hint else None, json_mode, exc.kind
        )
        return exc.exit_code
    if isinstance(exc, OSError):
        _print_error(
            scrub(f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": ")),
            None,
            json_mode,
            "os",
        )
        return EXIT_FAILED
    _print_error(
        scrub(f"internal error: {type(exc).__name__}: {exc}"),
        "run again with --verbose and report it",
        json_mode,
        "internal",
    )
    return EXIT_FAILED


def _print_error(msg: str, hint: str | None, json_mode: bool, kind: str) -> None:
    try:
        if json_mode and kind not in ("usage",):
            from callm.outputs import dump

            obj = dump("error", {"error": {"kind": kind, "message": msg}})
            sys.stdout.write(json.dumps(obj) + "\n")
            sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    from callm.render.output import for_stream

    sys.stderr.write(for_stream(sys.stderr, f"error: {msg}\n"))
    if hint:
        sys.stderr.write(for_stream(sys.stderr, f"hint: {hint}\n"))
    sys.stderr.flush()


def _silence_stdout() -> None:
    # Python flushes stdout at exit; with the reader gone that would raise again.
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _class_names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def _is_click_exception(exc: BaseException) -> bool:
    # typer may vendor click; match by name so either layout works.
    return "ClickException" in _class_names(exc)


def _is_abort(exc: BaseException) -> bool:
    return "Abort" in _class_names(exc)


def _is_exit(exc: BaseException) -> bool:
    names = _class_names(exc)
    return "Exit" in names and "ClickException" not in names
