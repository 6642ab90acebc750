"""The development sink: a real SMTP server writing one .eml per recipient, in-process and as
``digest sink`` in its own process."""

from __future__ import annotations

import email
import email.policy
import errno
import os
import signal
import smtplib
import subprocess
import sys
from pathlib import Path

import pytest

from digest.config.errors import ConfigError
from digest.transport.sink import Sink, free_port

MESSAGE = ("From: Știri <stiri@example.ro>\r\nTo: ana@example.ro\r\n"
           "Subject: =?utf-8?q?Bun=C4=83_diminea=C8=9Ba?=\r\nMessage-ID: <1@example.ro>\r\n"
           "\r\nSalut!\r\n").encode()


def test_one_file_per_recipient_and_a_line_each(tmp_path: Path) -> None:
    lines: list[str] = []
    with Sink(tmp_path / "outbox", port=free_port(), on_message=lines.append) as sink, \
            smtplib.SMTP("127.0.0.1", sink.port) as client:
        client.sendmail("stiri@example.ro", ["ana@example.ro", "ion@example.ro"], MESSAGE)
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert [f.name.split("-", 3)[-1] for f in files] == ["ana_at_example.ro.eml",
                                                          "ion_at_example.ro.eml"]
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["Subject"] == "Bună dimineața" and parsed["Message-ID"] == "<1@example.ro>"
    assert len(lines) == 2 and "to ion@example.ro" in lines[1] and "Bună dimineața" in lines[1]


def test_a_busy_port_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Sink(tmp_path, port=free_port()) as first:
        # aiosmtpd reports a failed bind only once its ready timeout (5 s) has run out; binding
        # takes milliseconds, and the errno check below tells a refused bind from a timeout.
        monkeypatch.setenv("AIOSMTPD_CONTROLLER_TIMEOUT", "1")
        with pytest.raises(ConfigError, match="Cannot listen") as info:
            Sink(tmp_path, port=first.port).start()
    assert "--port" in info.value.hint
    assert getattr(info.value.__cause__, "errno", None) == errno.EADDRINUSE


def test_digest_sink_command(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "sink", "--port", str(port), "--dir", "out"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")})
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith(f"Listening on 127.0.0.1:{port}")
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail("stiri@example.ro", ["ana@example.ro"], MESSAGE)
        assert "to ana@example.ro" in process.stdout.readline()
        process.send_signal(signal.SIGINT)
        # Generous: under a loaded machine the interpreter's start and exit are what take time.
        rest, _ = process.communicate(timeout=60)
        assert process.returncode == 0 and "Stopped." in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert len(list((tmp_path / "out").glob("*.eml"))) == 1
