"""The rules a registration must pass besides composition.

- upstream URLs: no loopback, private, link-local, metadata or otherwise special address unless
  the operator's policy allows that range;
- ownership: a partner may not @override, @provides, share through @shareable, or extend through
  @interfaceObject a field another partner's connector resolves, unless the policy lists that
  owner's agreement (key fields are shared by nature and exempt);
- privacy lint: fields whose names look personal and carry no privacy annotation (a warning).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..composition._fieldsets import FieldSetProblem, walk
from ..composition._subgraph import Subgraph
from ..policy import RegistryPolicy

_METADATA_HOSTS = {"metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal"}
_METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")}
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    message: str
    coordinate: str | None = None

    def to_dict(self) -> dict:
        data = {"code": self.code, "message": self.message}
        if self.coordinate:
            data["coordinate"] = self.coordinate
        return data


def _special(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_unspecified, "an unspecified address"),
        (address.is_multicast, "a multicast address"),
        (isinstance(address, ipaddress.IPv4Address) and address in _SHARED_ADDRESS_SPACE, "a shared (CGNAT) address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
    )
    return next((reason for flagged, reason in checks if flagged), None)


async def check_upstream_url(url: str, policy: RegistryPolicy) -> list[Problem]:
    """Refuse URLs that would let a connector reach the gateway's own network."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [Problem("UPSTREAM_URL_REFUSED", f"{url!r} is not a valid URL")]
    if parts.scheme not in ("http", "https"):
        return [Problem("UPSTREAM_URL_REFUSED", "the URL must use http or https")]
    if parts.username or parts.password:
        return [Problem("UPSTREAM_URL_REFUSED", "credentials do not belong in the URL: send them as headers")]
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return [Problem("UPSTREAM_URL_REFUSED", "the URL has no host")]
    if host in _METADATA_HOSTS:
        return [Problem("UPSTREAM_URL_REFUSED", f"{host} is a cloud metadata service")]
    try:
        addresses = {ipaddress.ip_address(host)}
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM)
        except (OSError, UnicodeError):  # UnicodeError: a host name IDNA cannot encode ("a..b", a label over 63)
            return [Problem("UPSTREAM_URL_REFUSED", f"{host} does not resolve")]
        addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    problems = []
    for address in sorted(addresses, key=str):
        reason = _special(address)
        if reason is None:
            continue
        if address in _METADATA_ADDRESSES:
            allowed = any(address in network and network.prefixlen == network.max_prefixlen for network in policy.allow_upstreams)
        else:
            allowed = any(address in network for network in policy.allow_upstreams)
        if not allowed:
            problems.append(
                Problem("UPSTREAM_URL_REFUSED", f"{host} resolves to {address}, {reason}; the operator's policy does not allow it")
            )
    return problems


@dataclass(frozen=True, slots=True)
class Registered:
    """A connector as the ownership rules see it."""

    name: str
    owner: str
    subgraph: Subgraph


def _resolves(subgraph: Subgraph, type_name: str, field_name: str) -> bool:
    type_def = subgraph.types.get(type_name)
    if type_def is None or field_name not in type_def.fields:
        return False
    return not type_def.fields[field_name].external and type_def.kind in ("OBJECT", "INTERFACE")


def check_ownership(candidate: Registered, others: list[Registered], policy: RegistryPolicy) -> list[Problem]:
    problems: list[Problem] = []
    partner = candidate.owner
    foreign = [o for o in others if o.owner != partner and o.name != candidate.name]

    def owners_of(type_name: str, field_name: str) -> list[str]:
        return sorted({o.owner for o in foreign if _resolves(o.subgraph, type_name, field_name)})

    def refuse(action: str, type_name: str, field_name: str, owners: list[str]) -> None:
        coordinate = f"{type_name}.{field_name}"
        for owner in owners:
            if not policy.agreed(owner, partner, coordinate):
                problems.append(
                    Problem(
                        "FIELD_OWNED_BY_ANOTHER_PARTNER",
                        f'"{candidate.name}" ({partner}) may not {action} "{coordinate}", which {owner} owns, without {owner}\'s agreement in the policy',
                        coordinate,
                    )
                )

    for type_def in candidate.subgraph.types.values():
        keys = type_def.key_field_names()
        for field_def in type_def.fields.values():
            if field_def.name in keys:
                continue
            if field_def.override is not None:
                source = next((o for o in others if o.name == field_def.override), None)
                if source is not None and source.owner != partner:
                    refuse("@override", type_def.name, field_def.name, [source.owner])
            if field_def.shareable and not field_def.external:
                refuse("share through @shareable", type_def.name, field_def.name, owners_of(type_def.name, field_def.name))
            if type_def.interface_object and not field_def.external:
                implementations = [
                    t.name for o in foreign for t in o.subgraph.types.values() if type_def.name in t.interfaces
                ]
                for implementation in [type_def.name, *implementations]:
                    refuse("extend through @interfaceObject", implementation, field_def.name, owners_of(implementation, field_def.name))
            if field_def.provides is not None:
                target = field_def.type.replace("[", "").replace("]", "").replace("!", "")
                try:
                    selected = walk(candidate.subgraph, target, field_def.provides)
                except FieldSetProblem:
                    continue
                for item in selected:
                    parent = candidate.subgraph.types.get(item.parent)
                    if parent is not None and item.field.name in parent.key_field_names():
                        continue
                    refuse("@provides", item.parent, item.field.name, owners_of(item.parent, item.field.name))
    unique = {(p.code, p.message): p for p in problems}
    return list(unique.values())


_PERSONAL = re.compile(
    r"(e?mail|phone|mobile|address|street|postcode|zip|birth|dob|plate|iban|bic|latitude|longitude|^lat$|^lng$|^lon$|"
    r"location|geo|ssn|passport|nationalid|firstname|lastname|fullname|surname|salary|income|gender|health)",
    re.IGNORECASE,
)


def privacy_lint(subgraph: Subgraph) -> list[Problem]:
    """Fields whose names look personal but carry no privacy annotation (warnings)."""
    warnings = []
    for type_def in subgraph.types.values():
        if type_def.kind not in ("OBJECT", "INTERFACE") or type_def.name in ("Query", "Mutation", "Subscription"):
            continue
        for field_def in type_def.fields.values():
            if field_def.external or not _PERSONAL.search(field_def.name.replace("_", "")):
                continue
            if any(a.name.endswith("personal") for a in field_def.applied):
                continue
            coordinate = f"{type_def.name}.{field_def.name}"
            warnings.append(
                Problem(
                    "PRIVACY_ANNOTATION_MISSING",
                    f'"{coordinate}" looks like personal data but carries no @personal annotation: annotate it, or confirm it is not personal',
                    coordinate,
                )
            )
    return warnings
