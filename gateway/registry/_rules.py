"""The rules a registration must pass besides composition.

- upstream URLs (a REST connector's every origin too, which must be its url's): no loopback, private, link-local, metadata or otherwise special address unless
  the operator's policy allows that range;
- ownership: a partner may not @override, @provides, share through @shareable, or extend through
  @interfaceObject a field another partner's connector resolves, unless the policy lists that
  owner's agreement (key fields are shared by nature and exempt);
- annotation ownership: only the owner of a coordinate annotates it. `@personal`, `@aggregate`
  and `@nonPersonal` are refused on a field that a subgraph of another owner resolves (the
  annotation reaching it through `@external`, `extend type` or an interface field it implements),
  and `@subject` on a type another owner gives a subject too, or, when registering, on a type
  (or an interface of one) whose values another owner's subgraph defines
  (PRIVACY_ANNOTATION_NOT_OWNED, with the coordinate and the owner who owns it);
- privacy lint: fields whose names look personal (or identify a person) and carry no privacy
  annotation, `@personal` or `@nonPersonal` (PRIVACY_ANNOTATION_MISSING, an error).
These rules read subgraphs and owners; they never change what is registered.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ..composition import BUILT_IN_SCALARS, FieldSetProblem, Subgraph, TypeDef, walk
from ..executor import METADATA_HOSTS, refused
from ..policy import RegistryPolicy
from ..supergraph import named_type
from ._manifest import origin

# the address rules are the transport's too (checked again at each connection): one definition
_METADATA_HOSTS = METADATA_HOSTS


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    message: str
    coordinate: str | None = None
    owner: str | None = None  # PRIVACY_ANNOTATION_NOT_OWNED: who owns the coordinate
    # where in the connector's SDL (a REST connector's mapping problems), as composition's errors say it
    subgraph: str | None = None
    locations: tuple[tuple[int, int], ...] = ()

    def to_dict(self) -> dict:
        data: dict = {"code": self.code, "message": self.message}
        if self.subgraph:
            data["subgraph"] = self.subgraph
        if self.coordinate:
            data["coordinate"] = self.coordinate
        if self.owner:
            data["owner"] = self.owner
        if self.locations:
            data["locations"] = [{"line": line, "column": column} for line, column in self.locations]
        return data


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
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
            )
        except (OSError, UnicodeError):  # UnicodeError: a host name IDNA cannot encode ("a..b", a label over 63)
            return [Problem("UPSTREAM_URL_REFUSED", f"{host} does not resolve")]
        addresses = {ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos}
    problems = []
    for address in sorted(addresses, key=str):
        reason = refused(address, policy.allow_upstreams)
        if reason is not None:
            problems.append(
                Problem(
                    "UPSTREAM_URL_REFUSED",
                    f"{host} resolves to {address}, {reason}; the operator's policy does not allow it",
                )
            )
    return problems


async def check_rest_origins(url: str, origins: Iterable[str], policy: RegistryPolicy) -> list[Problem]:
    """A REST connector calls its url's origin only: its headers (its secrets) go with every call.
    An origin its SDL names besides (gateway.connect refuses one already: CONNECT_URL_ORIGIN) is
    refused here too, and held to the URL rules like the url, so the report says all that is wrong."""
    own = origin(url)
    problems = []
    for other in sorted(origins):
        if origin(other) != own:
            problems.append(
                Problem(
                    "CONNECT_URL_ORIGIN",
                    f"the connector calls {other}, another origin than its url's: its headers and secrets go only to its url's",
                )
            )
            problems += await check_upstream_url(other, policy)
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
                refuse(
                    "share through @shareable", type_def.name, field_def.name, owners_of(type_def.name, field_def.name)
                )
            if type_def.interface_object and not field_def.external:
                implementations = [
                    t.name for o in foreign for t in o.subgraph.types.values() if type_def.name in t.interfaces
                ]
                for implementation in [type_def.name, *implementations]:
                    refuse(
                        "extend through @interfaceObject",
                        implementation,
                        field_def.name,
                        owners_of(implementation, field_def.name),
                    )
            if field_def.provides is not None:
                target = named_type(field_def.type)
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
# identifiers naming a person: `posterId`, `owner_id`, `memberIds` (a job's poster is a resident:
# the id says who, as much as the withheld `poster` object would)
_IDENTIFIER = re.compile(r"^(?P<who>.+?)_?(?i:ids?)$")
_PERSON = re.compile(
    r"(resident|user|person|people|owner|poster|taker|author|customer|guest|host|driver|member|rater|ratee|reporter|"
    r"citizen|tenant|patient|passenger|buyer|seller|employee|reviewer|sender|recipient|assignee|requester|voter|student|parent)",
    re.IGNORECASE,
)


def _names_a_person(name: str, type_string: str) -> bool:
    match = _IDENTIFIER.match(name)
    return bool(match and named_type(type_string) in ("ID", "String") and _PERSON.search(match["who"]))


def _annotated(applied, *kinds: str) -> bool:
    return any(a.privacy in kinds for a in applied)


def _subject_fields(subgraph: Subgraph, type_def: TypeDef) -> set[str]:
    """The fields this subgraph names as the type's subject (on the type or its interfaces)."""
    holders = [type_def, *(subgraph.types[i] for i in type_def.interfaces if i in subgraph.types)]
    return {str(_argument(a, "field")) for holder in holders for a in holder.applied if a.privacy == "subject"}


