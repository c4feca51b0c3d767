"""Config dataclasses -> command-line flags, by one mechanism.

Every stage's config is a dataclass; `option()` gives a field its help text, choices (a list, or
a callable read when the parser is built, so `--task` offers every registered task) and a
parse type. `add_flags` turns the fields into argparse flags (`max_length` -> `--max-length`),
`from_args` turns parsed flags back into the config, and `apply_config_file` lets
`--config FILE.yaml` set the base that flags given on the command line override, even when a
flag's value equals its default (the file's values become the parser's defaults, then the
command line is parsed again).

Why not transformers' `HfArgumentParser`: the contract flags include names that differ from
their field (`generate --budget` fills `budgets`), list values that mix integers and `none`
(`--budgets 128 none`), comma lists (`--stages dedup,select`), and its YAML loading ignores
the command line; each of these would need a wrapper around it, so this is the wrapper alone.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import MISSING, field
from pathlib import Path
from typing import Any

from thinkscale import ThinkscaleError


def option(
    default: Any = MISSING,
    *,
    help: str = "",
    choices: Iterable | Callable[[], Iterable] | None = None,
    type: Callable[[str], Any] | None = None,
    factory: Callable[[], Any] | None = None,
    metavar: str | None = None,
    cli: bool = True,
    aliases: tuple[str, ...] = (),
) -> Any:
    """A config field with what its flag needs. `cli=False`: not a flag (set from Python).
    `aliases`: other spellings of its flag on every command."""
    md = {"help": help, "choices": choices, "type": type, "metavar": metavar, "cli": cli,
          "aliases": aliases}  # fmt: skip
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(default=default, metadata=md)


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_at_least(cfg: Any, minimum: float, *names: str) -> None:
    """Counts and sizes named by field: each must be >= minimum (None = unset, allowed)."""
    for name in names:
        value = getattr(cfg, name)
        if value is not None and value < minimum:
            raise ThinkscaleError(f"{flag_name(name)} must be >= {minimum}, got {value}")


def check_between(cfg: Any, low: float, high: float, *names: str) -> None:
    """Ratios and probabilities named by field: each must lie in [low, high]."""
    for name in names:
        value = getattr(cfg, name)
        if value is not None and not low <= value <= high:
            raise ThinkscaleError(f"{flag_name(name)} must be in [{low}, {high}], got {value}")


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is MISSING else f.default


def _show(value: Any) -> str:
    if isinstance(value, list):
        return " ".join("none" if v is None else str(v) for v in value) or "[]"
    return "none" if value is None else str(value)


def _comma_list(kind: Callable[[str], Any]) -> Callable[[str], list]:
    """`--x a,b c` and `--x a b c` both give [a, b, c]."""

    def parse(text: str) -> list:
        return [kind(x) for x in text.split(",") if x]

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def _wrap(kind: Callable[[str], Any]) -> Callable[[str], list]:
    def parse(text: str) -> list:
        return [kind(text)]

    parse.__name__ = getattr(kind, "__name__", "value")
    return parse


def add_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    only: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    single: dict[str, tuple[str, str]] | None = None,
    defaults: dict[str, Any] | None = None,
    help: dict[str, str] | None = None,
    groups: dict[str, Iterable[str]] | None = None,
    required: Iterable[str] = (),
    aliases: dict[str, list[str]] | None = None,
) -> None:
    """One flag per field of `cls`. `single`: list fields that this command takes one value of,
    under another flag (`{"budgets": ("--budget", help)}`: `--budget 64` gives [64]).
    `defaults` / `help` override a field's default / help for this command only. `groups`:
    argument-group title -> field names (the rest go straight on `parser`). `aliases`: more
    spellings of a field's flag."""
    hints = typing.get_type_hints(cls)
    single, defaults, help, aliases = single or {}, defaults or {}, help or {}, aliases or {}
    names = [f.name for f in dataclasses.fields(cls)]
    wanted = [n for n in (only if only is not None else names) if n not in set(exclude)]
    by_name = {f.name: f for f in dataclasses.fields(cls)}
    targets: dict[str, Any] = {}
    for title, members in (groups or {}).items():
        g = parser.add_argument_group(title)
        targets.update({m: g for m in members})
    for name in wanted:
        f = by_name[name]
        md = f.metadata
        if not md.get("cli", True):
            continue
        where = targets.get(name, parser)
        default = defaults.get(name, _default(f))
        text = help.get(name, md.get("help", ""))
        kind = hints[name]
        choices = md.get("choices")
        choices = list(choices()) if callable(choices) else (list(choices) if choices else None)
        if kind is bool or kind == (bool | None):
            where.add_argument(flag_name(name), dest=name, default=default, help=text,
                               action=argparse.BooleanOptionalAction)  # fmt: skip
            continue
        if typing.get_origin(kind) in (typing.Union, types.UnionType) and typing.get_origin(
            inner := next(t for t in typing.get_args(kind) if t is not type(None))
        ) is list:
            kind = inner  # list[X] | None: a list flag whose default is None
        is_list = typing.get_origin(kind) is list
        base = typing.get_args(kind)[0] if is_list else kind
        base = next((t for t in typing.get_args(base) if t is not type(None)), base)  # X | None
        parse = md.get("type") or base
        if name in single:
            flag, text = single[name]
            where.add_argument(flag, dest=name, type=_wrap(parse), default=default,
                               metavar=md.get("metavar") or name.upper().rstrip("S"),
                               help=f"{text} (default: {_show(default)})")  # fmt: skip
            continue
        kw: dict[str, Any] = {"dest": name, "default": default,
                              "help": f"{text} (default: {_show(default)})".strip()}  # fmt: skip
        if name in set(required):
            kw.update(required=True, help=text)
        if md.get("metavar"):
            kw["metavar"] = md["metavar"]
        if is_list:
            kw.update(type=_comma_list(parse), nargs="+")
            if choices:
                kw["help"] += f"; from: {', '.join(map(str, choices))}"
        else:
            kw.update(type=parse, choices=choices)
        where.add_argument(flag_name(name), *md.get("aliases", ()), *aliases.get(name, []), **kw)


