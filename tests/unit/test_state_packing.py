"""A page's saved state: small values stay as they are, big ones are compressed, both load back."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from otklik.agents.wiring.pipeline import COMPRESS_ABOVE, pack_state, unpack_state


def test_small_state_is_saved_as_it_is() -> None:
    value = orjson.dumps({"v": 2, "items": [[1, "vk:1:wall:1:2"]]})
    assert pack_state(value) == value
    assert unpack_state(value) == value


def test_big_state_is_compressed_and_loads_back() -> None:
    value = orjson.dumps({"v": 2, "items": [[i, f"vk:1:wall:1:{i}", "vk:user:5"] for i in range(20_000)]})
    assert len(value) > COMPRESS_ABOVE
    packed = pack_state(value)
    assert len(packed) < len(value) // 3
    assert unpack_state(packed) == value


def test_values_saved_compressed_by_an_older_worker_still_load() -> None:
    import zlib

    value = orjson.dumps({"v": 2, "items": list(range(2_000))})  # below today's threshold
    assert unpack_state(b"z" + zlib.compress(value, 1)) == value


@given(st.binary(max_size=200_000).map(lambda b: b"{" + b))  # a dumped state is JSON: it opens with "{"
def test_pack_then_unpack_is_identity(value: bytes) -> None:
    assert unpack_state(pack_state(value)) == value