def _argument(applied, name: str) -> object:
    return next(
        (getattr(arg.value, "value", None) for arg in applied.node.arguments or () if arg.name.value == name), None
    )


def privacy_lint(subgraph: Subgraph) -> list[Problem]:
    """Fields whose names look personal, or identify a person, but carry neither @personal nor
    @nonPersonal (errors: unannotated personal data would otherwise be served as non-personal
    wherever its type names no subject). The subject field of a type is personal by itself."""
    problems = []
    for type_def in subgraph.types.values():
        if type_def.kind not in ("OBJECT", "INTERFACE") or type_def.name in ("Query", "Mutation", "Subscription"):
            continue
        subject_fields = _subject_fields(subgraph, type_def)
        for field_def in type_def.fields.values():
            if (
                field_def.external
                or field_def.name in subject_fields
                or _annotated(field_def.applied, "personal", "nonPersonal")
            ):
                continue
            if _PERSONAL.search(field_def.name.replace("_", "")):
                what = "looks like personal data"
            elif _names_a_person(field_def.name, field_def.type):
                what = "identifies a person"
            else:
                continue
            coordinate = f"{type_def.name}.{field_def.name}"
            problems.append(
                Problem(
                    "PRIVACY_ANNOTATION_MISSING",
                    f'"{coordinate}" {what} but carries no annotation: annotate it @personal(category: ...), '
                    "or @nonPersonal if it is not personal",
                    coordinate,
                )
            )
    return problems


# -- annotation ownership ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Finding:
    """An annotation its connector's owner does not own; comparable across two sets of connectors."""

    annotator: str  # connector name
    coordinate: str
    directive: str
    owner: str  # who owns it
    message: str
    # for a field annotation: the connector resolving the field, and the annotator's owner (a
    # registration that resolves a field someone else annotated takes it from them)
    resolver: str | None = None
    annotator_owner: str | None = None

    @property
    def key(self) -> tuple:
        return (self.annotator, self.coordinate, self.directive, self.owner)


