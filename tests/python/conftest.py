"""Shared fixtures of the Python tests (run with: python -m pytest)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nats_server import NatsServer, started
from postgres_server import PostgresServer
from postgres_server import started as postgres_started

import hms_cffi
from hms_cffi import Runtime


@pytest.fixture
def rt() -> Iterator[Runtime]:
    """A fresh in-memory runtime, closed after the test."""
    with Runtime() as runtime:
        yield runtime


@pytest.fixture
def bufs() -> hms_cffi._ffi.Buffers:
    """A private pair of hms_buf for tests that call ``lib`` directly."""
    return hms_cffi._ffi.Buffers()


@pytest.fixture
def nats_server() -> Iterator[NatsServer]:
    """A real nats-server on free loopback ports (clients and monitoring),
    stopped after the test; the test may stop and start it again."""
    with started() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server shared by the session's tests, each of which
    takes a ``fresh_database()``; stopped and deleted at the end. A test that
    stops or restarts a server makes its own with ``postgres_server.started``."""
    with postgres_started() as server:
        yield server
