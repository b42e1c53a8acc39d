"""The operations console's rules, pure: roles, urgency, the dispute states and the sign-in limit.

The console (`streams/console/`) applies them to what it reads from the store; the rules themselves
know nothing of the web, the database or the clock (times are passed in).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

__all__ = [
    "DISPUTE_REASONS",
    "ROLES",
    "DisputeError",
    "DisputeState",
    "Role",
    "SignInLimiter",
    "Viewer",
    "decide",
    "share_used",
]

Role = Literal["operator", "curator", "page_admin", "analyst"]
ROLES: Final[tuple[Role, ...]] = ("operator", "curator", "page_admin", "analyst")

# The role names the console shows.
ROLE_TITLES: Final[dict[str, str]] = {
    "operator": "оператор ЦУР",
    "curator": "куратор муниципалитета",
    "page_admin": "администратор страницы",
    "analyst": "аналитик",
}


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in user as the rules see them."""

    login: str
    role: Role
    municipalities: frozenset[str] = field(default_factory=frozenset)
    pages: frozenset[str] = field(default_factory=frozenset)

    @property
    def sees_everything(self) -> bool:
        return self.role in ("operator", "analyst")

    def may_see(self, page: str, municipality: str) -> bool:
        """An operator and an analyst see every page; a curator the pages of their municipalities; a page
        administrator their own pages."""
        if self.sees_everything:
            return True
        if self.role == "curator":
            return municipality in self.municipalities
        return page in self.pages

    @property
    def may_correct(self) -> bool:
        """Correct triage (needs an answer / needs none): an operator or a curator."""
        return self.role in ("operator", "curator")

    @property
    def may_dispute(self) -> bool:
        """Dispute an item's judgement: a page administrator (of a page they see)."""
        return self.role == "page_admin"

    @property
    def may_decide(self) -> bool:
        """Accept or reject a dispute: an operator."""
        return self.role == "operator"


class Deadline(Protocol):
    """What :func:`share_used` needs of ``otklik.schemas.schedule.Deadline``."""

    seconds: int

    def elapsed(self, clock: object, start: int, end: int) -> int: ...


def share_used(deadline: Deadline, clock: object, created_at: int, now: int) -> float:
    """The share of the deadline an open item has used by ``now``, counted the deadline's way (working
    time on the page's clock, or wall time): 0 when just written, 1 when due, above 1 when overdue.

    The queue puts the largest first: an item with a 4-hour deadline half gone is more urgent than one
    with 8 hours a quarter gone, whatever their ages."""
    return deadline.elapsed(clock, created_at, now) / deadline.seconds


# ---- disputes ---------------------------------------------------------------------------------------

DisputeState = Literal["open", "accepted", "rejected"]

# A page administrator's reasons to dispute a judgement (the console's choices), with their titles.
DISPUTE_REASONS: Final[dict[str, str]] = {
    "answered_in_dm": "ответили в личных сообщениях",
    "not_addressed": "обращение не к нам",
    "duplicate": "дубликат другого обращения",
    "other": "другое (в тексте)",
}


class DisputeError(ValueError):
    """A step the dispute's state does not allow; the message says why."""


def decide(state: str, decision: str) -> DisputeState:
    """The state after an operator's ``decision`` (accept or reject) on a dispute in ``state``: only an
    open dispute is decided, once."""
    if state != "open":
        raise DisputeError(f"спор уже рассмотрен ({state})")
    if decision == "accept":
        return "accepted"
    if decision == "reject":
        return "rejected"
    raise DisputeError(f"решение {decision!r}: ожидается accept или reject")


# ---- signing in ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Failures:
    count: int = 0
    locked_until: float = 0.0


class SignInLimiter:
    """Wrong passwords in a row, per login and per address: after ``limit`` of them, that login (and
    that address) is refused for ``lockout`` seconds, whatever the password. A right password resets
    both counts. ``at`` is the caller's clock."""

    def __init__(self, limit: int = 10, lockout: float = 900.0, remembered: int = 100_000) -> None:
        self.limit = limit
        self.lockout = lockout
        self.remembered = remembered
        self._failures: dict[str, _Failures] = {}

    @staticmethod
    def keys(login: str, address: str) -> tuple[str, str]:
        return f"login:{login.casefold()}", f"address:{address}"

    def refused(self, keys: Iterable[str], at: float) -> bool:
        """True while any of ``keys`` is locked out."""
        return any((f := self._failures.get(key)) is not None and f.locked_until > at for key in keys)

    def failed(self, keys: Iterable[str], at: float) -> None:
        for key in keys:
            failures = self._failures.get(key)
            if failures is None:
                if len(self._failures) >= self.remembered:  # bounded memory: the oldest entries go first
                    self._failures.pop(next(iter(self._failures)))
                failures = self._failures[key] = _Failures()
            if failures.locked_until and failures.locked_until <= at:
                failures.count, failures.locked_until = 0, 0.0  # the lockout served: a fresh start
            failures.count += 1
            if failures.count >= self.limit:
                failures.locked_until = at + self.lockout

    def succeeded(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._failures.pop(key, None)
