"""What introspection shows each requester: the fields its policy could ever let it receive.

Derived from the policy and the supergraph's privacy annotations (the same look-ups the guard
decides with), never configured apart. A field is in a requester's schema unless no decision of
docs/privacy.md could ever disclose its value to that requester, whoever the subject:

- a field that is neither personal nor an aggregate: always;
- a personal field: never for the public (step 1 needs a resident, 2 and 3 a client); always for a
  resident signed in (step 1: it may be their own value); for a client, when a consent could
  be given to it (a resident may consent to a registered client, for any of its declared
  purposes, any category: so whenever it declares a purpose), or when a legal basis of the policy
  could cover it (one of the client's purposes, one of the requester's roles, the field's category
  and sources; a rule scoped by paths counts, the value may be reached through one of them);
- an aggregate: with the policy's `open_data`, only for requesters with a budget (the public's,
  or the client's own); without it, for everyone (k decides per value).

A masked value (`j***@example.org`) is no disclosure of the field: the public asking for an
e-mail still gets the masked form and `extensions.privacy.withheld`, but it does not see the field.

The filtered schema stays valid: an interface keeps a field only where each of its
implementations keeps it; a type left without a field, a union without a member, is removed
together with every field pointing at it (as its type or an argument's), recursively; types that
became unreachable from the root types are dropped (those unreachable in the whole schema stay);
Query always stays (with a placeholder field when nothing of it is left, which cannot happen
while the control plane's non-personal `clients` is there); Mutation and Subscription go when
empty. Descriptions, deprecations and directives are kept. This schema serves introspection
only: validation and execution stay on the whole API schema (docs/frontend.md).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass

from cachetools import LRUCache
from graphql import (
    GraphQLBoolean,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    GraphQLUnionType,
    get_named_type,
    is_introspection_type,
)

from ..identity import Requester
from ..policy import Policy
from ..supergraph import SupergraphModel
from ._annotations import PrivacySchema

__all__ = ["PLACEHOLDER_FIELD", "PUBLIC_AUDIENCE", "Audience", "ClientSchemas", "client_schema", "field_sources"]

# Query's field when nothing of it can reach the requester: GraphQL wants at least one field. It is
# no field of the API schema: asking for it is refused like any unknown field.
PLACEHOLDER_FIELD = "_empty"
_CACHED_SCHEMAS = 64  # schemas kept per engine: audiences reduced to what decides them (ClientSchemas.decisive)

Sources = Callable[[str, str], frozenset[str]]


@dataclass(frozen=True, slots=True)
class Audience:
    """Who a schema is for: what of a requester can change what it could ever receive (the
    client, whether a resident is signed in, the roles). Not the purpose of one request: a
    client's schema is the same whichever of its purposes it declares."""

    client: str | None
    resident: bool = False
    roles: frozenset[str] = frozenset()

    @classmethod
    def of(cls, requester: Requester | None) -> Audience:
        if (
            not isinstance(requester, Requester) or requester.client is None
        ):  # no requester known: the public (fail closed)
            return PUBLIC_AUDIENCE
        return cls(requester.client.id, requester.resident is not None, requester.roles)


PUBLIC_AUDIENCE = Audience(None)


def field_sources(model: SupergraphModel, type_name: str, field_name: str) -> frozenset[str]:
    """The owners whose data a value of the field is, as legal bases are scoped (the engine's and
    the client schemas' one definition): every owner of a subgraph resolving it on the type or an
    interface it implements."""
    subgraphs = set(model.subgraphs_resolving(type_name, field_name))
    for interface in model.interfaces_of(type_name):
        subgraphs.update(model.subgraphs_resolving(interface, field_name))
    return frozenset(model.owner_of(subgraph) for subgraph in subgraphs)


