"""The mapping language on its own: what it reads, what it makes, and where it stops."""

from __future__ import annotations

import pytest

from gateway.connect._selection import (
    MAX_DEPTH,
    Budget,
    MappingError,
    Scope,
    SelectionError,
    apply,
    parse_selection,
)

ANSWER = {
    "results": [
        {
            "id": 1,
            "label": "A",
            "geo": {"lat": 48.85, "lng": 2.35},
            "tags": ["x", "y", "z"],
            "status": "open",
            "extra": {"k1": 1, "k2": 2},
        },
        {"id": 2, "label": "B", "geo": None, "tags": [], "status": "closed", "extra": {}},
    ],
    "meta": {"total": 2},
}


def mapped(selection: str, value=ANSWER, **variables):
    scope = Scope({f"${k}": v for k, v in variables.items()}, Budget(100_000))
    return apply(parse_selection(selection), value, scope)


def test_fields_renames_paths_nested_objects_and_literals():
    result = mapped("""
      count: meta.total   # a path
      $.results {
        id
        name: label
        lat: geo.lat
        position: { latitude: geo.lat longitude: geo.lng }
        kind: $("spot")
      }
    """)
    assert result == {"count": 2}  # an unnamed path among fields merges an object's fields, not a list
    spots = mapped(
        '$.results { id name: label lat: geo.lat position: { latitude: geo.lat } kind: $("spot") source: $args.src }',
        args={"src": "api"},
    )
    assert spots == [
        {"id": 1, "name": "A", "lat": 48.85, "position": {"latitude": 48.85}, "kind": "spot", "source": "api"},
        {"id": 2, "name": "B", "lat": None, "position": {"latitude": None}, "kind": "spot", "source": "api"},
    ]


def test_a_path_over_a_list_maps_over_its_items():
    assert mapped("labels: results.label ids: $.results.id") == {"labels": ["A", "B"], "ids": [1, 2]}


def test_methods():
    row = ANSWER["results"][0]
    assert mapped(
        """
        first: tags->first last: tags->last some: tags->slice(1, 3) size: tags->size chars: label->size
        upper: status->match(["open", "OPEN"], ["closed", "CLOSED"], [@, "UNKNOWN"])
        pairs: extra->entries keys: extra->keys json: geo->jsonStringify
        isOpen: status->eq("open") notOpen: status->ne("open") big: id->gt(0)
        doubled: tags->map({ tag: @ })
        kept: tags->filter(@->ne("y")) found: tags->find(@->eq("z")) joined: tags->joinNotNull("|")
        echoed: id->echo([@, @]) typed: tags->typeOf second: tags->get(1)
        """,
        row,
    ) == {
        "first": "x",
        "last": "z",
        "some": ["y", "z"],
        "size": 3,
        "chars": 1,
        "upper": "OPEN",
        "pairs": [{"key": "k1", "value": 1}, {"key": "k2", "value": 2}],
        "keys": ["k1", "k2"],
        "json": '{"lat":48.85,"lng":2.35}',
        "isOpen": True,
        "notOpen": False,
        "big": True,
        "doubled": [{"tag": "x"}, {"tag": "y"}, {"tag": "z"}],
        "kept": ["x", "z"],
        "found": "z",
        "joined": "x|y|z",
        "echoed": [1, 1],
        "typed": "array",
        "second": "y",
    }
    assert mapped('s: status->match(["nope", 1])', row) == {"s": None}
    assert mapped("f: tags->first", ANSWER["results"][1]) == {"f": None}


def test_a_whole_path_is_the_result_and_odd_shapes_pass_through_for_the_type_check():
    assert mapped("$.meta.total") == 2
    assert mapped("$.results->size") == 2
    assert mapped("id label", "a string") == "a string"  # not an object: left for the type check
    assert mapped("id", None) is None


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("id name: ", 9, "expected a path"),
        ("a->nosuch", 1, "unknown method ->nosuch"),
        ("a->slice(1, 2, 3)", 1, "->slice takes 0 to 2 argument(s), got 3"),
        ("a { b ", 6, 'expected "}"'),
        ("id id", 3, '"id" is selected twice'),
        ("$config.secret", 0, None),
        ("$nope.x", 0, "unknown variable $nope"),
        ("id $.a", 3, "needs an alias"),
        ("a: $('unclosed)", 5, "not closed"),
    ],
)
def test_parse_errors_say_where(text, where, words):
    if words is None:
        parse_selection(text)  # refused by validation, which knows why ($config: secrets)
        return
    with pytest.raises(SelectionError) as caught:
        parse_selection(text)
    assert caught.value.offset == where
    assert words in caught.value.message


def test_nesting_and_size_are_bounded():
    with pytest.raises(SelectionError, match="deeper"):
        parse_selection("a { " * (MAX_DEPTH + 1) + "}" * (MAX_DEPTH + 1))
    with pytest.raises(SelectionError, match="over the limit"):
        parse_selection("a " * 40_000)


def test_evaluation_is_bounded_by_its_budget():
    big = {"items": list(range(5000))}
    selection = parse_selection("all: items->map($->jsonStringify)")  # quadratic if unbounded
    with pytest.raises(MappingError):
        apply(selection, big, Scope({}, Budget(200_000)))
    assert apply(parse_selection("n: items->size"), big, Scope({}, Budget(200_000))) == {"n": 5000}
