"""`make run`'s mail catcher (streams/tools/mail_catcher.py): every e-mail sent to it over SMTP becomes
one .eml file that reads back as the message sent, with its envelope."""

from __future__ import annotations

import smtplib
import subprocess
import sys
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

from otklik.streams.tools.mail_catcher import start
from tests.conftest import free_port


def message(subject: str, body: str) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "otklik@localhost"
    mail["To"] = "smm-200000001@example.org"
    mail["Subject"] = subject
    mail.set_content(body)
    return mail


def test_each_mail_becomes_an_eml_file_with_its_envelope(tmp_path: Path) -> None:
    port = free_port()
    controller = start(tmp_path / "mail", port=port)
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.send_message(message("Просрочен ответ: ЦРБ Тары", "Ждёт ответа 5 ч."))
            client.send_message(
                message("Второе", "текст"), to_addrs=["cur-ops@example.ru", "smm-200000001@example.org"]
            )
    finally:
        controller.stop()
    files = sorted((tmp_path / "mail").iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]
    first, second = (message_from_bytes(f.read_bytes(), policy=default_policy) for f in files)
    assert first["Subject"] == "Просрочен ответ: ЦРБ Тары"
    assert first.get_body().get_content().strip() == "Ждёт ответа 5 ч."
    assert first["Return-Path"] == "<otklik@localhost>"
    assert second["X-Original-To"] == "cur-ops@example.ru, smm-200000001@example.org"


def test_the_command_runs_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "otklik.streams.tools.mail_catcher", "--dir", str(tmp_path), "--port", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and "mail catcher on" in proc.stdout.readline()
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.send_message(message("Проверка", "раз"))
        proc.terminate()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert len(list(tmp_path.glob("*.eml"))) == 1
