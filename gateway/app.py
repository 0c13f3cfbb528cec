"""Assembling a gateway: HTTP front, store, registry and the Engine they serve.

`registry_app` is what `citygate serve --connectors` and `citygate demo` run: the connectors
folder and the store's registered connectors, composed at start-up, the admin API under
/admin, and hot swaps on every accepted registration.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from starlette.applications import Starlette

from .executor import new_http_client
from .http import GatewayState, create_app
from .policy import Policy
from .registry import Keys, Registry, admin_routes
from .store import Store

logger = logging.getLogger("citygate.app")


@dataclass
class RegistryGateway:
    app: Starlette
    state: GatewayState
    registry: Registry
    store: Store


def registry_app(
    *,
    folder: Path | None,
    store_url: str,
    policy: Policy,
    operator_key: str,
    development: bool = False,
    on_start=None,
) -> RegistryGateway:
    state = GatewayState(None, development=development)
    store = Store(store_url)
    http_client = new_http_client()
    registry = Registry(state, store=store, policy=policy.registry, http_client=http_client, folder=folder)
    keys = Keys(operator_key, store)

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        await store.create()
        await registry.start()
        if on_start is not None:
            await on_start(gateway)
        try:
            yield
        finally:
            await http_client.aclose()
            await store.close()

    app = create_app(state, extra_routes=admin_routes(registry, keys))
    app.router.lifespan_context = lifespan
    gateway = RegistryGateway(app, state, registry, store)
    return gateway
