"""The record of ``otklik.overrides``: a person's correction of triage.

A correction is an audited record on ``otklik.overrides`` (who, when, why, what they decided), keyed
by page like every other record, kept forever (the topic is created with unlimited retention). The
response engine applies it: the item is re-judged from its original times, and the new judgement goes
to ``otklik.responses`` with the previous decision beside it. The same request comes from
`otklik override` and from the worker's API (POST /api/items/{item}/override).
"""

from __future__ import annotations

import re
import time
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from otklik.schemas.records import page_of_item

# An item id (docs/data-flow.md, "Identifiers"): platform, page, object kind, object, own number.
ITEM_ID = re.compile(
    r"^(vk|tg|max|ok):(-?\d+):(wall|photo|video|market|board|dm|post|chat):(-?\d+):(\d+|mid\.[0-9A-Za-z]+)$"
)


class OverrideError(ValueError):
    """A correction that cannot be accepted; the message names the field and the problem."""


class Override(BaseModel):
    """One correction, as written to ``otklik.overrides``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item: str
    needs_answer: bool
    by: str = Field(min_length=1, max_length=200)
    note: str = Field(min_length=1, max_length=2000)
    requested_at: float = Field(default_factory=time.time, gt=0)

    @field_validator("item")
    @classmethod
    def _item(cls, value: str) -> str:
        if not ITEM_ID.match(value):
            raise ValueError(f"{value!r} is not an item id such as vk:123456:wall:88:1024")
        return value

    @field_validator("by", "note")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @property
    def page(self) -> str:
        return page_of_item(self.item)

    def to_json(self) -> bytes:
        return orjson.dumps(self.model_dump())

    @classmethod
    def parse(cls, data: Any) -> Override:
        """Validate a request (a mapping); raises :class:`OverrideError` naming each bad field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'request'}: {err['msg']}" for err in exc.errors()
            )
            raise OverrideError(problems) from None
