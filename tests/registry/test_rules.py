"""Upstream URL rules, ownership rules and the privacy lint."""

from __future__ import annotations

import pytest

from gateway.composition import SubgraphSource, compose
from gateway.policy import PolicyError, parse_policy
from gateway.registry import check_ownership, check_upstream_url, privacy_lint
from gateway.registry._rules import Registered

NO_PRIVATE = parse_policy({}).registry
LOOPBACK_ALLOWED = parse_policy({"registry": {"allow_upstreams": ["127.0.0.0/8", "::1/128"]}}).registry


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:4001/graphql", "loopback"),
        ("http://localhost:4001/graphql", "loopback"),
        ("http://[::1]:4001/graphql", "loopback"),
        ("http://10.0.0.7/graphql", "private"),
        ("http://172.16.3.4/graphql", "private"),
        ("http://192.168.1.10/graphql", "private"),
        ("http://[fd12:3456::1]/graphql", "private"),
        ("http://169.254.10.1/graphql", "link-local"),
        ("http://[fe80::1]/graphql", "link-local"),
        ("http://169.254.169.254/latest/meta-data/", "metadata"),
        ("http://metadata.google.internal/computeMetadata/v1/", "metadata"),
        ("http://[fd00:ec2::254]/", "metadata"),
        ("http://100.64.0.1/graphql", "CGNAT"),
        ("http://0.0.0.0:4000/graphql", "unspecified"),
        ("http://[::ffff:127.0.0.1]/graphql", "loopback"),
        ("http://224.0.0.1/graphql", "multicast"),
        ("ftp://93.184.216.34/graphql", "http or https"),
        ("http://user:secret@93.184.216.34/graphql", "credentials"),
        ("http://no-such-host.invalid/graphql", "does not resolve"),
        ("not a url", "http or https"),
    ],
)
async def test_refused_upstreams(url, reason):
    problems = await check_upstream_url(url, NO_PRIVATE)
    assert problems and all(p.code == "UPSTREAM_URL_REFUSED" for p in problems)
    assert reason in " ".join(p.message for p in problems)


async def test_public_upstreams_pass():
    assert await check_upstream_url("https://93.184.216.34/graphql", NO_PRIVATE) == []
    assert await check_upstream_url("http://[2606:2800:220:1::1]/graphql", NO_PRIVATE) == []


async def test_the_operator_may_allow_ranges_but_metadata_stays_refused():
    assert await check_upstream_url("http://127.0.0.1:4001/graphql", LOOPBACK_ALLOWED) == []
    assert await check_upstream_url("http://localhost:4001/graphql", LOOPBACK_ALLOWED) == []
    wide = parse_policy({"registry": {"allow_upstreams": ["169.254.0.0/16"]}}).registry
    assert await check_upstream_url("http://169.254.169.254/", wide)  # needs an explicit /32
    exact = parse_policy({"registry": {"allow_upstreams": ["169.254.169.254/32"]}}).registry
    assert await check_upstream_url("http://169.254.169.254/", exact) == []


def test_policy_errors_are_listed():
    with pytest.raises(PolicyError) as failure:
        parse_policy({"registry": {"allow_upstreams": ["nope"], "agreements": [{"owner": "city"}]}, "extra": 1})
    assert len(failure.value.problems) == 3


FED = 'extend schema @link(url: "https://specs.apollo.dev/federation/v2.5", import: ["@key", "@shareable", "@external", "@provides", "@override", "@interfaceObject"])\n'
CITY = (
    FED
    + """
type Query { districts: [District] places: [Place] }
type District @key(fields: "code") { code: String! name: String @shareable population: Int }
interface Place @key(fields: "id") { id: ID! name: String }
type Library implements Place @key(fields: "id") { id: ID! name: String }
"""
)


def registered(sources: dict[str, tuple[str, str]]) -> dict[str, Registered]:
    result = compose([SubgraphSource(name, sdl) for name, (_, sdl) in sources.items()])
    assert result.ok, [str(e) for e in result.errors]
    subgraphs = {s.name: s for s in result.subgraphs}
    return {name: Registered(name, owner, subgraphs[name]) for name, (owner, _) in sources.items()}


def problems_for(candidate: str, connectors: dict[str, tuple[str, str]], policy=NO_PRIVATE) -> list[str]:
    entries = registered(connectors)
    others = [e for n, e in entries.items() if n != candidate]
    return [p.coordinate for p in check_ownership(entries[candidate], others, policy)]


def test_extending_an_entity_with_new_fields_is_allowed():
    parking = FED + 'type District @key(fields: "code") { code: String! freeSpots: Int }'
    assert problems_for("parking", {"city": ("city", CITY), "parking": ("parking", parking)}) == []


def test_override_of_another_partners_field_needs_an_agreement():
    parking = FED + 'type District @key(fields: "code") { code: String! population: Int @override(from: "city") }'
    connectors = {"city": ("city", CITY), "parking": ("parking", parking)}
    assert problems_for("parking", connectors) == ["District.population"]
    agreed = parse_policy(
        {"registry": {"agreements": [{"owner": "city", "grants": "parking", "fields": ["District.*"]}]}}
    ).registry
    assert problems_for("parking", connectors, agreed) == []
    # the same partner may move its own fields between its connectors
    assert problems_for("parking", {"city": ("city", CITY), "parking": ("city", parking)}) == []


def test_sharing_another_partners_field_needs_an_agreement():
    parking = FED + 'type District @key(fields: "code") { code: String! name: String @shareable }'
    assert problems_for("parking", {"city": ("city", CITY), "parking": ("parking", parking)}) == ["District.name"]


def test_providing_another_partners_field_needs_an_agreement():
    parking = (
        FED
        + 'type Query { busiest: District @provides(fields: "name") } type District @key(fields: "code") { code: String! name: String @external }'
    )
    assert problems_for("parking", {"city": ("city", CITY), "parking": ("parking", parking)}) == ["District.name"]


def test_extending_another_partners_interface_fields_through_an_interface_object_needs_an_agreement():
    ratings = FED + 'type Place @key(fields: "id") @interfaceObject { id: ID! name: String }'
    assert "Place.name" in problems_for("ratings", {"city": ("city", CITY), "ratings": ("ratings", ratings)})
    adding = FED + 'type Place @key(fields: "id") @interfaceObject { id: ID! rating: Float }'
    assert problems_for("ratings", {"city": ("city", CITY), "ratings": ("ratings", adding)}) == []


def test_privacy_lint_flags_personal_looking_fields():
    result = compose(
        [
            SubgraphSource(
                "people",
                FED
                + "type Query { me: Person } type Person { id: ID! email: String homeAddress: String licencePlate: String nickname: String }",
            )
        ]
    )
    warnings = {w.coordinate for w in privacy_lint(result.subgraphs[0])}
    assert warnings == {"Person.email", "Person.homeAddress", "Person.licencePlate"}
