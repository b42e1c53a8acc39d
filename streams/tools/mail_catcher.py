"""A local mail catcher for `make run` (README.md, "The two commands"): an SMTP server on loopback
(aiosmtpd) that writes each e-mail it is sent as an ``.eml`` file in a folder and delivers nothing, so
that the alerts of a local run can be read without a real mail server.

    python -m otklik.streams.tools.mail_catcher --dir .run/local/mail --port 2525

Each file is the message as received, after two header lines a mail server would add on delivery
(``Return-Path`` and ``X-Original-To``: the envelope's sender and recipients). It runs until SIGINT or
SIGTERM.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["EmlWriter", "main", "start"]


class EmlWriter:
    """aiosmtpd's handler: every message accepted is written to ``folder`` as ``<time>-<n>.eml``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._numbers = itertools.count(1)
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        head = f"Return-Path: <{envelope.mail_from}>\r\nX-Original-To: {', '.join(envelope.rcpt_tos)}\r\n"
        name = f"{time.strftime('%Y%m%dT%H%M%S')}-{next(self._numbers):04d}.eml"
        # Written under another name first: a reader of the folder never sees half a message.
        partial = self.folder / f".{name}.part"
        partial.write_bytes(head.encode("utf-8") + content)
        os.replace(partial, self.folder / name)
        return "250 OK: kept as " + name


def start(folder: Path, host: str = "127.0.0.1", port: int = 2525) -> Any:
    """The catcher running in a thread of its own; ``.stop()`` it."""
    from aiosmtpd.controller import Controller

    controller = Controller(EmlWriter(folder), hostname=host, port=port)
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="keep every e-mail sent to this SMTP server as an .eml file")
    parser.add_argument("--dir", type=Path, required=True, help="the folder of the .eml files")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=2525, help="the port (2525)")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    controller = start(args.dir, args.host, args.port)
    print(f"mail catcher on {args.host}:{args.port}, writing to {args.dir}", flush=True)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
