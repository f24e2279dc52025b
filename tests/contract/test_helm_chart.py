"""The Helm chart, rendered and checked offline: helm-python-sdk renders and lints it (with its
values.schema.json), kubernetes-validate --strict checks every built-in manifest against several
Kubernetes versions, and the defaults, overrides and wiring are asserted here."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python
import pytest
import yaml

from services.common.config import CommonSettings
from services.common.kafka.topics import Topics
from services.common.priority import PRIORITIES

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "mailstream"
KUBE_VERSIONS = ("1.27.0", "1.30.0", "1.33.0", "1.37.0")
SERVICES = ("ingest", "router", "sender", "event-publisher")

# Every optional part switched on, and the secrets and TLS a production install would use.
EVERYTHING: dict[str, Any] = {
    "kafka": {
        "topicPrefix": "prod.",
        "securityProtocol": "SASL_SSL",
        "saslMechanism": "SCRAM-SHA-512",
        "saslUsername": "mailstream",
        "saslPasswordSecret": {"name": "kafka-creds", "key": "password"},
        "tlsSecret": {"name": "kafka-ca", "clientCertificate": True},
    },
    "cassandra": {
        "username": "mailstream",
        "passwordSecret": {"name": "cassandra-creds", "key": "password"},
        "tlsSecret": {"name": "cassandra-ca"},
        "localDc": "dc1",
    },
    "dkim": {"existingSecret": "dkim-keys"},
    "dns": {"nameservers": "10.0.0.10,10.0.0.11", "probeName": "example.com.", "probeType": "SOA"},
    "tenants": [
        {
            "id": "acme",
            "sender_domains": [
                {
                    "domain": "acme.example",
                    "dkim": [
                        {
                            "selector": "s1",
                            "algorithm": "rsa-sha256",
                            "private_key_file": "/etc/mailstream/dkim/acme.pem",
                        }
                    ],
                }
            ],
        }
    ],
    "imagePullSecrets": [{"name": "regcred"}],
    "serviceAccountName": "mailstream",
    "metrics": {"serviceMonitor": {"enabled": True}},
    "grafana": {"dashboards": {"enabled": True}},
    "defaults": {"autoscaling": {"enabled": True}},
    "services": {"sender": {"autoscaling": {"enabled": False}, "keda": {"enabled": True}}},
}


def render(values: dict[str, Any] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
    """The rendered manifests by (kind, name)."""
    out = helm_python.Chart.load(CHART).render(values or {}, name="ms", namespace="mail")
    docs: dict[tuple[str, str], dict[str, Any]] = {}
    for path, text in out.items():
        if not path.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                key = (doc["kind"], doc["metadata"]["name"])
                assert key not in docs, f"{key} rendered twice"
                docs[key] = doc
    return docs


def of_kind(docs: dict[tuple[str, str], dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {name: doc for (k, name), doc in docs.items() if k == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(docs: dict[tuple[str, str], dict[str, Any]], component: str) -> dict[str, Any]:
    """A service container's environment: the shared ConfigMap, then its own env entries."""
    env = dict(docs[("ConfigMap", "ms-mailstream-config")]["data"])
    for item in container(docs[("Deployment", f"ms-mailstream-{component}")]).get("env", []):
        env[item["name"]] = item.get("value", item.get("valueFrom"))
    return env


def test_lint_passes_for_every_kubernetes_version() -> None:
    for version in KUBE_VERSIONS:
        report = helm_python.lint(CHART, kube_version=version, strict=True)
        assert report["errors"] == [], (version, report)
        # Severity 1 is INFO ("icon is recommended"); nothing worse may appear.
        assert all(m["severity"] <= 1 for m in report["messages"]), (version, report)


@pytest.mark.parametrize("values", [{}, EVERYTHING], ids=["defaults", "everything"])
def test_every_manifest_validates_strictly(values: dict[str, Any], tmp_path: Path) -> None:
    assert_validates_strictly(values, tmp_path)


