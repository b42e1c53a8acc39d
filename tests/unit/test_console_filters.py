"""The queue's filter options, made once per counts kept: escaped like the template would, the chosen
value selected, and made again for another list or another choice."""

from __future__ import annotations

from typing import Any

from otklik.streams.console.app import ConsoleConfig
from otklik.streams.console.data import QueueCounts


async def _produce(override: Any) -> None:
    raise AssertionError(override)


def config() -> ConsoleConfig:
    return ConsoleConfig(None, None, _produce, secret=b"k" * 32)  # type: ignore[arg-type]


def test_options_are_escaped_and_the_chosen_one_is_selected() -> None:
    facets = [('"><script>alert(1)</script>', "<b>Тара</b>", 3), ("vk:1", "ЦРБ & поликлиника", 2)]
    html = str(config().options(facets, "vk:1"))
    assert "<script>" not in html and "<b>" not in html
    assert '<option value="&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;">&lt;b&gt;Тара&lt;/b&gt; (3)</option>' in html
    assert '<option value="vk:1" selected>ЦРБ &amp; поликлиника (2)</option>' in html
    assert html.count("selected") == 1


def test_options_are_made_again_for_another_list_or_choice() -> None:
    made = config()
    first = [("Тара", "Тара", 3)]
    assert made.options(first, "") is made.options(first, "")
    assert "selected" in made.options(first, "Тара")
    second = [("Тара", "Тара", 4)]  # the counts kept again: a new list
    assert "(4)" in made.options(second, "")


def test_each_filter_counts_what_the_others_leave() -> None:
    names = ("municipality", "kind")
    counts = QueueCounts(
        names,
        (
            (("Тара", "comment"), True, 2),
            (("Тара", "message"), False, 3),
            (("Омск", "comment"), False, 5),
            (("Омск", "message"), True, 7),
        ),
        {},
        0,
    )
    facets, total, overdue = counts.facets({"municipality": "Тара", "kind": ""}, False)
    assert facets == {
        "municipality": [("Омск", "Омск", 12), ("Тара", "Тара", 5)],
        "kind": [("comment", "comment", 2), ("message", "message", 3)],
    }
    assert (total, overdue) == (5, 2)
    # "Overdue only" narrows every count, but the overdue count is what the other filters leave.
    facets, total, overdue = counts.facets({"municipality": "", "kind": "message"}, True)
    assert facets == {
        "municipality": [("Омск", "Омск", 7)],
        "kind": [("comment", "comment", 2), ("message", "message", 7)],
    }
    assert (total, overdue) == (7, 7)
    assert counts.facets({"municipality": "", "kind": "message"}, True) is counts.facets({"kind": "message"}, True)
