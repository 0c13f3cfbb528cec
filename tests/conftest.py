"""Shared fixtures: the world's subgraphs on loopback and an Engine serving their supergraph."""

from __future__ import annotations

import pytest

from gateway.engine import Engine
from tests.world import data
from tests.world.server import WorldServer


@pytest.fixture(scope="session")
def world_server():
    server = WorldServer().start()
    yield server
    server.stop()


@pytest.fixture
def world(world_server):
    """The running world, with fresh data and traffic counters."""
    data.reset()
    world_server.traffic.reset()
    return world_server


@pytest.fixture
async def engine(world):
    engine = Engine.from_sdl(world.supergraph())
    yield engine
    await engine.close()
