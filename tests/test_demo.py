"""``digest demo`` in an empty folder with nothing configured: real sink, real send."""

from __future__ import annotations

import email
import email.policy
import os
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import SECRET
from tests.forked_cli import run_digest


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


def _demo(folder: Path) -> Done:
    """``digest demo`` in a process of its own, from ``folder`` (tests/forked_cli.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    # A .env pointing at a real server must not be used by the demo.
    (folder / ".env").write_text(f"DIGEST_SMTP_HOST=smtp.example.invalid\n"
                                 f"DIGEST_SECRET_KEY={SECRET}\n")
    process = run_digest("demo", env=env, cwd=folder)
    out, err = process.communicate(timeout=60)
    return Done(process.wait(), out, err)


def test_demo_sends_todays_digest_into_a_folder(tmp_path: Path) -> None:
    first = _demo(tmp_path)
    assert first.returncode == 0, first.stderr
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 3
    assert "3 message(s) saved in" in first.stdout and str(files[0]) in first.stdout
    for path in files:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        for header in ("From", "To", "Message-ID", "List-Unsubscribe", "Date", "Subject"):
            assert message[header], header
        assert "Argeș" in message["Subject"]
        text = message.get_body(("plain",))
        assert text is not None and "Pitești" in text.get_content()
    second = _demo(tmp_path)
    assert second.returncode == 0 and "sent already" in second.stdout
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 3
