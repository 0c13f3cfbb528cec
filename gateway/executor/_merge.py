"""Merging subgraph answers into the one response tree: only what each fetch asked for.

A subgraph's answer is data, never a say in whose data it is. Before an answer merges, every key
its fetch did not ask for is dropped, at every depth (`AnswerSelection`: fields by response key,
fragments by the answer's `__typename`, or the representation's for an entity), and the aliases
the planner added are undone. So no answer can add a key the gateway reads for itself (the privacy
stage's `_cg_subject`, a contributor count, the client's own `id`), nor touch an object below a
field it was not asked for.

Where answers disagree on a value (a later fetch answers a key already in the tree differently, or
one answer gives one field different values under two keys), the value merges with federation's
semantics (the later answer wins, a null never erases a value) but is marked *disputed*: a str or
int subclass that serializes as the plain value. The shaper hands a disputed subject to the privacy
stage as SUBJECT_CONFLICT, which withholds the object's personal values (`subject-conflict`).

This module never performs I/O, never adds a key an answer did not carry, and never replaces a text
or whole number of the tree (what a subject or a count is) with another without marking it.
"""

from __future__ import annotations

from typing import Any

from ..planner import AnswerSelection, AnswerView


class DisputedStr(str):
    """A text value that two answers (or two keys of one answer) gave differently."""

    __slots__ = ()


class DisputedInt(int):
    """A whole number that two answers (or two keys of one answer) gave differently."""

    __slots__ = ()


DISPUTED = (DisputedStr, DisputedInt)


class _SubjectConflict:
    __slots__ = ()

    def __repr__(self) -> str:
        return "SUBJECT_CONFLICT"


# The subject the shaper hands the privacy stage for an object whose subject is disputed.
SUBJECT_CONFLICT: Any = _SubjectConflict()


def disputed(value: Any) -> Any:
    """`value` marked as disputed (texts and whole numbers: what a subject or a count can be)."""
    kind = value.__class__
    if kind is str:
        return DisputedStr(value)
    if kind is int:
        return DisputedInt(value)
    return value


def keep_asked(answer: dict, asked: AnswerSelection, typename: str | None) -> None:
    """Drop, in place, every key of `answer` (an object of a parsed subgraph answer, ours alone)
    that was not asked for, at every depth; undo the planner's aliases; mark disagreeing keys of
    one field. `typename`: the type the object was asked as (an entity's representation), if any;
    where the operation asked for `__typename`, the answer's picks the fragments."""
    view = asked.fixed
    if view is None:
        if asked.mentions_typename:
            answered = answer.get("__typename")
            if answered.__class__ is str:
                typename = answered
        view = asked.view(typename)
    keys = view[0]
    if not keys.issuperset(answer):
        _drop_unasked(answer, keys)
    # this walk runs over every object of every answer: objects asking only for leaves (the most
    # common) are checked without a call each, a list of them in one pass when nothing is extra
    for key, below in view[1]:
        value = answer.get(key)
        if value.__class__ is list:
            leaf_keys = below.leaf_keys
            if leaf_keys is not None:
                try:
                    if all(map(leaf_keys.issuperset, value)):
                        continue
                except TypeError:  # a null (or a list) among the items
                    pass
            _keep_asked_items(value, below)
        elif value.__class__ is dict:
            leaf_keys = below.leaf_keys
            if leaf_keys is None:
                keep_asked(value, below, None)
            elif not leaf_keys.issuperset(value):
                _drop_unasked(value, leaf_keys)
    if view[2]:
        for answer_key, tree_key in view[2]:
            if answer_key in answer:
                answer[tree_key] = answer.pop(answer_key)
    if view[3]:
        _agree(answer, view[3])


class AnswerCheck:
    """`keep_asked` for one AnswerSelection, as Python code generated once per view and kept with
    the plan: the same checks in the same order, every nested selection without fragments inlined
    (no call, no loop over the view per object; the walk over every answer was a third of the
    fetch stage). Selections with fragments below the top are handed to `keep_asked`."""

    __slots__ = ("_by_type", "asked")

    def __init__(self, asked: AnswerSelection) -> None:
        self.asked = asked
        self._by_type: dict[str | None, Any] = {}

    def __call__(self, answer: dict, typename: str | None) -> None:
        asked = self.asked
        if asked.fixed is not None:
            typename = None
        elif asked.mentions_typename:
            answered = answer.get("__typename")
            if answered.__class__ is str:
                typename = answered
            typename = asked.view_key(typename)  # a partner's unknown typename compiles nothing new
        check = self._by_type.get(typename)
        if check is None:
            view = asked.fixed if asked.fixed is not None else asked.view(typename)
            check = self._by_type[typename] = _compile_view(view)
        check(answer)


# how deep nested selections are inlined into one generated function; deeper ones are called
_INLINE_DEPTH = 16


