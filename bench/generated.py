"""Many subgraphs: N generated subgraphs sharing entities, for the composition and planning timings.

Subgraph `core` owns `Product` and `User`; each other subgraph `sNNN` adds a type of its own
(`ItemNNN`, reachable from the root and from `User`) and a field `Product.scoreNNN` that
`@requires` the price. Nothing here runs a subgraph: the URLs point nowhere.
"""

from __future__ import annotations

import time

from gateway.composition import SubgraphSource, compose

HEADER = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@shareable", "@external", "@requires"])\n'


def generated_subgraphs(count: int) -> list[SubgraphSource]:
    sources = [
        SubgraphSource(
            "core",
            HEADER + "type Query { products: [Product] users: [User] }\n"
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


def compose_generated_supergraph(count: int) -> str:
    result = compose(generated_subgraphs(count))
    if not result.ok or result.supergraph is None:
        raise RuntimeError("; ".join(map(str, result.errors[:3])))
    return result.supergraph


def generated_queries(count: int) -> dict[str, str]:
    """Operations over the generated supergraph that touch every subgraph, or a chain of them."""
    others = range(1, count)
    scores = " ".join(f"score{i}" for i in others)
    items = " ".join(f"items{i} {{ id label product {{ name score{i} }} }}" for i in others)
    return {
        # one entity fetch per subgraph, each carrying the price it requires
        "every score": f"query Scores {{ products {{ upc name {scores} }} }}",
        # one entity fetch per subgraph from User, and a @requires jump back from each
        "every user's items": f"query Items {{ users {{ id name {items} }} }}",
        # a chain: root of one subgraph -> core -> another subgraph -> core -> a third
        "a chain": (
            f"query Chain {{ items1 {{ id owner {{ name items{count // 2} {{ label product {{ price score{count - 1} }} }} }} }} }}"
        ),
    }
