"""Composition errors: a stable code (modelled on Apollo's), the subgraph, and where."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class CompositionError:
    code: str
    message: str
    subgraph: str | None = None
    locations: tuple[tuple[int, int], ...] = field(default=())

    def __str__(self) -> str:
        where = f"[{self.subgraph}] " if self.subgraph else ""
        at = ""
        if self.locations:
            at = " (at " + ", ".join(f"{line}:{column}" for line, column in self.locations) + ")"
        return f"{self.code}: {where}{self.message}{at}"

    def to_dict(self) -> dict:
        result: dict = {"code": self.code, "message": self.message}
        if self.subgraph:
            result["subgraph"] = self.subgraph
        if self.locations:
            result["locations"] = [{"line": line, "column": column} for line, column in self.locations]
        return result


def location_of(node) -> tuple[tuple[int, int], ...]:
    loc = getattr(node, "loc", None)
    if loc is None or loc.source is None:
        return ()
    from graphql import get_location

    place = get_location(loc.source, loc.start)
    return ((place.line, place.column),)
