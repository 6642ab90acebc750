"""``digest serve``: refuses without a secret key or an initialised database; serves otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
from click.testing import CliRunner
from sqlalchemy import Engine

from digest.cli import main
from digest.config.settings import Settings
from tests.conftest import cli_env, free_port


def test_help_has_an_example() -> None:
    result = CliRunner().invoke(main, ["serve", "--help"])
    assert result.exit_code == 0 and "Example:" in result.output and "--port" in result.output


def test_refuses_without_a_secret_key(settings: Settings, engine: Engine) -> None:
    env = {**cli_env(settings), "DIGEST_SECRET_KEY": ""}
    result = CliRunner().invoke(main, ["serve", "--port", str(free_port())], env=env)
    assert result.exit_code == 2
    assert "DIGEST_SECRET_KEY" in result.output and "Hint:" in result.output


def test_refuses_before_digest_init(settings: Settings) -> None:
    result = CliRunner().invoke(main, ["serve", "--port", str(free_port())],
                                env=cli_env(settings))
    assert result.exit_code == 2 and "digest init" in result.output


def test_serves_until_stopped(settings: Settings, engine: Engine) -> None:
    port = free_port()
    env = {**os.environ, **cli_env(settings)}
    proc = subprocess.Popen([sys.executable, "-m", "digest", "serve", "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/digest/healthz", timeout=2)
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "serve did not start"
                time.sleep(0.1)
        assert answer.status_code == 200 and answer.json()["status"] == "ok"
        assert "server" not in answer.headers  # no version banner
    finally:
        proc.terminate()
        output = proc.communicate(timeout=10)[0].decode()
    # uvicorn shuts down cleanly, then re-raises SIGTERM so the exit status says so.
    assert "Application shutdown complete" in output, output
    assert "Serving https://stiri.example.ro/digest" in output
