"""fan_out_items: a rendered fan_out.source read as a JSON array, or a clear refusal."""

from __future__ import annotations

from typing import Any

import pytest
from formica.jobs.fanout import FanOutSourceError, fan_out_items
from formica.jobs.limits import FAN_OUT_MAX_ITEMS


@pytest.mark.parametrize(
    ("source", "items"),
    [
        ('["a", "b"]', ["a", "b"]),
        ('  [1, {"k": "v"}, null, [2]]\n', [1, {"k": "v"}, None, [2]]),
        ("[]", []),
        (f"[{','.join(['0'] * FAN_OUT_MAX_ITEMS)}]", [0] * FAN_OUT_MAX_ITEMS),
    ],
)
def test_a_json_array_gives_its_items_in_order(source: str, items: list[Any]) -> None:
    assert fan_out_items(source) == items


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("", "fan_out.source rendered empty: it must render to a JSON array"),
        ("  \n", "rendered empty"),
        ("a, b", "fan_out.source 'a, b' is not JSON (Expecting value at line 1 column 1)"),
        ("['a']", "is not JSON"),
        ("[NaN]", "fan_out.source '[NaN]' is not JSON (NaN is not JSON)"),
        ("[Infinity]", "Infinity is not JSON"),
        ('{"a": [1]}', """fan_out.source '{"a": [1]}' is a JSON object, not an array"""),
        ('"[1]"', "is a JSON string, not an array"),
        ("3", "is a JSON number, not an array"),
        ("true", "is a JSON boolean, not an array"),
        ("null", "is null, not an array"),
        ("[" * 100_000, "nested too deeply to read"),
        (
            f"[{','.join(['0'] * (FAN_OUT_MAX_ITEMS + 1))}]",
            f"fan_out.source has {FAN_OUT_MAX_ITEMS + 1} items; the limit is {FAN_OUT_MAX_ITEMS}",
        ),
    ],
)
def test_anything_but_a_json_array_within_the_limit_is_refused_with_the_reason(
    source: str, reason: str
) -> None:
    with pytest.raises(FanOutSourceError) as caught:
        fan_out_items(source)

    assert reason in str(caught.value)
    assert 'such as ["a", "b"]' in str(caught.value) or "items; the limit" in str(caught.value)


def test_a_long_source_is_cut_in_the_message() -> None:
    with pytest.raises(FanOutSourceError) as caught:
        fan_out_items('{"k": "' + "x" * 10_000 + '"}')

    assert len(str(caught.value)) < 300
