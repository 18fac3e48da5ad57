"""Options for the whole suite (here so that `pytest --full` works from the top)."""

from __future__ import annotations


def pytest_addoption(parser):
    parser.addoption(
        "--full",
        action="store_true",
        default=False,
        help="run the long reliability loops of issue 6 (100,000-packet storm, 20 kill points); "
        "CI runs the reduced ones",
    )