class ClientSchemas:
    """The per-audience schemas of one engine (one supergraph, one policy), built on first use
    and kept in a bounded cache: a policy reload or a new supergraph builds a new engine."""

    def __init__(
        self, model: SupergraphModel, privacy: PrivacySchema | None, policy: Policy, sources: Sources | None = None
    ) -> None:
        self.api_schema = model.api_schema
        self.privacy = privacy
        self.policy = policy
        self.sources: Sources = sources or (lambda type_name, field_name: field_sources(model, type_name, field_name))
        self._schemas: LRUCache = LRUCache(maxsize=_CACHED_SCHEMAS)
        self._full_orphans: frozenset[str] | None = None

    def for_requester(self, requester: Requester | None) -> tuple[Hashable, GraphQLSchema]:
        """(a key naming what decides the audience's schema, its schema): the executor's
        introspection hook (it caches introspection answers under the same key)."""
        audience = self.decisive(Audience.of(requester))
        key = self._key(audience)
        return key, self._schema(key, audience)

    def schema(self, audience: Audience) -> GraphQLSchema:
        audience = self.decisive(audience)
        return self._schema(self._key(audience), audience)

    def _schema(self, key: Hashable, audience: Audience) -> GraphQLSchema:
        found = self._schemas.get(key)
        if found is None:
            found = self._schemas[key] = self._build(audience)
        return found

    def _enabling(self, audience: Audience) -> tuple[int, ...]:
        """The legal bases (their places in the policy) that the audience's roles and its client's
        purposes enable: with the client and whether a resident is signed in, all that can change
        its schema (_personal_receivable's step 2)."""
        client = self.policy.clients.get(audience.client) if audience.client is not None else None
        if client is None or audience.resident or not audience.roles:
            return ()
        purposes = set(client.purposes)
        return tuple(
            place
            for place, rule in enumerate(self.policy.legal_bases)
            if not audience.roles.isdisjoint(rule.roles) and not purposes.isdisjoint(rule.purposes)
        )

    def decisive(self, audience: Audience) -> Audience:
        """The audience with only the roles that enable one of the policy's legal bases for its
        client: the roles a token carries beyond those (any number of them) change nothing it could
        receive, so they neither build another schema nor take another place in the caches. A
        resident signed in could receive every personal field whatever its roles; the public has
        none that count."""
        if audience.client is None:
            return PUBLIC_AUDIENCE
        enabling = self._enabling(audience)
        roles = frozenset().union(
            *(audience.roles.intersection(self.policy.legal_bases[place].roles) for place in enabling)
        )
        return audience if roles == audience.roles else Audience(audience.client, audience.resident, roles)

    def _key(self, audience: Audience) -> Hashable:
        """What decides a (decisive) audience's schema: two sets of roles enabling the same legal
        bases share one schema. The number of keys is bounded by the policy (clients x signed in x
        subsets of its legal bases), never by what requesters send; the LRU bounds it further."""
        return (audience.client, audience.resident, self._enabling(audience))

    # -- what the audience could ever receive -----------------------------------------------------

    def receivable(self, audience: Audience, type_name: str, field_name: str) -> bool:
        """Whether some value of `type_name.field_name` could ever be disclosed to the audience
        (unmasked), judged on this coordinate; an interface's field is also kept only where each
        of its implementations keeps it (kept_fields)."""
        privacy = self.privacy
        if privacy is None:
            return True  # no annotation anywhere: nothing is personal
        personal = privacy.personal(type_name, field_name)
        if personal is not None:
            return self._personal_receivable(audience, personal.category, self.sources(type_name, field_name))
        if privacy.aggregate(type_name, field_name) is not None:
            return self._aggregate_receivable(audience)
        return True

    def _personal_receivable(self, audience: Audience, category: str, sources: frozenset[str]) -> bool:
        if audience.client is None:
            return False  # the public: no step of the decision discloses to it
        if audience.resident:
            return True  # step 1: a resident signed in may be this value's subject
        client = self.policy.clients.get(audience.client)
        if client is None or not client.purposes:
            return False  # a client without a purpose cannot send a request (PURPOSE_REQUIRED)
        # step 2: a legal basis for one of the client's purposes and the requester's roles, covering
        # the category from these sources (a rule scoped by paths: the value may be reached so)
        by_basis = any(
            not audience.roles.isdisjoint(rule.roles)
            and not set(client.purposes).isdisjoint(rule.purposes)
            and rule.could_cover(category, sources)
            for rule in self.policy.legal_bases
        )
        # step 3: a resident may consent to any registered client, for any of its declared purposes,
        # any category (gateway/consent/_ledger.py's grant): every personal field, so far
        return by_basis or self._consent_possible(client.purposes, category)

    @staticmethod
    def _consent_possible(purposes: tuple[str, ...], category: str) -> bool:
        """Whether a consent to a client declaring `purposes` could cover `category`. Nothing in the
        policy limits the categories a purpose may ask for: any. Were purposes ever scoped to
        categories, this is the one place that would read that scope."""
        return bool(purposes) and bool(category)

    def _aggregate_receivable(self, audience: Audience) -> bool:
        open_data = self.policy.open_data
        if open_data is None:
            return True  # released above k to everyone
        return open_data.budget_for(audience.client or "public", audience.client is None) is not None

    # -- the filtered schema ------------------------------------------------------------------------

    def kept_fields(self, audience: Audience) -> dict[str, list[str]]:
        """Per object and interface type left, the fields it keeps, in the schema's order; a type
        absent is removed. Types that became unreachable are not pruned here (see _build)."""
        schema = self.api_schema
        composite = {
            name: named
            for name, named in schema.type_map.items()
            if isinstance(named, GraphQLObjectType | GraphQLInterfaceType) and not is_introspection_type(named)
        }
        unions = {name: named for name, named in schema.type_map.items() if isinstance(named, GraphQLUnionType)}
        kept: dict[str, set[str]] = {}
        for name, named in composite.items():
            kept[name] = {field_name for field_name in named.fields if self.receivable(audience, name, field_name)}
        removed: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, union in unions.items():
                if name not in removed and all(member.name in removed for member in union.types):
                    removed.add(name)
                    changed = True
            for name, named in composite.items():
                if name in removed:
                    continue
                fields = kept[name]
                for field_name in list(fields):
                    definition = named.fields[field_name]
                    pointing = [
                        get_named_type(definition.type).name,
                        *(get_named_type(arg.type).name for arg in definition.args.values()),
                    ]
                    if any(target in removed for target in pointing):
                        fields.discard(field_name)
                        changed = True
                if isinstance(named, GraphQLInterfaceType):
                    implementations = schema.get_implementations(named)
                    for implementation in (*implementations.objects, *implementations.interfaces):
                        if implementation.name in removed:
                            continue
                        lost = fields - kept[implementation.name]
                        if lost:
                            fields -= lost
                            changed = True
                if not fields and name != _root_name(schema, "query"):
                    removed.add(name)
                    changed = True
        return {
            name: [field_name for field_name in named.fields if field_name in kept[name]]
            for name, named in composite.items()
            if name not in removed
        } | {name: [] for name in unions if name not in removed}

    def _build(self, audience: Audience) -> GraphQLSchema:
        schema = self.api_schema
        kept = self.kept_fields(audience)
        composite_count = sum(
            1
            for named in schema.type_map.values()
            if isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType)
            and not is_introspection_type(named)
        )
        if len(kept) == composite_count and all(
            len(fields) == len(schema.type_map[name].fields)  # type: ignore[union-attr]
            for name, fields in kept.items()
            if not isinstance(schema.type_map[name], GraphQLUnionType)
        ):
            return schema  # nothing to hide: the API schema itself
        return _Rebuild(schema, kept, self._orphans()).schema()

    def _orphans(self) -> frozenset[str]:
        """Named types the whole API schema does not reach from its root types: kept as they are
        (what a filter made unreachable goes, what was never reachable stays)."""
        if self._full_orphans is None:
            schema = self.api_schema
            every = {name: [*getattr(named, "fields", {})] for name, named in schema.type_map.items()}
            self._full_orphans = frozenset(schema.type_map) - _reachable(schema, every)
        return self._full_orphans


