"""The documentation stands on its own: it points at nothing outside the repository, and every
public schema and field says what it means."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastavro.schema import load_schema

from services.common.avro.registry import schema_fingerprint

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"
PUBLIC = sorted(SCHEMAS.glob("mailstream.v1.*.avsc"))


def _documentation() -> list[Path]:
    found = [ROOT / "README.md", SCHEMAS / "README.md"]
    found += sorted(p for p in (ROOT / "docs").rglob("*") if p.is_file())
    found += sorted((ROOT / "examples").glob("*/README.md"))
    return [p for p in found if p.is_file()]


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT))


@pytest.mark.parametrize("path", _documentation(), ids=_name)
def test_documentation_points_at_nothing_outside_the_repository(path: Path) -> None:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    outside = [f"{_name(path)}:{n}" for n, line in enumerate(lines, 1) if "../shared" in line]
    assert outside == [], "link to a file in the repository instead"


def test_the_documentation_is_found() -> None:
    names = {_name(p) for p in _documentation()}
    assert {"README.md", "schemas/README.md", "docs/contract.md", "docs/runbook.md"} <= names


def _undocumented(schema: dict[str, Any]) -> list[str]:
    missing = [] if str(schema.get("doc", "")).strip() else ["(the type)"]
    for field in schema.get("fields", []):
        if not str(field.get("doc", "")).strip():
            missing.append(field["name"])
    return missing


@pytest.mark.parametrize("path", PUBLIC, ids=lambda p: p.stem)
def test_every_public_type_and_field_has_a_doc(path: Path) -> None:
    assert _undocumented(json.loads(path.read_text())) == []


def _without_docs(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_docs(v) for k, v in node.items() if k != "doc"}
    if isinstance(node, list):
        return [_without_docs(v) for v in node]
    return node


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.avsc")), ids=lambda p: p.stem)
def test_docs_leave_the_fingerprint_unchanged(path: Path) -> None:
    """The Parsing Canonical Form drops doc, so documenting a schema is not a new version."""
    documented = load_schema(str(path), _write_hint=False)
    plain = _without_docs(documented)
    assert plain != documented or "doc" not in path.read_text()
    assert schema_fingerprint(plain) == schema_fingerprint(documented)


@pytest.mark.parametrize("record", ["EmailRequested", "EmailEvent"])
def test_the_contract_names_the_released_fingerprints(record: str) -> None:
    released = SCHEMAS / "released" / "v1" / f"mailstream.v1.{record}.avsc"
    fingerprint = schema_fingerprint(load_schema(str(released), _write_hint=False))
    row = f"| `mailstream.v1.{record}` | `{fingerprint.hex(' ')}` |"
    assert row in (ROOT / "docs" / "contract.md").read_text()


@pytest.mark.parametrize("path", [*_documentation(), ROOT / "CHANGELOG.md"], ids=_name)
def test_every_relative_link_names_a_file_that_exists(path: Path) -> None:
    """A reader who follows a link in the docs finds the page (or folder) it names."""
    import re

    text = path.read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    relative = [t for t in targets if "://" not in t and not t.startswith("mailto:")]
    broken = [t for t in relative if not (path.parent / t).exists()]
    assert broken == [], f"{_name(path)} links to files that do not exist: {broken}"
