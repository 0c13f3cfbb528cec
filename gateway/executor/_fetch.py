"""Running fetch nodes: send to subgraphs, merge answers into one response tree.

The executor walks the plan and the JSON it gets back; it never resolves field by field. A
failing subgraph yields errors for its part of the answer, never an exception to the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ..planner import FetchNode, QueryPlan, Representation, SSelection
from ..supergraph import SupergraphModel


class SubgraphUnavailable(Exception):
    """The subgraph could not be reached or did not answer with GraphQL."""


class SubgraphTransport(Protocol):
    """Sends one operation to one subgraph: JSON bytes back, or an already parsed answer."""

    async def send(self, subgraph: str, query: str, variables: dict[str, Any] | None, context: Any = None) -> bytes | dict: ...


@dataclass(slots=True)
class Execution:
    """The mutable state of one operation's execution."""

    variables: Mapping[str, Any]
    context: Any = None  # handed to in-process subgraphs (the requester)
    data: dict[str, Any] = field(default_factory=dict)
    errors: list[dict[str, Any]] = field(default_factory=list)
    subgraph_requests: int = 0


class FetchRunner:
    def __init__(self, model: SupergraphModel, transport: SubgraphTransport, redact_errors: bool = False) -> None:
        self.model = model
        self.transport = transport
        # with privacy on, a subgraph error's own words never reach the client: they may carry a
        # personal value no decision has seen (its code, path and subgraph still do)
        self.redact_errors = redact_errors
        # names that a subgraph may return as __typename without being a concrete type
        self._interface_names = frozenset(t.name for t in model.types.values() if t.kind == "INTERFACE")

    async def run(self, plan: QueryPlan, execution: Execution) -> None:
        nodes = plan.nodes
        if not nodes:
            return
        if len(nodes) == 1:
            await self._run_node(nodes[0], execution)
            return
        if plan.operation_kind == "mutation" or any(node.depends_on for node in nodes):
            tasks: dict[int, asyncio.Task] = {}
            for node in nodes:
                tasks[node.id] = asyncio.ensure_future(self._after(node, [tasks[d] for d in node.depends_on], execution))
            await asyncio.gather(*tasks.values())
        else:
            await asyncio.gather(*(self._run_node(node, execution) for node in nodes))

    async def _after(self, node: FetchNode, dependencies: list[asyncio.Task], execution: Execution) -> None:
        if dependencies:
            await asyncio.gather(*dependencies)
        await self._run_node(node, execution)

    async def _run_node(self, node: FetchNode, execution: Execution) -> None:
        variables = {name: execution.variables[name] for name in node.variable_names if name in execution.variables}
        if node.representations is None:
            result = await self._send(node, variables, execution)
            if result is None:
                return
            data = result.get("data")
            if isinstance(data, dict):
                if node.selection_to_undo_aliases is not None:
                    self._undo_aliases(data, node.selection_to_undo_aliases)
                _merge(execution.data, data, self._interface_names)
            self._add_errors(node, result.get("errors"), execution, None)
            return

        targets: list[list[dict]] = []
        representations: list[dict] = []
        seen: dict[bytes, int] = {}
        for obj in _objects_at(execution.data, node.merge_path):
            shape = node.representations.get(obj.get("__typename"))  # type: ignore[arg-type]
            if shape is None:
                continue
            representation = _represent(obj, shape)
            if representation is None:
                continue
            identity = orjson.dumps(representation)
            index = seen.get(identity)
            if index is None:
                seen[identity] = len(representations)
                representations.append(representation)
                targets.append([obj])
            else:
                targets[index].append(obj)
        if not representations:
            return
        variables[node.representations_variable] = representations
        result = await self._send(node, variables, execution)
        if result is None:
            return
        data = result.get("data")
        entities = data.get("_entities") if isinstance(data, dict) else None
        if isinstance(entities, list):
            undo = node.selection_to_undo_aliases
            for index, entity in enumerate(entities[: len(targets)]):
                if not isinstance(entity, dict):
                    continue
                if undo is not None:
                    self._undo_aliases(entity, undo)
                for obj in targets[index]:
                    _merge(obj, entity, self._interface_names)
        self._add_errors(node, result.get("errors"), execution, targets)

    async def _send(self, node: FetchNode, variables: dict, execution: Execution) -> dict | None:
        execution.subgraph_requests += 1
        try:
            raw = await self.transport.send(node.subgraph, node.document, variables or None, execution.context)
            result = raw if isinstance(raw, dict) else orjson.loads(raw)
            if not isinstance(result, dict) or ("data" not in result and "errors" not in result):
                raise SubgraphUnavailable("the answer is not a GraphQL response")
        except SubgraphUnavailable as error:
            self._subgraph_failed(node, execution, str(error))
            return None
        except (orjson.JSONDecodeError, TypeError):
            self._subgraph_failed(node, execution, "the answer is not JSON")
            return None
        return result

    def _subgraph_failed(self, node: FetchNode, execution: Execution, reason: str) -> None:
        error: dict[str, Any] = {
            "message": f"subgraph '{node.subgraph}' failed: {reason}",
            "extensions": {"code": "SUBREQUEST_HTTP_ERROR", "serviceName": node.subgraph},
        }
        if node.merge_path:
            error["path"] = [p for p in node.merge_path if p != "@"]
        execution.errors.append(error)

    def _add_errors(self, node: FetchNode, errors: Any, execution: Execution, targets: list[list[dict]] | None) -> None:
        if not errors or not isinstance(errors, list):
            return
        paths: dict[int, list] | None = None
        for error in errors:
            if not isinstance(error, dict):
                continue
            message = error.get("message")
            if self.redact_errors:
                message = f"subgraph '{node.subgraph}' reported an error"
            out: dict[str, Any] = {"message": message if isinstance(message, str) else "subgraph error"}
            path = error.get("path")
            if isinstance(path, list) and path:
                if targets is not None and path[0] == "_entities":
                    if paths is None:
                        paths = _object_paths(execution.data, node.merge_path)
                    index = path[1] if len(path) > 1 and isinstance(path[1], int) else None
                    if index is not None and index < len(targets):
                        out["path"] = paths.get(id(targets[index][0]), []) + path[2:]
                else:
                    out["path"] = path
            extensions = error.get("extensions")
            extensions = dict(extensions) if isinstance(extensions, dict) else {}
            if self.redact_errors:
                extensions = {"code": extensions["code"]} if isinstance(extensions.get("code"), str) else {}
            extensions["serviceName"] = node.subgraph
            out["extensions"] = extensions
            execution.errors.append(out)

    def _undo_aliases(self, data: Any, selection: SSelection) -> None:
        if isinstance(data, list):
            for item in data:
                self._undo_aliases(item, selection)
            return
        if not isinstance(data, dict):
            return
        typename = data.get("__typename")
        for sub_field in selection.fields.values():
            if sub_field.selection is not None and sub_field.key in data:
                self._undo_aliases(data[sub_field.key], sub_field.selection)
            if sub_field.original_key is not None and sub_field.key in data:
                data[sub_field.original_key] = data.pop(sub_field.key)
        for condition, fragment in selection.fragments.items():
            if condition == typename or (typename and typename in self.model.api_possible_types(condition)):
                self._undo_aliases(data, fragment)


