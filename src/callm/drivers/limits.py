"""What each wire format accepts, checked before a request is sent: sampling ranges, the
smallest output limit, attachment sizes and kinds. A value out of range is a one-line
UsageError (exit 2) naming the limit, never a vendor's 400 after a round trip.

Known numeric `-o` options given as strings (`-o top_p=0.9`) are read as numbers here: the
driver knows their type, so only a value that is not a number is refused."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

from callm.errors import UsageError
from callm.types import ChatRequest

MB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    temperature: tuple[float, float] | None = (0.0, 2.0)
    top_p: tuple[float, float] | None = (0.0, 1.0)
    min_max_tokens: int = 1
    image_bytes: int | None = 20 * MB  # one image, before base64
    pdf_bytes: int | None = 32 * MB  # one PDF
    request_bytes: int | None = 50 * MB  # all attachments together, base64 encoded
    takes_pdf: bool = True


_OPENAI = Limits()
LIMITS: dict[str, Limits] = {
    "openai": _OPENAI,
    "openai-compatible": _OPENAI,
    "azure-openai": replace(_OPENAI, request_bytes=20 * MB),
    # the Responses API refuses max_output_tokens below 16
    "openai-responses": replace(_OPENAI, min_max_tokens=16),
    # Messages API: temperature 0..1; images up to 5 MB each; 32 MB per request
    "anthropic": Limits(temperature=(0.0, 1.0), image_bytes=5 * MB, request_bytes=32 * MB),
    # inline data: 20 MB for the whole request
    "gemini": Limits(image_bytes=20 * MB, pdf_bytes=20 * MB, request_bytes=20 * MB),
    # a local server: no documented caps on sampling or sizes; images only
    "ollama": Limits(
        temperature=None, top_p=(0.0, 1.0), image_bytes=None, request_bytes=None, takes_pdf=False
    ),
    "sim": Limits(image_bytes=None, pdf_bytes=None, request_bytes=None),
    # Converse: temperature 0..1; images up to 3.75 MB and documents up to 4.5 MB each
    "bedrock": Limits(
        temperature=(0.0, 1.0), image_bytes=3_932_160, pdf_bytes=4_718_592, request_bytes=None
    ),
}

# -o options whose type a driver knows: a string that reads as a number is that number.
_FLOATS = frozenset(
    {"temperature", "top_p", "presence_penalty", "frequency_penalty", "repeat_penalty", "min_p"}
)
_INTS = frozenset(
    {
        "top_k",
        "seed",
        "top_logprobs",
        "num_ctx",
        "num_predict",
        "max_tokens",
        "max_completion_tokens",
        "max_output_tokens",
        "thinking_budget",
        "candidate_count",
    }
)


_MAX_TOKEN_OPTIONS = frozenset({"max_tokens", "max_completion_tokens", "max_output_tokens"})


def limits_for(driver: str) -> Limits:
    return LIMITS.get(driver, _OPENAI)


def typed_options(options: dict[str, Any]) -> dict[str, Any]:
    """Known numeric options given as strings, as numbers; others as given."""
    out = dict(options)
    for key, value in options.items():
        if not isinstance(value, str) or key not in _FLOATS | _INTS:
            continue
        try:
            out[key] = int(value) if key in _INTS else float(value)
        except ValueError:
            kind = "an integer" if key in _INTS else "a number"
            raise UsageError(f"option {key} must be {kind}, not {value!r}") from None
    return out


def _check_range(driver: str, what: str, value: Any, rng: tuple[float, float] | None) -> None:
    if rng is None or value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise UsageError(f"{what} must be a number, not {value!r}")
    lo, hi = rng
    if not lo <= value <= hi:
        raise UsageError(f"{what} {value:g} is out of range for {driver}: {lo:g} to {hi:g}")


def check_request(driver: str, req: ChatRequest) -> ChatRequest:
    """The request with known options typed; UsageError for a value the vendor refuses."""
    lim = limits_for(driver)
    opts = typed_options(req.options)
    _check_range(driver, "temperature", req.temperature, lim.temperature)
    _check_range(driver, "temperature", opts.get("temperature"), lim.temperature)
    _check_range(driver, "top_p", opts.get("top_p"), lim.top_p)
    if req.max_tokens is not None and req.max_tokens < lim.min_max_tokens:
        raise UsageError(
            f"--max-tokens {req.max_tokens} is below the minimum for {driver}: {lim.min_max_tokens}"
        )
    for key in sorted(_MAX_TOKEN_OPTIONS & opts.keys()):  # the same limit given with -o
        value = opts[key]
        if isinstance(value, int) and not isinstance(value, bool) and value < lim.min_max_tokens:
            raise UsageError(
                f"option {key} {value} is below the minimum for {driver}: {lim.min_max_tokens}"
            )
    _check_attachments(driver, req, lim)
    return replace(req, options=opts) if opts != req.options else req


def _check_attachments(driver: str, req: ChatRequest, lim: Limits) -> None:
    total = 0
    for att in req.attachments:
        size = len(att.data)
        total += (size + 2) // 3 * 4
        if att.kind == "pdf" and not lim.takes_pdf:
            raise UsageError(f"{driver} does not take PDF attachments ({att.name})")
        cap = lim.image_bytes if att.kind == "image" else lim.pdf_bytes
        if att.kind != "text" and cap is not None and size > cap:
            raise UsageError(
                f"attachment {att.name} is {size / MB:.1f} MB; {driver} takes"
                f" {att.kind} files up to {cap // MB} MB"
            )
    if lim.request_bytes is not None and total > lim.request_bytes:
        raise UsageError(
            f"attachments are {total / MB:.1f} MB encoded; {driver} takes up to"
            f" {lim.request_bytes // MB} MB per request"
        )