def _root_name(schema: GraphQLSchema, kind: str) -> str | None:
    root = {"query": schema.query_type, "mutation": schema.mutation_type, "subscription": schema.subscription_type}[
        kind
    ]
    return root.name if root is not None else None


def _reachable(schema: GraphQLSchema, kept: dict[str, list[str]]) -> set[str]:
    """Named types reachable from the root types through the kept fields (their types and their
    arguments'), an interface's kept implementations and a union's kept members."""
    roots = [
        root
        for root in (schema.query_type, schema.mutation_type, schema.subscription_type)
        if root is not None and root.name in kept
    ]
    seen: set[str] = set()
    stack: list[GraphQLNamedType] = list(roots)
    while stack:
        named = stack.pop()
        if named.name in seen:
            continue
        seen.add(named.name)
        targets: list[GraphQLNamedType] = []
        if isinstance(named, GraphQLObjectType | GraphQLInterfaceType):
            for field_name in kept.get(named.name, ()):
                definition = named.fields[field_name]
                targets.append(get_named_type(definition.type))
                targets += [get_named_type(arg.type) for arg in definition.args.values()]
            targets += [i for i in named.interfaces if i.name in kept]
            if isinstance(named, GraphQLInterfaceType):
                implementations = schema.get_implementations(named)
                targets += [t for t in (*implementations.objects, *implementations.interfaces) if t.name in kept]
        elif isinstance(named, GraphQLUnionType):
            targets += [member for member in named.types if member.name in kept]
        else:
            targets += [get_named_type(f.type) for f in getattr(named, "fields", {}).values()]  # input objects
        stack += [t for t in targets if t.name not in seen]
    return seen


