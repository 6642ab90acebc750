"""A development SMTP server: every message it receives is written to a folder as ``.eml``.

One file per recipient (``20261128-054500-000001-ana_at_example.ro.eml``), exactly the bytes
received, so a file opens in any mail program and tests can parse it. A line per message goes
to ``on_message`` (the CLI prints it). It accepts everything and relays nothing.
"""

from __future__ import annotations

import datetime as dt
import email.policy
import itertools
import re
import socket
from collections.abc import Callable
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from digest.config.errors import ConfigError

__all__ = ["Sink", "SinkHandler", "free_port"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (aiosmtpd needs a real number, not 0)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class SinkHandler:
    def __init__(self, folder: Path, on_message: Callable[[str], None] | None = None) -> None:
        self.folder = folder
        self.on_message = on_message
        self.count = 0
        self._numbers = itertools.count(1)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = bytes(envelope.original_content or envelope.content)
        headers = BytesHeaderParser(policy=email.policy.default).parsebytes(data)
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        for recipient in envelope.rcpt_tos:
            safe = _UNSAFE.sub("_", recipient.replace("@", "_at_"))[:100]
            path = self.folder / f"{stamp}-{next(self._numbers):06d}-{safe}.eml"
            path.write_bytes(data)
            self.count += 1
            if self.on_message is not None:
                self.on_message(f"{path}  to {recipient}  {headers.get('Subject', '')}")
        return "250 2.0.0 OK: saved"


class Sink:
    """``with Sink(folder, port=0) as sink:`` runs the server in a thread; ``sink.port``."""

    def __init__(self, folder: Path, host: str = "127.0.0.1", port: int = 1025,
                 on_message: Callable[[str], None] | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.handler = SinkHandler(folder, on_message)
        self._controller = Controller(self.handler, hostname=host, port=port,
                                      decode_data=False, data_size_limit=None)

    @property
    def port(self) -> int:
        return int(self._controller.port)

    def start(self) -> Sink:
        try:
            self._controller.start()
        except (OSError, RuntimeError, TimeoutError) as exc:  # e.g. the port is taken
            self._controller.stop(no_assert=True)
            raise ConfigError(f"Cannot listen on {self._controller.hostname}:"
                              f"{self._controller.port}: {exc}",
                              "choose another --port, or stop what listens there") from exc
        return self

    def stop(self) -> None:
        self._controller.stop()

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
