"""The operator's policy file (YAML): read, validated with clear errors, never half-applied.

Sections so far:

    registry:
      allow_upstreams: ["127.0.0.0/8"]    # private ranges connectors may use (default: none)
      agreements:                         # who may take over, share or provide whose fields
        - owner: city
          grants: parking
          fields: ["District.name", "Spot.*"]
"""

from __future__ import annotations

import fnmatch
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class PolicyError(Exception):
    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class Agreement:
    owner: str
    grants: str
    fields: tuple[str, ...]  # coordinates, "Type.field" or "Type.*"

    def covers(self, owner: str, partner: str, coordinate: str) -> bool:
        return self.owner == owner and self.grants == partner and any(fnmatch.fnmatchcase(coordinate, p) for p in self.fields)


@dataclass(frozen=True)
class RegistryPolicy:
    allow_upstreams: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    agreements: tuple[Agreement, ...] = ()

    def agreed(self, owner: str, partner: str, coordinate: str) -> bool:
        return any(a.covers(owner, partner, coordinate) for a in self.agreements)


@dataclass(frozen=True)
class Policy:
    registry: RegistryPolicy = field(default_factory=RegistryPolicy)


def parse_policy(data: Any) -> Policy:
    problems: list[str] = []
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(["the policy must be a mapping"])
    for unknown in sorted(set(data) - {"registry"}):
        problems.append(f"unknown section {unknown!r}")
    registry = data.get("registry") or {}
    if not isinstance(registry, dict):
        raise PolicyError(problems + ["registry must be a mapping"])
    networks = []
    for index, value in enumerate(registry.get("allow_upstreams") or []):
        try:
            networks.append(ipaddress.ip_network(str(value), strict=False))
        except ValueError:
            problems.append(f"registry.allow_upstreams[{index}]: {value!r} is not an IP network")
    agreements = []
    for index, entry in enumerate(registry.get("agreements") or []):
        where = f"registry.agreements[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        owner, grants, fields = entry.get("owner"), entry.get("grants"), entry.get("fields")
        if not isinstance(owner, str) or not isinstance(grants, str):
            problems.append(f"{where}: needs owner and grants (partner names)")
            continue
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and "." in f for f in fields):
            problems.append(f"{where}: fields must list coordinates such as Type.field or Type.*")
            continue
        agreements.append(Agreement(owner, grants, tuple(fields)))
    if problems:
        raise PolicyError(problems)
    return Policy(registry=RegistryPolicy(tuple(networks), tuple(agreements)))


def load_policy(path: Path | None) -> Policy:
    if path is None:
        return Policy()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise PolicyError([f"cannot read {path}: {error.strerror}"]) from None
    except yaml.YAMLError as error:
        raise PolicyError([f"{path} is not valid YAML: {error}"]) from None
    return parse_policy(data)
