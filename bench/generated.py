"""Composing many subgraphs: N generated subgraphs sharing entities, composed once."""

from __future__ import annotations

import time

from gateway.composition import SubgraphSource, compose

HEADER = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@shareable", "@external", "@requires"])\n'


def generated_subgraphs(count: int) -> list[SubgraphSource]:
    sources = [
        SubgraphSource(
            "core",
            HEADER + 'type Query { products: [Product] users: [User] }\n'
            'type Product @key(fields: "upc") { upc: ID! name: String price: Int }\n'
            'type User @key(fields: "id") { id: ID! name: String }\n',
        )
    ]
    for index in range(1, count):
        sources.append(
            SubgraphSource(
                f"s{index:03d}",
                HEADER
                + f"type Query {{ items{index}: [Item{index}] }}\n"
                + f'type Item{index} @key(fields: "id") {{ id: ID! label: String owner: User product: Product }}\n'
                + f'type Product @key(fields: "upc") {{ upc: ID! price: Int @external score{index}: Int @requires(fields: "price") }}\n'
                + f'type User @key(fields: "id") {{ id: ID! items{index}: [Item{index}] }}\n',
                f"http://127.0.0.1:9/s{index:03d}",
            )
        )
    return sources


def compose_generated(count: int) -> float:
    sources = generated_subgraphs(count)
    started = time.perf_counter()
    result = compose(sources)
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise RuntimeError("; ".join(map(str, result.errors[:3])))
    return elapsed
