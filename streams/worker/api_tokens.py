"""Who may post corrections to the worker's API: bearer tokens from ``OTKLIK_API_TOKENS``
(docs/triage.md, "Corrections").

The file holds one ``TOKEN NAME`` line per person or system: the token, then whitespace, then the
name recorded as ``by`` on each of their corrections (the rest of the line: it may contain spaces).
Blank lines and lines starting with ``#`` are skipped. A token is at least :data:`MIN_TOKEN_LENGTH`
characters of RFC 6750's token alphabet (``python -c 'import secrets; print(secrets.token_urlsafe(32))'``
makes one). A bad line stops start-up with its number; the error never repeats a token.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from pathlib import Path

MIN_TOKEN_LENGTH = 32
_TOKEN = re.compile(r"^[A-Za-z0-9\-._~+/]+=*$")  # RFC 6750's b64token
_BEARER = re.compile(r"^Bearer +(\S+) *$", re.IGNORECASE)


class ApiTokensError(ValueError):
    """A token file that cannot be used; the message names the file and the line, never a token."""


def _digest(token: str) -> bytes:
    # Compared as digests of one length, so the comparison's time says nothing about a token's length.
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True)
class ApiTokens:
    """The tokens of one file: digest → name."""

    names: dict[bytes, str]

    @classmethod
    def load(cls, path: Path) -> ApiTokens:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ApiTokensError(f"{path}: cannot be read ({exc.__class__.__name__})") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "tokens") -> ApiTokens:
        names: dict[bytes, str] = {}
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            token, *rest = line.split(maxsplit=1)
            name = rest[0] if rest else ""
            where = f"{source}, line {number}"
            if not _TOKEN.match(token):
                raise ApiTokensError(f"{where}: the token has characters other than A-Z a-z 0-9 - . _ ~ + / =")
            if len(token) < MIN_TOKEN_LENGTH:
                raise ApiTokensError(f"{where}: the token is shorter than {MIN_TOKEN_LENGTH} characters")
            if not name:
                raise ApiTokensError(f"{where}: no name after the token (expected `TOKEN NAME`)")
            if len(name) > 200:  # the limit of Override.by
                raise ApiTokensError(f"{where}: the name is longer than 200 characters")
            digest = _digest(token)
            if digest in names:
                raise ApiTokensError(f"{where}: the same token as an earlier line")
            names[digest] = name
        if not names:
            raise ApiTokensError(f"{source}: no tokens (expected `TOKEN NAME` lines)")
        return cls(names)

    def name_of(self, authorization: str | None) -> str | None:
        """The name whose token an ``Authorization: Bearer TOKEN`` header carries; None otherwise."""
        match = _BEARER.match(authorization or "")
        if match is None:
            return None
        given = _digest(match.group(1))
        found = None
        for digest, name in self.names.items():  # every entry compared: the time does not say which matched
            if hmac.compare_digest(given, digest):
                found = name
        return found
