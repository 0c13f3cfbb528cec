"""Which upstream addresses the gateway may connect to: one definition, for two moments.

The registry checks a connector's URL when it is registered (gateway/registry/_rules.py); the
subgraph transport checks every address a registered connector's host resolves to when it
connects (`GuardedResolver`), for its subgraph requests and for the registration's SDL read
alike, so a partner whose DNS later points at the gateway's own network reaches nothing: the
request fails as unavailable and no byte is sent.

This module must never resolve a name itself for a decision it does not then enforce, and never
allow a special address (loopback, private, link-local, CGNAT, multicast, reserved, cloud
metadata) that the operator's policy (`registry.allow_upstreams`) does not list.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable

from aiohttp.abc import AbstractResolver, ResolveResult

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

METADATA_HOSTS = {"metadata", "metadata.google.internal", "instance-data", "instance-data.ec2.internal"}
METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}
_SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")


def special(address: Address) -> str | None:
    """What makes an address special (a reason for a message), None for an ordinary public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address in METADATA_ADDRESSES:
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


def refused(address: Address, allow: Iterable[Network]) -> str | None:
    """Why the gateway may not connect to `address` under the policy's `allow_upstreams`, or None.
    A metadata address is allowed only by its own /32 or /128, never by a wider range."""
    reason = special(address)
    if reason is None:
        return None
    plain = (
        address.ipv4_mapped
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None
        else address
    )
    if plain in METADATA_ADDRESSES:
        allowed = any(plain in network and network.prefixlen == network.max_prefixlen for network in allow)
    else:
        allowed = any(address in network or plain in network for network in allow)
    return None if allowed else reason


def parse_address(text: str) -> Address:
    return ipaddress.ip_address(text.split("%")[0])


class UpstreamRefused(OSError):
    """A registered connector's host resolved to an address the policy refuses: no connection."""


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver for registered connectors' traffic: resolves through `resolver` (the
    system's by default) and refuses the whole answer when any address is one the policy refuses
    (a name answering one public and one private address is refused, not filtered: the answer is
    the partner's, and a mixed one is how DNS rebinding is tried). `allow` is read at each
    resolution, so a policy reload applies to the next connection."""

    def __init__(self, allow: Callable[[], Iterable[Network]], resolver: AbstractResolver | None = None) -> None:
        self.allow = allow
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._resolver is None:
            from aiohttp.resolver import DefaultResolver

            self._resolver = DefaultResolver()  # made in the running loop, on first use
        answers = await self._resolver.resolve(host, port, family)
        allow = tuple(self.allow())
        for answer in answers:
            reason = refused(parse_address(answer["host"]), allow)
            if reason is not None:
                raise UpstreamRefused(f"{host} resolves to {reason} the operator's policy does not allow")
        return answers

    async def close(self) -> None:
        if self._resolver is not None:
            await self._resolver.close()
