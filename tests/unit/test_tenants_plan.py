"""`tenants apply`: what it adds, changes and leaves alone, and removes only with --prune."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.cli.tenants import TenantsFile, plan, read_tenants_file
from services.common.errors import ConfigError
from services.common.tenants import Tenant, TenantSpec, stored_spec


def spec(*tenants: dict[str, object]) -> TenantsFile:
    return TenantsFile.model_validate({"tenants": list(tenants)})


def test_added_changed_unchanged_in_file_order_then_those_the_file_lacks() -> None:
    old = spec(
        {"id": "kept", "sender_domains": [{"domain": "kept.example"}]},
        {"id": "edited", "sender_domains": [{"domain": "edited.example"}]},
        {"id": "stray", "sender_domains": [{"domain": "stray.example"}]},
    )
    stored = {t.id: t.stored_row() for t in old.tenants}
    new = spec(
        {"id": "edited", "sender_domains": [{"domain": "edited.example"}], "limits": {"x": 1}},
        {"id": "fresh", "sender_domains": [{"domain": "fresh.example"}]},
        {"id": "kept", "sender_domains": [{"domain": "kept.example"}]},
    )
    assert plan(stored, new, prune=False) == [
        ("changed", "edited"),
        ("added", "fresh"),
        ("unchanged", "kept"),
        ("unchanged", "stray"),
    ]
    assert plan(stored, new, prune=True)[-1] == ("removed", "stray")
    assert plan({}, spec(), prune=True) == []


def test_a_changed_sender_domain_is_a_change() -> None:
    before = spec({"id": "a", "sender_domains": [{"domain": "a.example"}]})
    after = spec({"id": "a", "sender_domains": [{"domain": "b.example"}]})
    stored = {"a": before.tenants[0].stored_row()}
    assert plan(stored, after, prune=False) == [("changed", "a")]


def test_a_tenant_twice_in_the_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text("tenants:\n  - {id: a, sender_domains: []}\n  - {id: a, sender_domains: []}\n")
    with pytest.raises(ConfigError, match=r"tenants appear twice: a$"):
        read_tenants_file(path)


def test_a_malformed_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "tenants.yaml"
    path.write_text("tenants:\n  - {id: BAD, sender_domains: [{domain: x.example, colour: 1}]}\n")
    with pytest.raises(ConfigError) as caught:
        read_tenants_file(path)
    shown = str(caught.value)
    assert "\n" not in shown and shown.startswith(f"{path}: tenants[0].id: String should match")
    assert "tenants[0].sender_domains[0].colour: Extra inputs are not permitted" in shown


def test_a_stored_spec_with_fields_of_a_newer_version_still_reads() -> None:
    """During a rolling upgrade a newer CLI may store fields older services do not know: they
    are left out when read back, while a tenants file naming them is still refused."""
    stored = {
        "id": "a",
        "sender_domains": [{"domain": "a.example", "dkim": [], "future": 1}],
        "routing": {"default": {"egress_pool": "p", "weight": 2}},
        "added_later": True,
    }
    spec = stored_spec(json.dumps(stored))
    assert spec.sender_domains[0].domain == "a.example"
    assert spec.routing.default is not None and spec.routing.default.egress_pool == "p"
    assert Tenant.of(spec).sender_domains == frozenset({"a.example"})
    with pytest.raises(ValidationError, match="added_later"):
        TenantSpec.model_validate(stored)
