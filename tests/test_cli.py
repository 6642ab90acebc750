"""Every command has help with an example; errors exit 2 with a hint; the module entry point."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from digest.cli import main
from digest.config.settings import Settings
from tests.conftest import cli_env


def walk(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in sorted(group.commands.items()):
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from walk(command, (*prefix, name))


COMMANDS = list(walk(main))


def test_the_contract_commands_exist() -> None:
    assert {("init",), ("subscribers", "add"), ("subscribers", "import"),
            ("subscribers", "export")} <= set(COMMANDS)


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help_with_an_example(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example" in result.output, f"`digest {' '.join(path)} --help` shows no example"


def test_commands_on_an_uninitialised_database_say_to_run_init(settings: Settings) -> None:
    result = CliRunner().invoke(main, ["subscribers", "list"], env=cli_env(settings))
    assert result.exit_code == 2
    assert "digest init" in result.stderr


def test_bad_setting_exits_2_with_the_key_and_a_hint(settings: Settings) -> None:
    env = cli_env(settings) | {"DIGEST_SMTP_PORT": "seventy"}
    result = CliRunner().invoke(main, ["subscribers", "list"], env=env)
    assert result.exit_code == 2
    assert "DIGEST_SMTP_PORT='seventy'" in result.stderr and "Hint:" in result.stderr


def test_add_show_list_unsubscribe(settings: Settings) -> None:
    runner, env = CliRunner(), cli_env(settings)
    assert runner.invoke(main, ["init"], env=env).exit_code == 0
    added = runner.invoke(main, ["subscribers", "add", "Stefan@Exemplu.ro", "--name",
                                 "Ștefan Mureșan", "--topics", "sport"], env=env)
    assert added.exit_code == 0 and "stefan@exemplu.ro (active)" in added.stdout
    again = runner.invoke(main, ["subscribers", "add", "stefan@exemplu.ro"], env=env)
    assert again.exit_code == 2 and "already" in again.stderr
    shown = runner.invoke(main, ["subscribers", "show", "stefan@exemplu.ro"], env=env)
    assert "Ștefan Mureșan" in shown.stdout and "subscribe" in shown.stdout
    runner.invoke(main, ["subscribers", "unsubscribe", "stefan@exemplu.ro"], env=env)
    listed = runner.invoke(main, ["subscribers", "list", "--status", "unsubscribed"], env=env)
    assert "stefan@exemplu.ro" in listed.stdout and "unsubscribed" in listed.stdout
    missing = runner.invoke(main, ["subscribers", "show", "nobody@exemplu.ro"], env=env)
    assert missing.exit_code == 1 and "digest subscribers list" in missing.stderr


def test_python_dash_m_digest_works() -> None:
    done = subprocess.run([sys.executable, "-m", "digest", "--version"], capture_output=True,
                          text=True, check=True)
    assert "digest" in done.stdout


def test_add_rejects_an_unknown_timezone(settings: Settings) -> None:
    runner, env = CliRunner(), cli_env(settings)
    runner.invoke(main, ["init"], env=env)
    result = runner.invoke(main, ["subscribers", "add", "ana@exemplu.ro", "--timezone",
                                  "Europe/Pitesti"], env=env)
    assert result.exit_code == 2 and "unknown timezone" in result.stderr
