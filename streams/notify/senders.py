"""Channels the notifier writes through: e-mail (SMTP, stdlib), Telegram Bot API and MAX bot API (HTTP).

Every sender has ``channel`` (the registry contact's field: ``email``, ``telegram``, ``max``) and
``async send(address, message)``. A failure raises :class:`TransientError` (worth retrying: the network,
a 4xx SMTP reply, HTTP 429 or 5xx) or :class:`PermanentError` (a bad address, a refused token): the
notifier retries the first with backoff and records the second at once.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any, Protocol

import aiohttp

__all__ = [
    "Attachment",
    "DeliveryError",
    "MaxSender",
    "Message",
    "PermanentError",
    "Sender",
    "SmtpSender",
    "TelegramSender",
    "TransientError",
]


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file sent with an e-mail (the monthly rating's XLSX); the bot channels send the text only."""

    filename: str
    content: bytes
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    text: str
    attachments: tuple[Attachment, ...] = ()


class DeliveryError(Exception):
    """A message that did not go out."""


class TransientError(DeliveryError):
    """May succeed later; ``retry_after`` is the server's own hint in seconds, when it gave one."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class PermanentError(DeliveryError):
    """Will not succeed by retrying (bad address, bad token, message refused)."""


class Sender(Protocol):
    channel: str

    async def send(self, address: str, message: Message) -> None: ...

    async def close(self) -> None: ...


class SmtpSender:
    """E-mail over SMTP with the standard library, in a thread so the event loop keeps serving webhooks."""

    channel = "email"

    def __init__(
        self,
        host: str,
        port: int = 25,
        sender: str = "otklik@localhost",
        *,
        user: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        use_ssl: bool = False,
        timeout: float = 15.0,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.user, self.password = user, password
        self.starttls, self.use_ssl, self.timeout = starttls, use_ssl, timeout

    def build(self, address: str, message: Message) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = address
        mail["Subject"] = message.subject
        mail["Date"] = formatdate(localtime=False)
        mail["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or "otklik")
        mail.set_content(message.text)  # UTF-8, quoted-printable or base64 as the text needs
        for attachment in message.attachments:
            maintype, _, subtype = attachment.content_type.partition("/")
            mail.add_attachment(attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename)
        return mail

    def _send_sync(self, address: str, message: Message) -> None:
        mail = self.build(address, message)
        try:
            if self.use_ssl:
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout, context=ssl.create_default_context()
                )
            else:
                client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
            with client:
                if self.starttls and not self.use_ssl:
                    client.starttls(context=ssl.create_default_context())
                if self.user:
                    client.login(self.user, self.password or "")
                client.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(code >= 500 for code in codes):
                raise PermanentError(f"recipient refused: {exc.recipients}") from exc
            raise TransientError(f"recipient deferred: {exc.recipients}") from exc
        except smtplib.SMTPAuthenticationError as exc:
            raise PermanentError(f"SMTP login refused: {exc.smtp_code} {exc.smtp_error!r}") from exc
        except smtplib.SMTPResponseException as exc:
            error = PermanentError if exc.smtp_code >= 500 else TransientError
            raise error(f"SMTP {exc.smtp_code} {exc.smtp_error!r}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise TransientError(f"SMTP {type(exc).__name__}: {exc}") from exc

    async def send(self, address: str, message: Message) -> None:
        await asyncio.to_thread(self._send_sync, address, message)

    async def close(self) -> None:
        return None


class _HttpSender:
    """What the bot senders share: one aiohttp session, errors sorted into transient and permanent."""

    channel = ""

    def __init__(self, token: str, base_url: str, timeout: float = 15.0) -> None:
        self.token = token
        self.base_url = base_url.rstrip("/")
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        return self._session

    async def _post(self, url: str, **kwargs: Any) -> tuple[int, Any, dict[str, str]]:
        try:
            async with self.session().post(url, **kwargs) as resp:
                try:
                    body = await resp.json(content_type=None)
                except ValueError:
                    body = None
                return resp.status, body, dict(resp.headers)
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise TransientError(f"{self.channel}: {type(exc).__name__}: {exc}") from exc

    def _judge(self, status: int, body: Any, headers: dict[str, str], retry_after: float | None) -> None:
        if 200 <= status < 300:
            return
        description = body.get("description") or body.get("message") if isinstance(body, dict) else None
        reason = f"{self.channel}: HTTP {status}" + (f": {description}" if description else "")
        if retry_after is None and headers.get("Retry-After", "").isdigit():
            retry_after = float(headers["Retry-After"])
        if status == 429 or status >= 500:
            raise TransientError(reason, retry_after)
        raise PermanentError(reason)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class TelegramSender(_HttpSender):
    """Telegram Bot API ``sendMessage``: the address is a chat id, or a channel's @username."""

    channel = "telegram"

    def __init__(self, token: str, base_url: str = "https://api.telegram.org", timeout: float = 15.0) -> None:
        super().__init__(token, base_url, timeout)

    async def send(self, address: str, message: Message) -> None:
        status, body, headers = await self._post(
            f"{self.base_url}/bot{self.token}/sendMessage",
            json={"chat_id": address, "text": f"{message.subject}\n\n{message.text}", "disable_web_page_preview": True},
        )
        retry_after = None
        if isinstance(body, dict):
            retry_after = (body.get("parameters") or {}).get("retry_after")
            if 200 <= status < 300 and body.get("ok") is False:
                raise PermanentError(f"telegram: {body.get('description')}")
        self._judge(status, body, headers, float(retry_after) if retry_after is not None else None)


class MaxSender(_HttpSender):
    """MAX bot API ``POST /messages``: the address is a user id, or ``chat:<id>`` for a group chat.
    The bot's token goes in the ``Authorization`` header."""

    channel = "max"

    def __init__(self, token: str, base_url: str = "https://platform-api.max.ru", timeout: float = 15.0) -> None:
        super().__init__(token, base_url, timeout)

    async def send(self, address: str, message: Message) -> None:
        if address.startswith("chat:"):
            params = {"chat_id": address[len("chat:") :]}
        else:
            params = {"user_id": address}
        status, body, headers = await self._post(
            f"{self.base_url}/messages",
            params=params,
            headers={"Authorization": self.token},
            json={"text": f"{message.subject}\n\n{message.text}", "notify": True},
        )
        self._judge(status, body, headers, None)
