"""The README's commands as written: every `digest ...` line parses against the real CLI (so the
README cannot drift from the commands), and the subscriber walkthrough runs end to end."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config.settings import Settings
from tests.conftest import cli_env

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_commands() -> list[tuple[str, list[str]]]:
    """(section, argv) for every `digest ...` line inside a ```sh block."""
    found, section, in_sh = [], "", False
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            section = line.lstrip("# ").strip()
        if line.startswith("```"):
            in_sh = line.strip() == "```sh"
            continue
        if in_sh and line.startswith("digest "):
            found.append((section, shlex.split(line.split("  #")[0], comments=True)[1:]))
    return found


COMMANDS = readme_commands()


def test_the_readme_shows_the_main_commands() -> None:
    first = {argv[0] for _, argv in COMMANDS}
    pairs = {tuple(argv[:2]) for _, argv in COMMANDS}
    assert {"demo", "init", "run", "send", "serve", "preview", "fetch"} <= first
    assert {("subscribers", "import"), ("subscribers", "export")} <= pairs


@pytest.mark.parametrize("argv", [a for _, a in COMMANDS], ids=" ".join)
def test_every_readme_command_parses(argv: list[str], tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("people.csv", "articles.json", "backup.csv"):
        (tmp_path / name).write_text("email\n", encoding="utf-8")
    command: click.Command = main
    ctx = main.make_context("digest", list(argv), resilient_parsing=False)
    args = list(argv)
    while isinstance(command, click.Group) and args:
        name, sub, args = command.resolve_command(ctx, args)
        assert sub is not None, f"README shows an unknown command: digest {' '.join(argv)}"
        ctx = sub.make_context(name or "", list(args), parent=ctx)
        command = sub


def test_subscriber_walkthrough_runs_as_written(settings: Settings, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "people.csv").write_text("email,name\nmaria@exemplu.ro,Maria Bălan\n",
                                         encoding="utf-8")
    runner, env = CliRunner(), cli_env(settings)
    assert runner.invoke(main, ["init"], env=env).exit_code == 0
    walkthrough = [a for section, a in COMMANDS if section == "Subscribers"]
    assert len(walkthrough) >= 6
    for argv in walkthrough:
        result = runner.invoke(main, argv, env=env)
        assert result.exit_code == 0, (argv, result.output)
    assert os.path.exists(tmp_path / "backup.csv")
    assert re.search(r"maria@exemplu\.ro", (tmp_path / "backup.csv").read_text("utf-8"))


def _leaf_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += _leaf_commands(command, (*prefix, name))
        else:
            found.append((*prefix, name))
    return found


@pytest.mark.parametrize("path", _leaf_commands(main), ids=" ".join)
def test_every_command_appears_in_the_readme(path: tuple[str, ...]) -> None:
    # As sqlite-utils does: a command nobody can find in the README does not exist for users.
    shown = {tuple(argv[:len(path)]) for _, argv in COMMANDS}
    assert path in shown, f"`digest {' '.join(path)}` is not shown in any ```sh block of README.md"