class _Declarations:
    """Who declares what, across a set of connectors."""

    def __init__(self, connectors: list[Registered]) -> None:
        self.connectors = connectors
        self.implementations: dict[str, set[str]] = {}  # interface -> types implementing it (any subgraph)
        for connector in connectors:
            for type_def in connector.subgraph.types.values():
                for interface in type_def.interfaces:
                    self.implementations.setdefault(interface, set()).add(type_def.name)
        # type -> [(connector, where declared, subject field)]: the type's own @subject and its interfaces'
        self.claims: dict[str, list[tuple[Registered, str, str]]] = {}
        for connector in connectors:
            for type_def in connector.subgraph.types.values():
                for applied in type_def.applied:
                    if applied.privacy == "subject":
                        for target in self.reached(type_def.name):
                            self.claims.setdefault(target, []).append(
                                (connector, type_def.name, str(_argument(applied, "field")))
                            )

    def reached(self, type_name: str) -> list[str]:
        """The type and, for an interface, every type implementing it (transitively)."""
        seen = [type_name]
        for name in seen:
            seen += sorted(self.implementations.get(name, set()) - set(seen))
        return seen

    def resolvers(self, type_name: str, field_name: str) -> list[Registered]:
        return [c for c in self.connectors if _resolves(c.subgraph, type_name, field_name)]

    def is_link(self, type_name: str, seen: frozenset[str] = frozenset()) -> bool:
        """Values of the type name their own subject (a field of it links, it is no value)."""
        if type_name in self.claims:
            return True
        if type_name in seen or type_name in BUILT_IN_SCALARS:
            return False
        members = {
            m for c in self.connectors for t in (c.subgraph.types.get(type_name),) if t is not None for m in t.members
        }
        members |= self.implementations.get(type_name, set())
        return bool(members) and all(self.is_link(m, seen | {type_name}) for m in members)

    def value_fields(self, connector: Registered, type_name: str) -> list[str]:
        """Fields of the type this connector defines values of: not keys, not @external, not links."""
        type_def = connector.subgraph.types.get(type_name)
        if type_def is None or type_def.kind not in ("OBJECT", "INTERFACE"):
            return []
        keys = type_def.key_field_names()
        return [
            f.name
            for f in type_def.fields.values()
            if f.name not in keys and not f.external and not self.is_link(named_type(f.type))
        ]


def _findings(connectors: list[Registered]) -> list[_Finding]:
    declarations = _Declarations(connectors)
    found: dict[tuple, _Finding] = {}

    def add(finding: _Finding) -> None:
        found.setdefault(finding.key, finding)

    for connector in connectors:
        for type_def in connector.subgraph.types.values():
            if type_def.kind not in ("OBJECT", "INTERFACE"):
                continue
            for field_def in type_def.fields.values():
                for applied in field_def.applied:
                    if applied.privacy not in ("personal", "aggregate", "nonPersonal"):
                        continue
                    coordinate = f"{type_def.name}.{field_def.name}"
                    for target in declarations.reached(type_def.name):
                        for other in declarations.resolvers(target, field_def.name):
                            if other.owner == connector.owner:
                                continue
                            where = (
                                ""
                                if target == type_def.name
                                else f" (through {target}, which implements {type_def.name})"
                            )
                            add(
                                _Finding(
                                    connector.name,
                                    coordinate,
                                    applied.privacy,
                                    other.owner,
                                    f'"{connector.name}" ({connector.owner}) may not annotate "{coordinate}" @{applied.privacy}: '
                                    f"{other.owner}'s subgraph {other.name} resolves {target}.{field_def.name}{where}, and only its owner annotates it",
                                    other.name,
                                    connector.owner,
                                )
                            )
    for type_name, claims in sorted(declarations.claims.items()):
        owners = {c.owner for c, _, _ in claims}
        if len(owners) < 2:
            continue
        for connector, declared_on, field in claims:
            others = sorted(owners - {connector.owner})
            add(
                _Finding(
                    connector.name,
                    declared_on,
                    "subject",
                    others[0],
                    f'"{connector.name}" ({connector.owner}) may not name the subject of "{type_name}" (@subject(field: "{field}") on {declared_on}): '
                    f"{', '.join(others)} name(s) it too, and a type's subject is its owner's alone",
                    None,
                    connector.owner,
                )
            )
    return list(found.values())


