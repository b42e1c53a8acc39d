"""The VK API client's pure rules: token buckets, backoff, error classes, execute batches and scripts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otklik.agents.ingest.vk_api_rules import (
    EXECUTE_MAX_CALLS,
    METHOD_TOKEN_KINDS,
    Call,
    CallError,
    RetryPolicy,
    TokenBucket,
    classify,
    execute_code,
    plan_batches,
    split_execute,
    wire_params,
)
from tests.conftest import SHARED_REFERENCE


def test_the_token_types_table_matches_vks_schema() -> None:
    schema = SHARED_REFERENCE / "vk-api-schema"
    for method, kinds in METHOD_TOKEN_KINDS.items():
        section = method.split(".")[0]
        document = json.loads((schema / section / "methods.json").read_text(encoding="utf-8"))
        spec = next(m for m in document["methods"] if m["name"] == method)
        assert kinds == frozenset(spec["access_token_type"]), method


# ---- the token bucket ---------------------------------------------------------------------------------


def test_a_bucket_spaces_requests_booked_at_one_instant() -> None:
    bucket = TokenBucket(rate=4.0)
    assert [bucket.reserve(10.0) for _ in range(4)] == [0.0, 0.25, 0.5, 0.75]


def test_a_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=3.0)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve(0.0) == 0.5
    # After a long pause no more than the burst is saved up.
    assert [bucket.reserve(100.0) for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]


def test_a_bucket_with_debt_makes_later_callers_wait_behind_earlier_ones() -> None:
    bucket = TokenBucket(rate=3.0)
    assert bucket.reserve(0.0) == 0.0
    first = bucket.reserve(0.0)
    second = bucket.reserve(0.1)
    assert 0.1 + second > first  # the second booking goes after the first


@settings(max_examples=200, deadline=None)
@given(
    rate=st.sampled_from([3.0, 20.0]),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=80),
)
def test_no_second_sees_more_requests_than_the_rate_allows(rate: float, gaps: list[float]) -> None:
    bucket = TokenBucket(rate=rate)
    now, sent = 0.0, []
    for gap in gaps:
        now += gap
        sent.append(now + bucket.reserve(now))
    sent.sort()
    for i, start in enumerate(sent):
        within = sum(1 for t in sent[i:] if t < start + 1.0 - 1e-9)
        assert within <= rate + bucket.burst - 1  # the burst, then one request every 1/rate


@pytest.mark.parametrize("rate, burst", [(0.0, 1.0), (-1.0, 1.0), (3.0, 0.5)])
def test_a_bucket_refuses_nonsense(rate: float, burst: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate=rate, burst=burst)


# ---- retries and errors -------------------------------------------------------------------------------


def test_backoff_doubles_within_its_jitter_and_stops_at_the_cap() -> None:
    policy = RetryPolicy(attempts=8, base=0.5, cap=4.0)
    for failures, step in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 4.0), (7, 4.0)]:
        assert policy.delay(failures, 0.0) == step / 2
        assert step / 2 < policy.delay(failures, 0.999) < step


def test_backoff_gives_up_after_its_attempts() -> None:
    policy = RetryPolicy(attempts=3)
    assert [policy.gives_up(n) for n in (1, 2, 3, 4)] == [False, False, True, True]


def test_error_codes_are_classified() -> None:
    assert [classify(code) for code in (6, 9, 10, 29)] == ["retry"] * 4
    assert [classify(code) for code in (5, 27, 28)] == ["auth"] * 3
    assert [classify(code) for code in (15, 203, 212)] == ["access"] * 3
    assert classify(100) == "fail"


# ---- execute batches ----------------------------------------------------------------------------------


def history(peer: int) -> Call:
    return Call("messages.getHistory", {"group_id": 1, "peer_id": peer})


def test_a_community_token_batches_its_methods_by_25() -> None:
    calls = [history(peer) for peer in range(60)]
    plan = plan_batches(calls, "group")
    assert [len(group) for group in plan] == [25, 25, 10]
    assert [i for group in plan for i in group] == list(range(60))


def test_a_service_token_cannot_execute_so_every_call_goes_alone() -> None:
    calls = [Call("wall.getComments", {"owner_id": -1, "post_id": n}) for n in range(5)]
    assert plan_batches(calls, "service") == [[0], [1], [2], [3], [4]]
    assert [len(g) for g in plan_batches(calls, "user")] == [5]


def test_methods_the_token_may_not_call_are_left_out_of_batches() -> None:
    calls = [history(1), Call("wall.get", {"domain": "club1"}), history(2), Call("execute", {"code": "return 1;"})]
    assert plan_batches(calls, "group") == [[0, 2], [1], [3]]


def test_a_batch_limit_outside_1_to_25_is_refused() -> None:
    with pytest.raises(ValueError):
        plan_batches([history(1)], "group", limit=26)


def test_the_execute_script_names_each_call_and_encodes_values_as_a_form_would() -> None:
    code = execute_code(
        [
            Call("wall.getComments", {"owner_id": -5, "post_id": 7, "need_likes": True, "start_comment_id": None}),
            Call("groups.getAddresses", {"group_id": 5, "fields": ["title", "timetable"]}),
        ]
    )
    assert code == (
        'return {"r0":API.wall.getComments({"owner_id":-5,"post_id":7,"need_likes":1}),'
        '"r1":API.groups.getAddresses({"group_id":5,"fields":"title,timetable"})};'
    )
    with pytest.raises(ValueError):
        execute_code([history(n) for n in range(EXECUTE_MAX_CALLS + 1)])


def test_execute_answers_are_split_and_failures_take_the_errors_in_order() -> None:
    errors = [
        {"method": "messages.getHistory", "error_code": 6, "error_msg": "Too many"},
        {"method": "groups.getMembers", "error_code": 15, "error_msg": "Access denied"},
    ]
    results = split_execute({"r0": {"count": 0}, "r1": False, "r2": {"count": 1}, "r3": False}, errors, 4)
    assert results == [
        {"count": 0},
        CallError("messages.getHistory", 6, "Too many"),
        {"count": 1},
        CallError("groups.getMembers", 15, "Access denied"),
    ]


@pytest.mark.parametrize(
    "response, errors",
    [({"r0": {}}, []), ({"r0": False, "r1": {}}, []), ([{}], [])],
    ids=["a call missing", "a failure without its error", "not an object"],
)
def test_a_malformed_execute_answer_is_refused(response: object, errors: list) -> None:
    with pytest.raises(ValueError):
        split_execute(response, errors, 2)


def test_form_values_follow_vks_conventions() -> None:
    assert wire_params({"a": True, "b": False, "c": [1, 2], "d": 5, "e": None, "f": "x"}) == {
        "a": "1",
        "b": "0",
        "c": "1,2",
        "d": "5",
        "f": "x",
    }
