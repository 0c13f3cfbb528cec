"""The README's example operations, as the demo tests run them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
_EXAMPLE = re.compile(
    r"<!-- example: (?P<name>[a-z-]+) (?P<options>[^>]*?)-->\s*```graphql\n(?P<query>.*?)```", re.DOTALL
)


@dataclass(frozen=True)
class Example:
    name: str
    query: str
    asker: str  # "public", "resident:<id>" or "client:<id>"
    purpose: str | None


def examples() -> dict[str, Example]:
    found = {}
    for match in _EXAMPLE.finditer(README.read_text(encoding="utf-8")):
        options = dict(part.split("=", 1) for part in match["options"].split())
        found[match["name"]] = Example(
            match["name"], match["query"].strip(), options.get("as", "public"), options.get("purpose")
        )
    return found


def headers(example: Example, credentials: dict) -> dict[str, str]:
    kind, _, who = example.asker.partition(":")
    result = {"content-type": "application/json"}
    if kind == "resident":
        result["authorization"] = f"Bearer {credentials['residents'][who]}"
    elif kind == "client":
        result["x-api-key"] = credentials["clients"][who]
    if example.purpose:
        result["x-citygate-purpose"] = example.purpose
    return result
