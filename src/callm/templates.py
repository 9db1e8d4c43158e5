"""Templates: a saved prompt with its model, system prompt and options, kept in the config
as `[templates.NAME]` tables (editable by hand, shareable in dotfiles).

`$input` in a template's prompt is replaced by the prompt given to `callm chat -t NAME`
(arguments and stdin); `$$` is a literal `$`. Flags given with -t win over the template's."""

from __future__ import annotations

from dataclasses import dataclass
from string import Template as _Subst
from typing import TYPE_CHECKING, Any

from callm.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from callm.config.schema import Config, TemplateConfig


@dataclass
class Applied:
    """The call a template gives, after the command line's flags."""

    text: str
    model: str | None
    system: str | None
    options: dict[str, Any]
    schema: str | None


def get(cfg: Config, name: str) -> TemplateConfig:
    t = cfg.templates.get(name)
    if t is None:
        known = ", ".join(sorted(cfg.templates)) or "none saved yet"
        raise NotFoundError(
            f"no template {name!r} (templates: {known})",
            hint="save one with `callm templates save NAME --prompt 'Summarise: $input'`",
        )
    return t


def render(prompt: str | None, text: str) -> str:
    """The template's prompt with $input filled; the input after it when it has no $input;
    the input alone when the template has no prompt."""
    if not prompt:
        return text
    if "$input" not in prompt and "${input}" not in prompt:
        return f"{prompt}\n\n{text}" if text else prompt
    try:
        return _Subst(prompt).safe_substitute(input=text)
    except ValueError as exc:
        raise UsageError(f"template prompt: {exc}") from None


def apply(
    cfg: Config,
    name: str,
    text: str,
    *,
    model: str | None,
    system: str | None,
    options: dict[str, Any],
    schema: str | None = None,
) -> Applied:
    t = get(cfg, name)
    wants_input = bool(t.prompt) and ("$input" in t.prompt or "${input}" in t.prompt)
    return Applied(
        # no input for a $input template: no prompt (an interactive session, or an error)
        text="" if wants_input and not text else render(t.prompt, text),
        model=model or t.model,
        system=system if system is not None else t.system,
        options={**t.options, **options},
        schema=schema if schema is not None else t.schema_,
    )


def save(
    cfg: Config,
    name: str,
    *,
    model: str | None = None,
    system: str | None = None,
    prompt: str | None = None,
    options: dict[str, Any] | None = None,
    schema: str | None = None,
) -> Config:
    """The config with template `name` set (replaced if it exists)."""
    from callm.config.schema import SchemaError, TemplateConfig, check_template_name, updated

    try:
        check_template_name(name)
        t = TemplateConfig.make(
            model=model, system=system, prompt=prompt, options=dict(options or {}), schema=schema
        )
    except (ValueError, SchemaError) as exc:
        raise UsageError(str(exc)) from None
    if not (model or system or prompt or options or schema):
        raise UsageError("a template needs at least one of -m, -s, --prompt, -o, --schema")
    return updated(cfg, templates={**cfg.templates, name: t})


def remove(cfg: Config, name: str) -> Config:
    from callm.config.schema import updated

    get(cfg, name)
    return updated(cfg, templates={k: v for k, v in cfg.templates.items() if k != name})


def as_toml(name: str, t: TemplateConfig) -> str:
    """The template as the config holds it."""
    import tomlkit

    doc = tomlkit.document()
    table = tomlkit.table()
    for k, v in t.to_dict(skip_defaults=True).items():
        if isinstance(v, dict):
            inline = tomlkit.inline_table()
            inline.update(v)
            table[k] = inline
        else:
            table[k] = v
    doc["templates"] = tomlkit.table(is_super_table=True)
    doc["templates"][name] = table
    return tomlkit.dumps(doc)
