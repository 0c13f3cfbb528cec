"""Fixtures for the tests that run `citygate serve` as a real process over the world's supergraph.

A module defines `served_world` (tests.http.edge.world_to_serve with its own client) and gets a
production-mode and a development-mode gateway on it, each with a store of its own.
"""

from __future__ import annotations

import pytest

from tests.http.edge import serve_world


@pytest.fixture(scope="module")
def production(served_world):
    running = serve_world(served_world)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def development(served_world):
    running = serve_world(served_world, "--dev")
    yield running
    running.stop()
