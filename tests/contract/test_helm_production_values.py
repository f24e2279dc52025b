"""deploy/helm/mailstream/values-production.yaml, the operator guide's example, renders with the
chart's schema, validates strictly against every Kubernetes version the chart supports, and
sets only settings that exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from services.cli.settings_reference import settings
from tests.contract.test_helm_chart import (
    CHART,
    SERVICES,
    assert_validates_strictly,
    container,
    env_of,
    of_kind,
    render,
)

PRODUCTION = CHART / "values-production.yaml"


def production() -> dict[str, Any]:
    values: dict[str, Any] = yaml.safe_load(PRODUCTION.read_text())
    return values


def test_the_production_example_validates_strictly(tmp_path: Path) -> None:
    assert_validates_strictly(production(), tmp_path)


def test_the_production_example_wires_what_it_says() -> None:
    docs = render(production())
    deployments = of_kind(docs, "Deployment")
    assert sorted(deployments) == sorted(f"ms-mailstream-{s}" for s in SERVICES)
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    partitions = production()["kafka"]["partitions"]
    assert len(hpas) == len(SERVICES)
    assert all(h["spec"]["maxReplicas"] <= partitions for h in hpas.values())
    sender = env_of(docs, "sender")
    assert sender["MAILSTREAM_SMTP__HELO_NAME"] == "mta.mail.example.com"
    assert sender["MAILSTREAM_KAFKA__PARTITIONS"] == str(partitions)
    assert sender["MAILSTREAM_KAFKA__SASL_PASSWORD"] == {
        "secretKeyRef": {"name": "mailstream-kafka", "key": "password"}
    }
    assert "tenants.yaml" in docs[("ConfigMap", "ms-mailstream-tenants")]["data"]
    mounts = {
        m["mountPath"] for m in container(deployments["ms-mailstream-sender"])["volumeMounts"]
    }
    assert "/etc/mailstream/dkim" in mounts


def test_the_production_example_sets_only_real_settings() -> None:
    docs = render(production())
    names = set(docs[("ConfigMap", "ms-mailstream-config")]["data"])
    for deployment in of_kind(docs, "Deployment").values():
        names |= {e["name"] for e in container(deployment).get("env", [])}
    known = {s.name for s in settings()}
    assert sorted(names - known) == []
