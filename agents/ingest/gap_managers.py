"""A page's managers after a gap (pure; docs/responses.md, "Managers after a gap").

A ``group_officers_edit`` lost in a gap leaves a new manager's replies counted as a citizen's. VK's
list of managers (``groups.getMembers`` with ``filter=managers``) says who manages the community now,
not since when. So the catch-up, before the bodies of the gap, writes the roles as the earliest moment
they can have begun unseen, the start of the window it reads: a role that began in the gap covers the
replies written in it. Then the list as of now, which ends the roles of those missing from it at
now: a role ended in the gap covers the gap's replies too. Both favour the page, whose managers'
answers in the gap should not be taken for a citizen's comments.
"""

from __future__ import annotations

from collections.abc import Iterable

from otklik.schemas.managers import ManagerChange, ManagerList, ManagerRecord


def roles_after_gap(page: str, users: Iterable[str], unseen_from: int, at: int) -> list[ManagerRecord]:
    """The records of ``otklik.managers`` that restore ``page``'s managers ``users`` (read at ``at``)
    after a gap whose events may be missing from ``unseen_from``: each role begun at ``unseen_from``
    (the engine ignores it for a role already held), then the complete list as of ``at``."""
    listed = sorted(set(users))
    changes: list[ManagerRecord] = [ManagerChange(page, user, True, unseen_from, "api") for user in listed]
    return [*changes, ManagerList(page, listed, max(at, unseen_from), "api")]