def _subject_of_defined_types(
    candidate: Registered, previous: Registered | None, connectors: list[Registered]
) -> list[_Finding]:
    """A new @subject of the candidate on a type (or an interface of types) whose values another
    owner's subgraph defines: it would decide whose data that owner's fields are."""
    declarations = _Declarations(connectors)
    before = set()
    if previous is not None:
        before = {
            (t.name, str(_argument(a, "field")))
            for t in previous.subgraph.types.values()
            for a in t.applied
            if a.privacy == "subject"
        }
    findings = []
    for type_def in candidate.subgraph.types.values():
        for applied in type_def.applied:
            field = str(_argument(applied, "field"))
            if applied.privacy != "subject" or (type_def.name, field) in before:
                continue
            for target in declarations.reached(type_def.name):
                for other in connectors:
                    values = declarations.value_fields(other, target) if other.owner != candidate.owner else []
                    if values:
                        findings.append(
                            _Finding(
                                candidate.name,
                                type_def.name,
                                "subject",
                                other.owner,
                                f'"{candidate.name}" ({candidate.owner}) may not name the subject of "{target}" (@subject on {type_def.name}): '
                                f"{other.owner}'s subgraph {other.name} defines it ({', '.join(f'{target}.{v}' for v in values[:3])}), and a type's subject is its owner's",
                            )
                        )
    return findings


def check_annotation_ownership(
    connectors: list[Registered], *, candidate: str | None = None, before: list[Registered] | None = None
) -> list[Problem]:
    """PRIVACY_ANNOTATION_NOT_OWNED for every annotation of `connectors` that its owner does not
    own. With `candidate` (a registration), only what registering it would add to `before` (the
    connectors served now): a registration answers for its own annotations and for annotations
    of others it would take away from their owner (by resolving their fields), never for problems
    that were there before it."""
    findings = _findings(connectors)
    if candidate is None:
        return [
            Problem("PRIVACY_ANNOTATION_NOT_OWNED", f.message, f.coordinate, f.owner, subgraph=f.annotator)
            for f in findings
        ]
    known = {f.key for f in _findings(before or [])}
    findings = [f for f in findings if f.key not in known]
    registered = next(c for c in connectors if c.name == candidate)
    previous = next((c for c in before or [] if c.name == candidate), None)
    findings += [
        f for f in _subject_of_defined_types(registered, previous, connectors) if f.key not in {g.key for g in findings}
    ]
    problems = []
    own_subjects = any(f.annotator == candidate and f.directive == "subject" for f in findings)
    for finding in findings:
        if finding.annotator != candidate and finding.directive == "subject":
            if own_subjects:
                continue  # the candidate's own @subject is the problem, reported as such
            message = (
                f'"{candidate}" ({registered.owner}) would make the subject {finding.annotator_owner} names in "{finding.coordinate}" '
                "disputed (an interface it implements names another)"
            )
            problems.append(
                Problem("PRIVACY_ANNOTATION_NOT_OWNED", message, finding.coordinate, finding.annotator_owner)
            )
        elif finding.annotator != candidate and finding.resolver == candidate and finding.annotator_owner is not None:
            # the candidate's field would fall under an annotation someone else owns
            message = (
                f'"{candidate}" ({registered.owner}) may not resolve a field that {finding.annotator_owner} annotates '
                f'("{finding.coordinate}" @{finding.directive}, in {finding.annotator}): the annotation would decide over its values'
            )
            problems.append(
                Problem("PRIVACY_ANNOTATION_NOT_OWNED", message, finding.coordinate, finding.annotator_owner)
            )
        else:
            problems.append(Problem("PRIVACY_ANNOTATION_NOT_OWNED", finding.message, finding.coordinate, finding.owner))
    return problems
