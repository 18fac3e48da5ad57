"""The guards of tests/support/requires.py: a missing need skips locally and fails in CI."""

from __future__ import annotations

import sys

import pytest

from tests.support.requires import (
    in_ci,
    kernel_lacks,
    require_binary,
    require_module,
    require_root,
)

ABSENT = "dnsd-no-such-tool-7f3a"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", False), ("0", False), ("false", False), ("No", False), ("true", True), ("1", True)],
)
def test_ci_is_read_from_the_environment(monkeypatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected
    monkeypatch.delenv("CI")
    assert in_ci() is False


def test_present_needs_are_returned(monkeypatch) -> None:
    monkeypatch.setenv("CI", "true")
    assert require_binary("sh", "apt-get install dash").endswith("/sh")
    assert require_binary(ABSENT, "-", also=(sys.executable,)) == sys.executable
    assert require_module("json", "-") is sys.modules["json"]


@pytest.mark.parametrize(
    ("need", "words"),
    [
        (lambda: require_binary(ABSENT, "apt-get install it"), f"no `{ABSENT}` binary"),
        (lambda: require_module(ABSENT.replace("-", "_"), "pip install it"), "cannot import"),
    ],
    ids=["binary", "module"],
)
def test_a_missing_need_skips_locally_and_fails_in_ci(monkeypatch, need, words: str) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=words):
        need()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"CI must run this test, but: {words}"):
        need()


def test_root_is_required_the_same_way(monkeypatch) -> None:
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="needs root: to enter"):
        require_root("to enter")
    monkeypatch.setattr("os.geteuid", lambda: 0)
    require_root("to enter")


def test_a_kernel_without_a_feature_skips_even_in_ci(monkeypatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.skip.Exception, match=r"kernel lacks X \(CONFIG_X\); so what"):
        kernel_lacks("X", "CONFIG_X", "so what")
