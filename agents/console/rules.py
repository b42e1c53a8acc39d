"""The operations console's rules, pure: roles, urgency, the dispute states, the sign-in limit, and the
words for the engine's rule behind an item's judgement.

The console (`streams/console/`) applies them to what it reads from the store; the rules themselves
know nothing of the web, the database or the clock (times are passed in).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

__all__ = [
    "DISPUTE_REASONS",
    "ROLES",
    "DisputeError",
    "DisputeState",
    "Judgement",
    "Role",
    "SignInLimiter",
    "Viewer",
    "decide",
    "explain",
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


# ---- why an item was judged as it was -----------------------------------------------------------

# Triage's reasons (docs/triage.md, "Reasons"), and a correction's, as the console names them.
REASON_TITLES: Final[dict[str, str]] = {
    "gratitude": "благодарность",
    "reaction": "реакция без слов",
    "acknowledgement": "короткое подтверждение",
    "between_citizens": "обращено к другому жителю",
    "question": "вопрос",
    "request": "просьба",
    "complaint": "жалоба",
    "report": "сообщение о проблеме",
    "offensive": "оскорбления или угрозы",
    "spam": "реклама или ссылки",
    "attachment": "вложение без слов",
    "needs_answer": "прочее, что требует ответа",
    "override": "исправление разбора",
}


@dataclass(frozen=True, slots=True)
class Judgement:
    """The engine's rule that decided an item's outcome, in the console's words: ``rule`` names the
    outcome as docs/responses.md, "Outcomes" does (``code``), ``why`` says what the rule is, and
    ``deadline`` how the item stands against its deadline."""

    code: str
    rule: str
    why: str
    deadline: str


def explain(
    outcome: str, breached: bool, reason: str | None, extra: dict[str, Any], due_passed: bool = False
) -> Judgement:
    """Why an item with this last record (``outcome``, ``breached``, ``reason``, ``extra``) was judged
    so, by the rows of the outcomes table (docs/responses.md, "Outcomes"). ``due_passed``: an open
    item's due time has passed by the console's clock (the worker may not have written it yet)."""
    if outcome == "answered":
        return Judgement(
            "answered",
            "отвечено страницей",
            "Первый ответ страницы, который отвечает на обращение по правилам сопоставления: прямой ответ, "
            "ответ в той же ветке автору или никому, ответ автору на верхнем уровне; в обсуждении и в личных "
            "сообщениях — следующий ответ страницы. Время ответа — время этого ответа.",
            "ответ после срока: нарушение" if breached else "ответ в срок",
        )
    if outcome == "moderated":
        return Judgement(
            "moderated",
            "удалено без ответа не автором",
            "Удалено до ответа кем-то кроме автора (страницей или тем, кого площадка не назвала). Удаление "
            "обоснованной жалобы — не ответ: обращение оценивается по сроку на момент удаления и выносится "
            "на проверку.",
            "срок прошёл до удаления: нарушение" if breached else "удалено до срока: в срок, но на проверку",
        )
    if outcome == "withdrawn":
        return Judgement(
            "withdrawn",
            "удалено автором до ответа",
            "Автор удалил обращение до ответа страницы.",
            "срок прошёл до удаления: нарушение" if breached else "удалено до срока: не нарушение",
        )
    if outcome == "expired":
        return Judgement(
            "expired",
            "истёк горизонт хранения",
            "Обращение оставалось без ответа до горизонта хранения (время написания + OTKLIK_RETENTION, по "
            "умолчанию 30 дней) и закрыто без ответа.",
            "срок нарушен",
        )
    if outcome == "no_answer_needed":
        if reason == "override":
            why = "Ответ не нужен по исправлению разбора (кто, когда и почему — в строке «Исправление»)."
        else:
            title = REASON_TITLES.get(reason or "", reason or "причина не указана")
            why = f"Разбор не нашёл, на что отвечать: {title}."
        if extra.get("replied_at") is not None:
            why += " Страница всё же ответила; на оценку это не влияет."
        return Judgement("no_answer_needed", "ответ не нужен", why, "не оценивается по сроку")
    if outcome == "open" and breached:
        return Judgement(
            "open",
            "просрочено: срок прошёл без ответа",
            "Срок прошёл, а ответа страницы нет: обработчик записал просрочку, когда дочитал события до "
            "срока. Окончательная оценка придёт с ответом, удалением или по горизонту хранения.",
            "срок нарушен",
        )
    return Judgement(
        outcome,
        "ждёт ответа",
        "Ответа страницы пока нет; как только он придёт (или обращение удалят), оно закроется.",
        ("срок прошёл; обработчик ещё не записал просрочку" if due_passed else "срок ещё не прошёл")
        if outcome == "open"
        else "—",
    )
