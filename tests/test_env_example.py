"""`.env.example` documents every setting `load_settings` reads, and loads as it stands."""

from __future__ import annotations

import re
from pathlib import Path

import digest.config.settings
from digest.config.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_in_env_example_with_a_comment() -> None:
    # settings.py and the modules it reads groups of keys with (feedback_settings.py).
    folder = Path(digest.config.settings.__file__).parent
    source = "".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.py")))
    read = set(re.findall(r'"(DIGEST_[A-Z_0-9]+)"', source))
    lines = (ROOT / ".env.example").read_text(encoding="utf-8").splitlines()
    documented = {ln.split("=", 1)[0] for ln in lines if ln.startswith("DIGEST_")}
    assert read - {"DIGEST_SECRET_KEY", "DIGEST_SMTP_PASSWORD"} <= documented
    assert documented <= read, f"documented but never read: {documented - read}"
    for i, line in enumerate(lines):
        if line.startswith("DIGEST_") and i > 0:
            assert lines[i - 1].startswith("#") or lines[i - 1].startswith("DIGEST_"), line


def test_env_example_loads_as_is() -> None:
    settings = load_settings({}, env_file=ROOT / ".env.example")
    assert settings.database_url == "sqlite:///digest.db"
