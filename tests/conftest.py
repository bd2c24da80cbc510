"""Shared test set-up: real-server fixtures are plug-ins under tests/fixtures/."""

import os

import pytest

pytest_plugins = [
    "tests.fixtures.real",
]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Bench files are run by `make bench` only."""
    del config, items


@pytest.fixture(scope="session")
def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
