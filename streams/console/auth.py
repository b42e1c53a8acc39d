"""Passwords, signed session cookies and CSRF tokens of the console.

- Passwords are hashed with argon2id (argon2-cffi's defaults); the hash is all the store keeps.
- A session is a cookie holding ``{"u": login or null, "t": issued at, "c": CSRF token}``, base64url,
  then ``.``, then its HMAC-SHA256 under the console's key (``OTKLIK_CONSOLE_SECRET``). No signing
  library is installed here (aiohttp-session, itsdangerous), so the signature is the standard library's
  ``hmac``; it is compared in constant time, and a cookie older than the session's lifetime is refused.
  The cookie is HttpOnly and SameSite=Lax, and Secure behind TLS.
- Every form carries the session's CSRF token; a POST without it, or with another, is refused (403).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

import orjson
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["COOKIE", "Session", "SessionSigner", "hash_password", "password_stamp", "verify_password"]

COOKIE = "otklik_session"

_HASHER = PasswordHasher()
# Verified when the login is unknown, so that a wrong login costs what a wrong password costs.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(stored: str | None, password: str) -> bool:
    try:
        return _HASHER.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@dataclass(frozen=True, slots=True)
class Session:
    login: str | None
    issued_at: int
    csrf: str
    stamp: str = ""  # of the password it was signed in with (:func:`password_stamp`)

    @classmethod
    def anonymous(cls, now: float) -> Session:
        return cls(None, int(now), secrets.token_urlsafe(24))

    @classmethod
    def signed_in(cls, login: str, now: float, stamp: str) -> Session:
        # A fresh CSRF token at sign-in: a token seen before signing in is worth nothing after.
        return cls(login, int(now), secrets.token_urlsafe(24), stamp)

    def csrf_matches(self, given: Any) -> bool:
        return isinstance(given, str) and hmac.compare_digest(given.encode(), self.csrf.encode())


def password_stamp(stored_hash: str) -> str:
    """A short digest of the user's password hash, kept in the session: a new password (`otklik console
    add-user` again) changes it, and every session signed in with the old one ends."""
    return hashlib.sha256(stored_hash.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Cookie values for sessions, signed with ``key``; a value not signed by it, or too old, reads as None."""

    def __init__(self, key: bytes, max_age: int) -> None:
        if len(key) < 32:
            raise ValueError("the session key must be 32 bytes or more")
        self._key = hashlib.sha256(b"otklik-console-session\0" + key).digest()
        self.max_age = max_age

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def dumps(self, session: Session) -> str:
        payload = _b64(
            orjson.dumps({"u": session.login, "t": session.issued_at, "c": session.csrf, "s": session.stamp})
        )
        return f"{payload}.{self._mac(payload)}"

    def loads(self, value: str | None, now: float) -> Session | None:
        if not value or value.count(".") != 1:
            return None
        payload, mac = value.split(".")
        if not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        try:
            data = orjson.loads(_unb64(payload))
            session = Session(data["u"], int(data["t"]), str(data["c"]), str(data.get("s", "")))
        except (ValueError, KeyError, TypeError):
            return None
        if not (session.login is None or isinstance(session.login, str)):
            return None
        if now - session.issued_at > self.max_age or session.issued_at > now + 60:
            return None
        return session
