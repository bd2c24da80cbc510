"""Shared test set-up: real-server fixtures are plug-ins under tests/fixtures/."""

import os

import pytest

pytest_plugins = [
    "tests.fixtures.real",
    "tests.fixtures.podman",
    "tests.fixtures.mariadb",
    "tests.otherpay.fixtures",
    "tests.compose.fixtures",
    "tests.fixtures.postgres",
    "tests.fixtures.toxiproxy",
    "tests.fixtures.nginx",
    "tests.fixtures.prometheus",
    "tests.fixtures.lab",
    "tests.fixtures.container_lab",
    "tests.fixtures.control_plane",
    "pytester",
]


@pytest.fixture(scope="session")
def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}
