"""One typed model for a manifest, wherever it comes from: hostile documents over the admin API
(wrong types, huge lists, deep nesting, unknown keys) get clear problems with stable codes, never
a 500; the operator's folder and the admin API read the same keys."""

from __future__ import annotations

import asyncio

import pytest
import yaml

from gateway.registry import ManifestError
from gateway.registry._manifest import MAX_PROBLEMS, ManifestDocument, parse_manifest, read_manifest_folder
from tests.registry.conftest import RunningGateway

BASE = {"name": "parking", "owner": "parkr", "url": "https://api.parkr.example/graphql"}


def _nested(depth: int) -> list:
    outer: list = []
    inner = outer
    for _ in range(depth):
        inner.append([])
        inner = inner[0]
    return outer


@pytest.fixture
async def running(tmp_path):
    gateway = await asyncio.to_thread(RunningGateway, f"sqlite:///{tmp_path / 'registry.db'}")
    yield gateway
    await gateway.close()


async def test_hostile_manifests_over_the_admin_api_are_refused_with_codes_never_a_500(running):
    hostile = {
        "wrong types": {**BASE, "timeout": "10", "headers": ["x"], "sdl": 3, "kind": {"a": 1}},
        "unknown keys": {**BASE, "colour": "red", "x" * 5000: 1},
        "deep nesting": {**BASE, "headers": {"x-a": _nested(900)}},
        "deep unknown key": {**BASE, "extra": _nested(900)},
        "huge lists": {**BASE, "secrets": {f"{index}bad": "v" for index in range(5000)}},
        "not a mapping": ["name", "parking"],
    }
    for what, body in hostile.items():
        response = await running.admin("POST", "/admin/connectors/validate", json=body)
        assert response.status_code == 422, (what, response.status_code, response.text[:300])
        errors = response.json()["errors"]
        assert errors and {error["code"] for error in errors} == {"INVALID_MANIFEST"}, (what, errors[:3])
        assert len(errors) <= MAX_PROBLEMS + 1, what
        assert "x" * 100 not in response.text, what  # a hostile key is not repeated back
    wrong = await running.admin("POST", "/admin/connectors/validate", json=hostile["wrong types"])
    assert sorted(error["message"] for error in wrong.json()["errors"]) == [
        "headers must map header names to strings",
        "kind must be one of subgraph, rest, python",
        "sdl must be a string",
        "timeout must be a number of seconds between 0 and 120",
    ]
    unknown = await running.admin("PUT", "/admin/connectors/parking", json=hostile["unknown keys"])
    assert [error["message"] for error in unknown.json()["errors"]] == [
        "unknown manifest key 'colour'",
        "unknown manifest key",
    ]


def test_the_folder_and_the_admin_api_read_the_same_model(tmp_path):
    folder = tmp_path / "parking"
    folder.mkdir()
    document = {
        **BASE,
        "timeout": 5,
        "headers": {"x-client": "citygate"},
        "erasure": {"url": "https://api.parkr.example/erasure", "method": "delete"},
    }
    (folder / "manifest.yaml").write_text(yaml.safe_dump(document))
    from_folder = read_manifest_folder(folder, allow_python=False)
    from_admin = parse_manifest(document)
    assert (
        from_folder.to_dict()
        == from_admin.to_dict()
        == {
            **BASE,
            "kind": "subgraph",
            "timeout": 5.0,
            "headers": {"x-client": "citygate"},
            "erasure": {"url": "https://api.parkr.example/erasure", "method": "DELETE"},
        }
    )
    assert ManifestDocument.model_validate(from_admin.to_dict()).timeout == 5.0  # what is stored reads back
    (folder / "manifest.yaml").write_text(yaml.safe_dump({**document, "timeout": None, "headers": None, "kind": None}))
    assert read_manifest_folder(folder, allow_python=False).to_dict()["timeout"] == 10.0  # `key:` is the key left out


def test_a_secret_value_is_never_in_a_problem():
    with pytest.raises(ManifestError) as refused:
        parse_manifest(
            {
                **BASE,
                "headers": {"authorization": "${secret:KEY}"},
                "secrets": {"KEY": "bad\nvalue-4f2a", "2nd": "other-9c1e"},
            }
        )
    problems = "\n".join(refused.value.problems)
    assert "value-4f2a" not in problems and "other-9c1e" not in problems
    assert "the value of secrets.KEY must be visible ASCII characters" in problems
    assert "secrets: secret names are letters, digits and underscores" in problems


def test_only_the_operator_declares_a_connector_retained(tmp_path):
    retained = {**BASE, "erasure": {"retained": "legal-obligation"}}
    with pytest.raises(ManifestError) as refused:
        parse_manifest(retained)
    assert refused.value.problems == [
        "erasure.retained is declared by the operator (its connectors folder): a partner names an erasure endpoint"
    ]
    # a row read back from the store (which only the admin API writes) is no operator's word either
    with pytest.raises(ManifestError) as refused:
        parse_manifest(retained, provenance="store")
    assert refused.value.problems == [
        "erasure.retained is declared by the operator (its connectors folder): a partner names an erasure endpoint"
    ]
    (tmp_path / "manifest.yaml").write_text(yaml.safe_dump(retained))
    manifest = read_manifest_folder(tmp_path, allow_python=False)
    assert manifest.erasure is not None and (manifest.erasure.url, manifest.erasure.retained) == (
        None,
        "legal-obligation",
    )
    for erasure in ({"retained": "convenience"}, {"retained": "archiving", "url": "https://api.parkr.example/e"}, {}):
        (tmp_path / "manifest.yaml").write_text(yaml.safe_dump({**BASE, "erasure": erasure}))
        with pytest.raises(ManifestError):
            read_manifest_folder(tmp_path, allow_python=False)
