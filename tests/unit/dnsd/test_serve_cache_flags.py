"""`dnsd serve` cache flags: defaults, durations, and what is refused."""

from __future__ import annotations

import pytest

from dnsd.cli.commands import UsageError
from dnsd.cli.parser import build_parser
from dnsd.cli.serve import duration, serve_config


def config(*flags: str):
    return serve_config(build_parser().parse_args(["serve", *flags]))


def test_defaults_cache_10000_answers_for_300_s_negative_60_s_no_stale() -> None:
    c = config()
    assert (c.cache_size, c.cache_max_ttl, c.cache_max_negative_ttl, c.cache_stale_s) == (
        10_000, 300, 60, 0.0,
    )  # fmt: skip


def test_flags_are_taken() -> None:
    c = config("--cache-size", "0", "--cache-max-ttl", "30", "--cache-stale", "1h30m")
    assert (c.cache_size, c.cache_max_ttl, c.cache_stale_s) == (0, 30, 5400.0)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("2m", 120), ("1d", 86400)])
def test_durations(text: str, seconds: float) -> None:
    assert duration(text, "--cache-stale") == seconds


BAD = [
    ["--cache-stale", "soon"],
    ["--cache-stale", "1w"],
    ["--cache-size", "-1"],
    ["--cache-max-negative-ttl", "-2"],
]


@pytest.mark.parametrize("flags", BAD)
def test_bad_values_are_refused_with_the_flag_named(flags: list[str]) -> None:
    with pytest.raises(UsageError, match=flags[0]):
        config(*flags)
