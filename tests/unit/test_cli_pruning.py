"""The command line builds only the commands it reaches (start-up), and says exactly what the whole
command tree would say: the same help, listings, errors and suggestions."""

from __future__ import annotations

from unittest import mock

import pytest
import typer
from typer.testing import CliRunner

from inkless.cli.main import _command_name, _command_path, _pruned, app


def _groups(typer_app: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for group in typer_app.registered_groups:
        assert group.name and group.typer_instance is not None
        paths += _groups(group.typer_instance, (*prefix, group.name))
    return paths


def _group_at(path: tuple[str, ...]) -> typer.Typer:
    typer_app = app
    for name in path:
        found = next(g.typer_instance for g in typer_app.registered_groups if g.name == name)
        assert found is not None
        typer_app = found
    return typer_app


GROUPS = _groups(app)
# Every group's help, the help of each group's first command, and errors at both levels.
CASES = [
    *[(*path, "--help") for path in GROUPS],
    *[(*path, _command_name(_group_at(path).registered_commands[0]), "--help")
      for path in GROUPS if _group_at(path).registered_commands],
    ("nosuch",), ("fax", "nosuch"), ("fax", "sned"), ("snd", "x"), ("route",), (), ("--version",),
    ("send",), ("fax", "send"), ("seal", "--page", "x"),
]


_WHOLE: list[object] = []


def _whole_tree() -> object:
    """The whole tree as click commands, built once (what every start-up built before pruning)."""
    if not _WHOLE:
        _WHOLE.append(typer.main.get_command(app))
    return _WHOLE[0]


def _run(typer_app: typer.Typer | None, args: tuple[str, ...]) -> tuple[int, str]:
    if typer_app is None:
        with mock.patch("typer.testing._get_command", lambda _app: _whole_tree()):
            result = CliRunner().invoke(app, list(args), prog_name="inkless")
    else:
        result = CliRunner().invoke(typer_app, list(args), prog_name="inkless")
    assert not isinstance(result.exception, AssertionError | TypeError | AttributeError), result.exception
    return result.exit_code, result.output


def test_there_is_a_tree_to_prune() -> None:
    assert len(GROUPS) > 10 and sum(len(_group_at(p).registered_commands) for p in GROUPS) > 50


@pytest.mark.parametrize("args", CASES, ids=lambda args: " ".join(args) or "(nothing)")
def test_a_pruned_tree_answers_as_the_whole_tree(args: tuple[str, ...]) -> None:
    assert _run(_pruned(app, _command_path(list(args))), args) == _run(None, args)


def test_only_the_named_command_is_kept() -> None:
    pruned = _pruned(app, ["fax", "send", "FILE"])
    assert pruned.registered_commands == [] and [g.name for g in pruned.registered_groups] == ["fax"]
    fax = pruned.registered_groups[0].typer_instance
    assert fax is not None and [_command_name(c) for c in fax.registered_commands] == ["send"]
    # the whole tree is untouched
    assert len(_group_at(("fax",)).registered_commands) > 1 and len(app.registered_groups) > 10


def test_the_path_stops_at_the_first_option() -> None:
    assert _command_path(["fax", "send", "a.pdf", "--to", "x", "y"]) == ["fax", "send", "a.pdf"]
    assert _command_path(["--help", "fax"]) == []
