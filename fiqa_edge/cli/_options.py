"""The options every command spells the same way, and the old spellings kept for one release.

The convention (docs/contributing.md, "Naming"): the model is ``--model``; reports are ``--json PATH``
(``-`` or the flag alone: stdout); list options are repeated or comma-separated; per-target settings are
``--<target>-<setting>``. A renamed option still works, hidden from ``--help``, and prints one line
naming its new spelling.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import click

__all__ = ["RenamingCommand", "deprecated", "json_option", "legacy_argument", "list_option", "model_option", "take_model",
           "take_models"]


def deprecated(old: str, new: str) -> None:
    """The one line an old spelling prints (stderr)."""
    click.echo(f"fiqa-edge: {old} is deprecated and goes in the next release; use {new}", err=True)


class RenamingCommand(click.Command):
    """A command whose renamed options (``renamed``: old flag → new flag) still parse, with one deprecation line."""

    def __init__(self, *args: Any, renamed: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.renamed = renamed or {}

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rewritten = []
        for i, arg in enumerate(args):
            if arg == "--":
                rewritten += args[i:]
                break
            flag, eq, value = arg.partition("=")
            if flag in self.renamed:
                deprecated(flag, self.renamed[flag])
                arg = self.renamed[flag] + eq + value
            rewritten.append(arg)
        return super().parse_args(ctx, rewritten)


class _HiddenArgument(click.Argument):
    """A positional argument left out of the usage line (an old spelling; with no help, the help leaves it out)."""

    def get_usage_pieces(self, ctx: click.Context) -> list[str]:
        return []


def legacy_argument(name: str, *, nargs: int = 1) -> Callable:
    """The model once given as a positional argument (``nargs=-1``: several): hidden, merged by :func:`take_models`."""
    return click.argument(name, cls=_HiddenArgument, nargs=nargs, required=False, type=str)


def take_models(given: Sequence[str], legacy: Sequence[str] | str | None, what: str = "MODEL") -> tuple[str, ...]:
    """The ``--model`` values, or the old positional ones with a deprecation line."""
    old = (legacy,) if isinstance(legacy, str) else tuple(legacy or ())
    if old:
        deprecated(f"{what} as a positional argument", "--model " + " --model ".join(old))
    return tuple(given) + old


def take_model(given: str | None, legacy: str | None) -> str | None:
    """The one ``--model``, or the old positional one with a deprecation line (both given: a usage error)."""
    if given is not None and legacy is not None:
        msg = f"give one model: --model {given} or MODEL {legacy}, not both"
        raise click.UsageError(msg)
    return take_models((), legacy)[0] if legacy is not None else given


def model_option(help: str, *, multiple: bool = False) -> Callable:
    """``--model`` / ``-m``: a checkpoint, bundle folder, model file or bundled model's name."""
    return click.option("-m", "--model", "models" if multiple else "model", multiple=multiple, metavar="MODEL", help=help)


def json_option(help: str = "Write the JSON report to PATH ('-' or no PATH: stdout).") -> Callable:
    """``--json [PATH]``: the flag alone prints to stdout."""
    return click.option("--json", "json_out", metavar="PATH", is_flag=False, flag_value="-", default=None, help=help)


#: how a list option of numbers names what a bad item is not
_NUMBERS: dict[Callable, str] = {int: "a whole number", float: "a number"}


def _split(kind: Callable[[str], Any]) -> Callable:
    """The callback of :func:`list_option`: every value split at commas, each item parsed by ``kind``."""
    def callback(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[Any, ...]:
        parsed = []
        for item in (v.strip() for value in values for v in value.split(",")):
            if not item:
                continue
            try:
                parsed.append(kind(item))
            except ValueError as exc:
                msg = f"{item!r} is not {_NUMBERS[kind]}" if kind in _NUMBERS else str(exc)
                raise click.BadParameter(msg, ctx=ctx, param=param) from None
        return tuple(parsed)
    return callback


def list_option(*decls: str, kind: Callable[[str], Any] = str, default: Sequence[str] = (), **kwargs: Any) -> Callable:
    """A list of names or numbers: the option repeated, or its values separated by commas (or both)."""
    shown = ",".join(default)
    return click.option(*decls, multiple=True, default=(shown,) if default else (), callback=_split(kind),
                        show_default=shown if default else False, **kwargs)