def _compile_view(view: AnswerView) -> Any:
    constants: dict[str, Any] = {
        "_drop_unasked": _drop_unasked,
        "_keep_asked_items": _keep_asked_items,
        "keep_asked": keep_asked,
        "_agree": _agree,
    }

    def constant(value: Any) -> str:
        name = f"_c{len(constants)}"
        constants[name] = value
        return name

    lines = ["def check(o0):"]

    def emit(obj: str, view: AnswerView, depth: int, indent: str) -> None:
        keys = constant(view.keys)
        lines.append(f"{indent}if not {keys}.issuperset({obj}): _drop_unasked({obj}, {keys})")
        value = f"v{depth}"
        for key, below in view.nested:
            asked = constant(below)
            lines.append(f"{indent}{value} = {obj}.get({key!r})")
            lines.append(f"{indent}if {value}.__class__ is list:")
            if below.leaf_keys is not None:
                leaf_keys = constant(below.leaf_keys)
                lines.append(f"{indent}    try:")
                lines.append(f"{indent}        whole = all(map({leaf_keys}.issuperset, {value}))")
                lines.append(f"{indent}    except TypeError:")
                lines.append(f"{indent}        whole = False")
                lines.append(f"{indent}    if not whole: _keep_asked_items({value}, {asked})")
                lines.append(f"{indent}elif {value}.__class__ is dict:")
                lines.append(f"{indent}    if not {leaf_keys}.issuperset({value}): _drop_unasked({value}, {leaf_keys})")
            elif below.fixed is not None and depth < _INLINE_DEPTH:
                item = f"o{depth + 1}"
                lines.append(f"{indent}    for {item} in {value}:")
                lines.append(f"{indent}        if {item}.__class__ is dict:")
                emit(item, below.fixed, depth + 1, indent + "            ")
                lines.append(f"{indent}        elif {item}.__class__ is list: _keep_asked_items({item}, {asked})")
                lines.append(f"{indent}elif {value}.__class__ is dict:")
                lines.append(f"{indent}    {item} = {value}")
                emit(item, below.fixed, depth + 1, indent + "    ")
            else:
                lines.append(f"{indent}    _keep_asked_items({value}, {asked})")
                lines.append(f"{indent}elif {value}.__class__ is dict:")
                lines.append(f"{indent}    keep_asked({value}, {asked}, None)")
        for answer_key, tree_key in view.renames:
            lines.append(f"{indent}if {answer_key!r} in {obj}: {obj}[{tree_key!r}] = {obj}.pop({answer_key!r})")
        if view.same_field:
            lines.append(f"{indent}_agree({obj}, {constant(view.same_field)})")

    emit("o0", view, 0, "    ")
    namespace = dict(constants)
    exec(
        compile("\n".join(lines), "<answer check>", "exec"), namespace
    )  # our own code: names from the plan, as repr()s
    return namespace.pop("check")  # not kept in its own globals: no cycle to outlive a released Engine


def _drop_unasked(answer: dict, keys: frozenset[str]) -> None:
    for key in [key for key in answer if key not in keys]:
        del answer[key]


def _keep_asked_items(items: list, asked: AnswerSelection) -> None:
    leaf_keys = asked.leaf_keys
    for item in items:
        if item.__class__ is dict:
            if leaf_keys is None:
                keep_asked(item, asked, None)
            elif not leaf_keys.issuperset(item):
                _drop_unasked(item, leaf_keys)
        elif item.__class__ is list:
            _keep_asked_items(item, asked)


def _agree(answer: dict, same_field: tuple[tuple[str, ...], ...]) -> None:
    """One answer giving one field different values under two keys (e.g. the client's alias of
    the subject field and the gateway's `_cg_subject`): every one of them is disputed."""
    for tree_keys in same_field:
        values = [answer[key] for key in tree_keys if answer.get(key) is not None]
        if len(values) > 1 and any(value != values[0] for value in values[1:]):
            for key in tree_keys:
                if answer.get(key) is not None:
                    answer[key] = disputed(answer[key])


def merge(target: dict, source: dict, interface_names: frozenset[str]) -> None:
    """Merge an answer object (already reduced to what was asked) into an object of the tree."""
    if target.keys().isdisjoint(source):
        target.update(source)  # the common case: a fetch adding fields the object did not have yet
        return
    for key, value in source.items():
        current = target.get(key)
        if current is None:
            target[key] = value
        elif value is None:
            continue
        elif type(value) is dict and type(current) is dict:
            merge(current, value, interface_names)
        elif type(value) is list and type(current) is list and len(value) == len(current):
            _merge_lists(current, value, interface_names)
        elif key == "__typename":
            # an @interfaceObject never hides a concrete type already known; a later answer naming
            # another concrete type wins as in federation, but disputed: the shaper picks guards by
            # the type, so the object's personal values are then withheld (subject-conflict)
            if value not in interface_names and value != current:
                target[key] = value if current in interface_names else disputed(value)
        elif value == current:
            if value.__class__ in DISPUTED:
                target[key] = value  # the answer disputes it itself (two keys of one field)
        else:
            target[key] = disputed(value)  # the later answer wins, as in federation, but disputed


def _merge_lists(target: list, source: list, interface_names: frozenset[str]) -> None:
    for index, value in enumerate(source):
        current = target[index]
        if type(value) is dict and type(current) is dict:
            merge(current, value, interface_names)
        elif type(value) is list and type(current) is list and len(value) == len(current):
            _merge_lists(current, value, interface_names)
        elif current is None:
            target[index] = value
