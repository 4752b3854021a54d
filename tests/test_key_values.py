"""KEY=VALUE settings from the command line (pipelines.key_values)."""

from __future__ import annotations

import pytest

from pipelines.key_values import parse_key_values


def test_values_are_read_as_toml() -> None:
    got = parse_key_values(["a=3", " b.c = 0.5", 's="heun"', "t=true", "l=[1, 2]"], "--set")
    assert got == {"a": 3, "b.c": 0.5, "s": "heun", "t": True, "l": [1, 2]}


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("novalue", "--x takes KEY=VALUE, got 'novalue'"),
        ("=3", "--x takes KEY=VALUE"),
        ("s=heun", "--x s: 'heun' is not a TOML value"),
        ("g=nan", "--x g must be finite, got nan"),
        ("g=-inf", "--x g must be finite"),
    ],
)
def test_bad_items_are_refused_naming_the_flag(item: str, message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("[", r"\[")):
        parse_key_values([item], "--x")