def assert_validates_strictly(values: dict[str, Any], tmp_path: Path) -> None:
    """The chart rendered with values: every built-in manifest valid, with no warning, for
    every Kubernetes version in KUBE_VERSIONS."""
    docs = render(values)
    builtin = [d for d in docs.values() if d["apiVersion"].split("/")[0] not in _CRD_GROUPS]
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(yaml.safe_dump_all(builtin))
    for version in KUBE_VERSIONS:
        done = _validate(manifest, version)
        assert done.returncode == 0, (version, done.stdout, done.stderr)
        assert "WARN" not in done.stdout + done.stderr, (version, done.stdout, done.stderr)


def test_the_validator_rejects_what_kubernetes_would(tmp_path: Path) -> None:
    """kubernetes-validate is not a no-op here: one unknown field fails it."""
    deployment = render()[("Deployment", "ms-mailstream-sender")]
    container(deployment)["livenesProbe"] = {"httpGet": {"path": "/livez", "port": "http"}}
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(yaml.safe_dump(deployment))
    done = _validate(manifest, "1.30.0")
    assert done.returncode != 0 and "livenesProbe" in done.stdout + done.stderr


_CRD_GROUPS = {"keda.sh", "monitoring.coreos.com"}


def _validate(manifest: Path, version: str) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name("kubernetes-validate")
    return subprocess.run(
        [str(tool), "--strict", "-k", version, str(manifest)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_defaults_one_hardened_deployment_per_service() -> None:
    docs = render()
    deployments = of_kind(docs, "Deployment")
    assert sorted(deployments) == sorted(f"ms-mailstream-{s}" for s in SERVICES)
    for name, deployment in deployments.items():
        component = name.removeprefix("ms-mailstream-")
        spec = deployment["spec"]["template"]["spec"]
        main = container(deployment)
        assert deployment["spec"]["replicas"] == 2
        module = component.replace("-", "_")
        assert main["command"] == ["python", "-m", f"services.{module}"]
        assert main["image"] == "mailstream:0.1.0"
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert main["securityContext"]["readOnlyRootFilesystem"] is True
        assert main["securityContext"]["allowPrivilegeEscalation"] is False
        assert main["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert spec["automountServiceAccountToken"] is False
        # The read-only root leaves /tmp writable, and nothing else.
        assert [m["mountPath"] for m in main["volumeMounts"]] == ["/tmp"]
        assert main["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert main["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert main["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert main["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
        assert main["resources"]["requests"] == {"cpu": "250m", "memory": "192Mi"}
        # Longer than the drain on SIGTERM (kafka.drain_timeout_s); the sender's also lets a
        # send under way finish (kafka.started_send_grace_s).
        kafka = CommonSettings.model_fields["kafka"].default_factory()  # type: ignore[misc]
        drain = kafka.drain_timeout_s + (kafka.started_send_grace_s if module == "sender" else 0)
        assert spec["terminationGracePeriodSeconds"] > drain
        assert "checksum/config" in deployment["spec"]["template"]["metadata"]["annotations"]
        assert main["envFrom"] == [{"configMapRef": {"name": "ms-mailstream-config"}}]
    assert sorted(of_kind(docs, "PodDisruptionBudget")) == sorted(deployments)
    assert sorted(of_kind(docs, "Service")) == sorted(deployments)
    for kind in ("HorizontalPodAutoscaler", "ScaledObject", "ServiceMonitor"):
        assert of_kind(docs, kind) == {}, kind
    assert ("Job", "ms-mailstream-provisioning") in docs
    assert ("ConfigMap", "ms-mailstream-tenants") not in docs  # no tenants given


def test_one_service_override_changes_only_that_deployment() -> None:
    before = render()
    after = render(
        {
            "services": {
                "router": {
                    "replicas": 5,
                    "resources": {"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}},
                }
            }
        }
    )
    assert before.keys() == after.keys()
    changed = sorted(key for key in before if before[key] != after[key])
    assert changed == [("Deployment", "ms-mailstream-router")]
    router = after[("Deployment", "ms-mailstream-router")]
    assert router["spec"]["replicas"] == 5
    # Maps merge key by key: the request for memory stays from the defaults.
    assert container(router)["resources"] == {
        "requests": {"cpu": "1", "memory": "192Mi"},
        "limits": {"memory": "1Gi"},
    }


def test_an_override_can_switch_off_what_the_defaults_switch_on() -> None:
    docs = render({"services": {"sender": {"podDisruptionBudget": {"enabled": False}}}})
    assert "ms-mailstream-sender" not in of_kind(docs, "PodDisruptionBudget")
    assert "ms-mailstream-ingest" in of_kind(docs, "PodDisruptionBudget")
    docs = render({"services": {"router": {"enabled": False}}})
    assert ("Deployment", "ms-mailstream-router") not in docs
    assert ("Service", "ms-mailstream-router") not in docs


def test_shared_settings_reach_every_service_and_service_env_wins() -> None:
    docs = render(
        {
            "kafka": {"bootstrapServers": "kafka-0.kafka:9092", "partitions": 24},
            "env": {"MAILSTREAM_MAX_AGE_CRITICAL_S": "600", "MAILSTREAM_LOG_FORMAT": "console"},
            "services": {"sender": {"env": {"MAILSTREAM_MAX_AGE_CRITICAL_S": "300"}}},
        }
    )
    for component in SERVICES:
        env = env_of(docs, component)
        assert env["MAILSTREAM_KAFKA__BOOTSTRAP_SERVERS"] == "kafka-0.kafka:9092"
        assert env["MAILSTREAM_KAFKA__PARTITIONS"] == "24"
        assert env["MAILSTREAM_HEALTH__PORT"] == "8080"
        assert env["MAILSTREAM_KAFKA__CLIENT_ID"] == {"fieldRef": {"fieldPath": "metadata.name"}}
        want = "300" if component == "sender" else "600"
        assert env["MAILSTREAM_MAX_AGE_CRITICAL_S"] == want
    # The service's own entries come after envFrom, so Kubernetes lets them win.
    assert env_of(docs, "sender")["MAILSTREAM_SMTP__HELO_NAME"] == "mailstream.localhost"


def test_every_configured_variable_is_a_real_setting() -> None:
    """A misspelt MAILSTREAM_* name would be ignored silently by the services."""
    docs = render(EVERYTHING)
    names = set(docs[("ConfigMap", "ms-mailstream-config")]["data"])
    names |= set(docs[("ConfigMap", "ms-mailstream-provisioning")]["data"])
    for deployment in of_kind(docs, "Deployment").values():
        names |= {e["name"] for e in container(deployment).get("env", [])}
    settings = _setting_names()
    unknown = sorted(n for n in names if n not in settings)
    assert unknown == [], unknown


def test_the_resolver_and_its_probe_are_set_from_values(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.router.config import RouterSettings

    data = render(EVERYTHING)[("ConfigMap", "ms-mailstream-config")]["data"]
    for name, value in data.items():
        monkeypatch.setenv(name, value)
    dns = RouterSettings().dns
    assert (dns.nameservers, dns.port, dns.timeout_s) == ("10.0.0.10,10.0.0.11", 53, 5.0)
    assert (dns.probe_name, dns.probe_type, dns.probe_timeout_s) == ("example.com.", "SOA", 2.0)
    # By default the pod's own resolver: no nameservers variable at all.
    assert (
        "MAILSTREAM_DNS__NAMESERVERS" not in render()[("ConfigMap", "ms-mailstream-config")]["data"]
    )


def _setting_names() -> set[str]:
    from services.event_publisher.config import EventPublisherSettings
    from services.ingest.config import IngestSettings
    from services.router.config import RouterSettings
    from services.sender.config import SenderSettings

    names: set[str] = set()
    for model in (IngestSettings, RouterSettings, SenderSettings, EventPublisherSettings):
        for field, info in model.model_fields.items():
            nested = getattr(info.annotation, "model_fields", None)
            if nested:
                names |= {f"MAILSTREAM_{field}__{sub}".upper() for sub in nested}
            else:
                names.add(f"MAILSTREAM_{field}".upper())
    return names


def test_secrets_tls_and_dkim_are_mounted_never_inlined() -> None:
    docs = render(EVERYTHING)
    env = env_of(docs, "sender")
    assert env["MAILSTREAM_KAFKA__SASL_PASSWORD"] == {
        "secretKeyRef": {"name": "kafka-creds", "key": "password"}
    }
    assert env["MAILSTREAM_CASSANDRA__PASSWORD"] == {
        "secretKeyRef": {"name": "cassandra-creds", "key": "password"}
    }
    assert env["MAILSTREAM_KAFKA__SSL_CA_LOCATION"] == "/etc/mailstream/kafka-tls/ca.crt"
    assert env["MAILSTREAM_KAFKA__SSL_KEY_LOCATION"] == "/etc/mailstream/kafka-tls/tls.key"
    assert env["MAILSTREAM_CASSANDRA__SSL_CA_FILE"] == "/etc/mailstream/cassandra-tls/ca.crt"
    assert "MAILSTREAM_CASSANDRA__SSL_KEY_FILE" not in env  # no client certificate asked for
    text = json.dumps(list(docs.values()))
    assert "password" not in docs[("ConfigMap", "ms-mailstream-config")]["data"].values()
    assert not re.search(r"BEGIN [A-Z ]*PRIVATE KEY", text)

    def mounts(component: str) -> dict[str, str]:
        main = container(docs[("Deployment", f"ms-mailstream-{component}")])
        return {m["name"]: m["mountPath"] for m in main["volumeMounts"]}

    assert mounts("sender")["dkim-keys"] == "/etc/mailstream/dkim"
    for component in ("ingest", "router", "event-publisher"):
        assert "dkim-keys" not in mounts(component)  # only the signer holds the keys
        assert mounts(component)["kafka-tls"] == "/etc/mailstream/kafka-tls"
    volumes = docs[("Deployment", "ms-mailstream-sender")]["spec"]["template"]["spec"]["volumes"]
    dkim = next(v for v in volumes if v["name"] == "dkim-keys")
    assert dkim["secret"]["secretName"] == "dkim-keys"
    assert dkim["secret"]["defaultMode"] == 0o440


def test_provisioning_job_runs_before_install_and_upgrade() -> None:
    docs = render(EVERYTHING)
    job = docs[("Job", "ms-mailstream-provisioning")]
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][-1]
    assert script.split(" && ") == [
        "mailstream topics create",
        "mailstream db migrate",
        "mailstream tenants apply -f /etc/mailstream/tenants/tenants.yaml",
    ]
    tenants = docs[("ConfigMap", "ms-mailstream-tenants")]
    assert tenants["metadata"]["annotations"]["helm.sh/hook-weight"] == "-10"
    assert yaml.safe_load(tenants["data"]["tenants.yaml"]) == {"tenants": EVERYTHING["tenants"]}
    # The hook's settings equal the services' (its ConfigMap exists before theirs does).
    assert (
        docs[("ConfigMap", "ms-mailstream-provisioning")]["data"]
        == docs[("ConfigMap", "ms-mailstream-config")]["data"]
    )
    main = job["spec"]["template"]["spec"]["containers"][0]
    assert {m["name"] for m in main["volumeMounts"]} >= {"dkim-keys", "tenants", "tmp"}
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert of_kind(render({"provisioning": {"enabled": False}}), "Job") == {}


def test_autoscaling_hpa_or_keda_on_the_lanes_lag() -> None:
    docs = render(EVERYTHING)
    hpas = of_kind(docs, "HorizontalPodAutoscaler")
    assert sorted(hpas) == ["ms-mailstream-event-publisher", "ms-mailstream-ingest",
                            "ms-mailstream-router"]  # fmt: skip
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": name,
        }
        assert "replicas" not in docs[("Deployment", name)]["spec"]  # the autoscaler owns it
    scaled = of_kind(docs, "ScaledObject")
    assert list(scaled) == ["ms-mailstream-sender"]
    spec = scaled["ms-mailstream-sender"]["spec"]
    assert spec["scaleTargetRef"] == {"name": "ms-mailstream-sender"}
    assert "replicas" not in docs[("Deployment", "ms-mailstream-sender")]["spec"]
    topics = Topics("prod.")
    assert [(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in spec["triggers"]] == [
        (f"prod.mailstream-sender-{p.slug}", topics.deliver(p)) for p in PRIORITIES
    ]
    assert all(t["type"] == "kafka" and t["metadata"]["lagThreshold"] == "500"
               for t in spec["triggers"])  # fmt: skip
    with pytest.raises(helm_python.HelmError, match="both enabled"):
        render({"services": {"ingest": {"autoscaling": {"enabled": True},
                                        "keda": {"enabled": True}}}})  # fmt: skip


def test_lanes_name_the_groups_and_topics_the_services_consume() -> None:
    """The KEDA triggers' groups and topics are the ones the code subscribes to."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    topics = Topics("")
    expected = {
        "ingest": [(f"mailstream-ingest-{p.slug}", topics.requested(p)) for p in PRIORITIES],
        "router": [(f"mailstream-router-{p.slug}", topics.route(p)) for p in PRIORITIES],
        "sender": [(f"mailstream-sender-{p.slug}", topics.deliver(p)) for p in PRIORITIES],
        "event-publisher": [(f"mailstream-events-{p.slug}", topics.status(p)) for p in PRIORITIES],
    }
    for component, lanes in expected.items():
        service = values["services"][component]
        assert [(lane["group"], lane["topic"]) for lane in service["lanes"]] == lanes
        wiring = (REPO / "services" / service["module"].split(".")[1] / "wiring.py").read_text()
        for group, _topic in lanes:
            stem = group.rsplit("-", 1)[0]
            assert f'"{stem}-{{p.slug}}"' in wiring or f"prefix}}{stem}" in wiring, (
                component,
                group,
            )


def test_values_schema_refuses_bad_values() -> None:
    for bad, where in [
        ({"defaults": {"replicas": "three"}}, "/defaults/replicas"),
        ({"services": {"sender": {"replica": 2}}}, "replica"),
        ({"kafka": {"securityProtocol": "TLS"}}, "/kafka/securityProtocol"),
        ({"env": {"MAILSTREAM_MAX_AGE_CRITICAL_S": 600}}, "/env/MAILSTREAM_MAX_AGE_CRITICAL_S"),
        ({"env": {"KAFKA_BROKERS": "x"}}, "KAFKA_BROKERS"),
        ({"logLevel": "verbose"}, "/logLevel"),
    ]:
        with pytest.raises(helm_python.HelmError, match=re.escape(where)):
            render(bad)


def test_servicemonitor_and_dashboard() -> None:
    docs = render(EVERYTHING)
    monitor = docs[("ServiceMonitor", "ms-mailstream")]
    assert monitor["spec"]["endpoints"] == [
        {"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}
    ]
    selector = monitor["spec"]["selector"]["matchLabels"]
    for service in of_kind(docs, "Service").values():
        assert selector.items() <= service["metadata"]["labels"].items()
        assert service["spec"]["ports"][0]["name"] == "http"
    board = docs[("ConfigMap", "ms-mailstream-dashboards")]
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(board["data"]["mailstream.json"])["uid"] == "mailstream-overview"


def test_dashboard_queries_only_metrics_the_services_export() -> None:
    from prometheus_client import REGISTRY

    import services.common.metrics  # noqa: F401  (registers every metric)

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum")}
    exported = {
        metric.name + suffix
        for metric in REGISTRY.collect()
        for suffix in suffixes.get(metric.type, ("",))
    }
    board = json.loads((CHART / "dashboards" / "mailstream.json").read_text())
    used: set[str] = set()
    for panel in board["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"\bmailstream_[a-z_]+", target["expr"]))
    assert used, "no queries found"
    missing = sorted(used - exported)
    assert missing == [], missing
    assert len(board["panels"]) >= 10


def test_notes_warn_about_replicas_beyond_partitions() -> None:
    out = helm_python.Chart.load(CHART).render(
        {"kafka": {"partitions": 3}, "services": {"sender": {"replicas": 5}}},
        name="ms",
        namespace="mail",
    )
    notes = out["mailstream/templates/NOTES.txt"]
    assert "ms-mailstream-sender (5 replicas)" in notes
    assert "up to 5 replicas but 3 partitions" in notes
    assert notes.count("WARNING") == 1