def _objects_at(data: Any, path: tuple[str, ...]) -> list[dict]:
    current = [data]
    for step in path:
        following: list = []
        if step == "@":
            for value in current:
                if isinstance(value, list):
                    following.extend(value)
        else:
            for value in current:
                if isinstance(value, dict):
                    child = value.get(step)
                    if child is not None:
                        following.append(child)
        current = following
    return [value for value in current if isinstance(value, dict)]


def _object_paths(data: Any, path: tuple[str, ...]) -> dict[int, list]:
    """id(object) -> its response path, for the objects at a merge path (errors only)."""
    current: list[tuple[Any, list]] = [(data, [])]
    for step in path:
        following: list[tuple[Any, list]] = []
        for value, at in current:
            if step == "@":
                if isinstance(value, list):
                    following.extend((item, at + [index]) for index, item in enumerate(value))
            elif isinstance(value, dict) and value.get(step) is not None:
                following.append((value[step], at + [step]))
        current = following
    return {id(value): at for value, at in current}


def _represent(obj: dict, shape: Representation) -> dict | None:
    representation: dict[str, Any] = {"__typename": shape.typename}
    if not _fill(obj, shape.entries, representation):
        return None
    return representation


def _fill(source: dict, entries: tuple, target: dict) -> bool:
    for entry in entries:
        if entry[0] == "field":
            _, name, key, sub, is_key = entry
            if key not in source:
                return False
            value = source[key]
            if value is None:
                if is_key:
                    return False
                target[name] = None
            elif sub is None:
                target[name] = value
            else:
                projected = _project(value, sub)
                if projected is None and is_key:
                    return False
                target[name] = projected
        else:
            _, types, sub = entry
            if source.get("__typename") in types and not _fill(source, sub, target):
                return False
    return True


def _project(value: Any, entries: tuple) -> Any:
    if isinstance(value, list):
        return [_project(item, entries) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    if "__typename" in value:
        out["__typename"] = value["__typename"]
    if not _fill(value, entries, out):
        return None
    return out


def _merge(target: dict, source: dict, interface_names: frozenset[str]) -> None:
    for key, value in source.items():
        current = target.get(key)
        if current is None:
            target[key] = value
        elif value is None:
            continue
        elif type(value) is dict and type(current) is dict:
            _merge(current, value, interface_names)
        elif type(value) is list and type(current) is list and len(value) == len(current):
            _merge_lists(current, value, interface_names)
        elif key == "__typename" and value in interface_names:
            continue  # an @interfaceObject never hides a concrete type already known
        else:
            target[key] = value


def _merge_lists(target: list, source: list, interface_names: frozenset[str]) -> None:
    for index, value in enumerate(source):
        current = target[index]
        if type(value) is dict and type(current) is dict:
            _merge(current, value, interface_names)
        elif type(value) is list and type(current) is list and len(value) == len(current):
            _merge_lists(current, value, interface_names)
        elif current is None:
            target[index] = value