class _Rebuild:
    """The API schema with only the kept types and fields: object, interface and union types are
    copied (they point at one another), scalars, enums and input types are shared unchanged."""

    def __init__(self, schema: GraphQLSchema, kept: dict[str, list[str]], orphans: frozenset[str]) -> None:
        self.source = schema
        self.kept = kept
        self.orphans = orphans
        self.copies: dict[str, GraphQLNamedType] = {}

    def schema(self) -> GraphQLSchema:
        source = self.source
        query = source.query_type
        assert query is not None
        reachable = _reachable(source, self.kept)
        names = [
            name
            for name, named in source.type_map.items()
            if not is_introspection_type(named)
            and (name in reachable or (name in self.orphans and self._kept_or_leaf(named)))
        ]
        mutation = (
            source.mutation_type
            if source.mutation_type is not None and source.mutation_type.name in self.kept
            else None
        )
        subscription = (
            source.subscription_type
            if source.subscription_type is not None and source.subscription_type.name in self.kept
            else None
        )
        return GraphQLSchema(
            query=self._named(query),  # type: ignore[arg-type]
            mutation=self._named(mutation) if mutation is not None else None,  # type: ignore[arg-type]
            subscription=self._named(subscription) if subscription is not None else None,  # type: ignore[arg-type]
            types=[self._named(source.type_map[name]) for name in names],
            directives=source.directives,
            description=source.description,
            extensions=source.extensions,
        )

    def _kept_or_leaf(self, named: GraphQLNamedType) -> bool:
        return (
            not isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType)
            or named.name in self.kept
        )

    def _named(self, named: GraphQLNamedType) -> GraphQLNamedType:
        if not isinstance(named, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType) or is_introspection_type(
            named
        ):
            return named  # scalars, enums and input types reference nothing that is filtered
        copy = self.copies.get(named.name)
        if copy is not None:
            return copy
        config = named.to_kwargs()
        if isinstance(named, GraphQLUnionType):
            members = [m for m in named.types if m.name in self.kept]
            copy = GraphQLUnionType(**{**config, "types": lambda: [self._named(m) for m in members]})
        else:
            field_names = self.kept[named.name]
            interfaces = [i for i in named.interfaces if i.name in self.kept]

            def fields(named=named, field_names=field_names) -> dict[str, GraphQLField]:
                if not field_names:  # Query with nothing left
                    return {
                        PLACEHOLDER_FIELD: GraphQLField(
                            GraphQLBoolean,
                            description=(
                                "Nothing of this schema can reach you: this field only keeps the schema valid and cannot be queried."
                            ),
                        )
                    }
                return {name: self._field(named.fields[name]) for name in field_names}

            kind = GraphQLObjectType if isinstance(named, GraphQLObjectType) else GraphQLInterfaceType
            copy = kind(
                **{
                    **config,
                    "fields": fields,
                    "interfaces": lambda interfaces=interfaces: [self._named(i) for i in interfaces],
                }
            )
        self.copies[named.name] = copy
        return copy

    def _field(self, definition: GraphQLField) -> GraphQLField:
        config = definition.to_kwargs()
        return GraphQLField(**{**config, "type_": self._type(definition.type)})

    def _type(self, wrapped):
        if isinstance(wrapped, GraphQLNonNull):
            return GraphQLNonNull(self._type(wrapped.of_type))
        if isinstance(wrapped, GraphQLList):
            return GraphQLList(self._type(wrapped.of_type))
        return self._named(wrapped)


def client_schema(
    supergraph: str, policy: Policy, audience: Audience, owners: dict[str, str] | None = None
) -> GraphQLSchema:
    """The schema `audience` introspects on a gateway serving `supergraph` (Apollo's format) with
    `policy` (`citygate schema`). Raises SupergraphError for a supergraph the engine would refuse."""
    from ..supergraph import SupergraphError, load_supergraph

    model = load_supergraph(supergraph, policy.privacy, owners)
    privacy = PrivacySchema(model) if model.privacy else None
    if privacy is not None:
        problems = privacy.check()
        if problems:
            raise SupergraphError("; ".join(f"{p.code}: {p.message}" for p in problems))
    return ClientSchemas(model, privacy, policy).schema(audience)
