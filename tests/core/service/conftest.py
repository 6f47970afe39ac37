"""A throwaway PostgreSQL server for the tests of studies shared by several workers."""

from __future__ import annotations

import itertools

import pytest

from core.bench import tune_server
from core.errors import TransferLabError

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_server():
    """A fresh PostgreSQL cluster (initdb, a free loopback port, trust auth), removed at the end of the session."""
    try:
        tune_server.find_bin()
    except TransferLabError as exc:
        pytest.skip(f"no PostgreSQL server can be had here: {exc}")
    with tune_server.throwaway_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server) -> str:
    """The URL of a new empty database on the throwaway server, one per test."""
    return pg_server.create_database(f"optuna_{next(_names)}")