def flatten(value: Any) -> Any:
    """argparse gives [[a, b], [c]] for `--x a,b c`: one flat list."""
    if not isinstance(value, list):
        return value
    return [x for part in value for x in (part if isinstance(part, list) else [part])]


def from_args(cls: type, args: argparse.Namespace, **overrides: Any):
    """The config that the parsed flags describe (fields without a flag keep their default)."""
    values = {
        f.name: flatten(getattr(args, f.name))
        for f in dataclasses.fields(cls)
        if hasattr(args, f.name)
    }
    return cls(**{**values, **overrides})


def apply_config_file(parser: argparse.ArgumentParser, path: str) -> None:
    """Make the YAML file's values the defaults of `parser` (keys: field names or flag names);
    the command line, parsed afterwards, then wins over every one of them."""
    import yaml

    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ThinkscaleError(f"{path}: cannot read config ({e})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        raise ThinkscaleError(f"{where}: not valid YAML ({getattr(e, 'problem', e)})") from None
    loaded = loaded or {}
    if not isinstance(loaded, dict):
        raise ThinkscaleError(f"{path}: a config file is a mapping of field: value")
    actions = {}
    for a in parser._actions:
        for opt in a.option_strings:
            if opt.startswith("--") and not opt.startswith("--no-"):
                actions[opt[2:].replace("-", "_")] = a
        actions.setdefault(a.dest, a)
    unknown = sorted(k for k in loaded if str(k).replace("-", "_") not in actions or k == "config")
    if unknown:
        raise ThinkscaleError(f"{path}: unknown field(s) {', '.join(map(str, unknown))}")
    values = {}
    for key, value in loaded.items():
        action = actions[str(key).replace("-", "_")]
        values[action.dest] = _typed(action, value, f"{path}: field '{key}'")
        action.required = False  # the file gives it
    parser.set_defaults(**values)


def _typed(action: argparse.Action, value: Any, where: str) -> Any:
    """A YAML value run through the flag's own parser, so a file is checked as flags are."""
    if isinstance(action, argparse.BooleanOptionalAction):
        if not isinstance(value, bool):
            raise ThinkscaleError(f"{where}: expected true or false, got {value!r}")
        return value
    parse = action.type
    if parse is None or value is None:
        return value
    items = value if isinstance(value, list) else [value]
    try:
        parsed = [parse("none" if v is None else str(v)) for v in items]
    except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
        raise ThinkscaleError(f"{where}: {e}") from None
    if action.choices is not None:
        bad = [v for v in parsed if v not in action.choices]
        if bad:
            raise ThinkscaleError(f"{where}: {bad[0]!r} is not one of {', '.join(map(str, action.choices))}")
    if action.nargs == "+" or isinstance(value, list) and len(parsed) > 1:
        return flatten(parsed)
    return parsed[0]
