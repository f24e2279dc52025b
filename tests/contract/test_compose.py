"""docker-compose.yml and the Dockerfile agree with the code: modules, settings names, ports."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel
from pydantic_settings import BaseSettings

from services.cli.settings import CliSettings
from services.cli.tenants import read_tenants_file
from services.common.config import CommonSettings
from services.event_publisher.config import EventPublisherSettings
from services.ingest.config import IngestSettings
from services.router.config import RouterSettings
from services.sender.config import SenderSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"

# Deploy name (compose service) -> Python package under services/.
SERVICES = {
    "ingest": "ingest",
    "router": "router",
    "sender": "sender",
    "event-publisher": "event_publisher",
}
# Every container of the app image -> the settings classes that read its environment.
SETTINGS: dict[str, tuple[type[BaseSettings], ...]] = {
    "ingest": (IngestSettings,),
    "router": (RouterSettings,),
    "sender": (SenderSettings,),
    "event-publisher": (EventPublisherSettings,),
    "init": (CommonSettings, CliSettings),
    "inbox": (CliSettings,),
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


@pytest.fixture(scope="module")
def compose_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def is_app(service: dict[str, Any]) -> bool:
    """Built from the repository's Dockerfile, i.e. runs mailstream code."""
    build = service.get("build")
    if not isinstance(build, dict):
        return False
    return build.get("context") == "." and build.get("dockerfile", "Dockerfile") == "Dockerfile"


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    assert command is not None, "no command"
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def option(args: list[str], name: str) -> str:
    assert name in args, f"{name} missing from {args}"
    return args[args.index(name) + 1]


def field_path_error(model: type[BaseSettings], var: str) -> str | None:
    """Why `var` does not name a leaf field of `model` (None: it does), per its env config."""
    prefix = model.model_config.get("env_prefix") or ""
    delimiter = model.model_config.get("env_nested_delimiter")
    if not var.upper().startswith(prefix.upper()):
        return f"{var} lacks the prefix {prefix!r}"
    rest = var[len(prefix) :].lower()
    parts = rest.split(delimiter) if delimiter else [rest]
    current: type[BaseModel] = model
    for depth, part in enumerate(parts):
        path = ".".join(parts[: depth + 1])
        field = current.model_fields.get(part)
        if field is None:
            return f"{var}: {model.__name__} has no field {path}"
        annotation = field.annotation
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        if depth < len(parts) - 1:
            if not nested:
                return f"{var}: {model.__name__}.{path} is not a nested model"
            assert isinstance(annotation, type)
            current = annotation
        elif nested:
            return f"{var}: {model.__name__}.{path} is a whole model, not a field"
    return None


def app_env_cases(
    compose_services: dict[str, dict[str, Any]],
) -> list[tuple[str, str, type[BaseSettings]]]:
    return [
        (name, var, model)
        for name, service in compose_services.items()
        if is_app(service)
        for var in environment(service)
        if var.startswith("MAILSTREAM_")
        for model in SETTINGS[name]
    ]


# ------------------------------------------------------------------------- services


def test_the_four_services_run_their_module(compose_services: dict[str, dict[str, Any]]) -> None:
    for deploy_name, package in SERVICES.items():
        assert deploy_name in compose_services, f"docker-compose.yml has no service {deploy_name}"
        service = compose_services[deploy_name]
        assert is_app(service), f"{deploy_name} is not built from the repository's Dockerfile"
        assert argv(service) == ["python", "-m", f"services.{package}"], deploy_name
        assert (REPO / "services" / package / "__main__.py").is_file(), package


def test_settings_table_matches_each_main() -> None:
    """SETTINGS names the class each __main__ really loads, under the deploy name it logs."""
    for deploy_name, package in SERVICES.items():
        source = (REPO / "services" / package / "__main__.py").read_text()
        match = re.search(r'service_main\(\s*"([\w-]+)",\s*(\w+)', source)
        assert match, f"services/{package}/__main__.py does not call service_main(name, Settings)"
        assert match.group(1) == deploy_name
        assert match.group(2) == SETTINGS[deploy_name][0].__name__


def test_every_app_container_has_a_settings_class(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    unknown = {name for name, service in compose_services.items() if is_app(service)} - set(
        SETTINGS
    )
    assert not unknown, f"add {sorted(unknown)} to SETTINGS in {Path(__file__).name}"


# ------------------------------------------------------------------------- settings


def test_every_mailstream_variable_is_a_settings_field(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    cases = app_env_cases(compose_services)
    assert cases, "no MAILSTREAM_* variable found on any app container"
    errors = [
        f"{name}: {error}"
        for name, var, model in cases
        if (error := field_path_error(model, var)) is not None
    ]
    assert not errors, "\n".join(errors)


def test_every_app_container_environment_loads(
    compose_services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The values parse, and each lands on the field its name says (not silently ignored)."""
    for name, service in compose_services.items():
        if not is_app(service):
            continue
        env = {k: v for k, v in environment(service).items() if k.startswith("MAILSTREAM_")}
        for model in SETTINGS[name]:
            with monkeypatch.context() as patch:
                # A developer's shell may carry deploy/local/dev.env; only the file counts.
                for var in [v for v in os.environ if v.startswith("MAILSTREAM_")]:
                    patch.delenv(var)
                for var, value in env.items():
                    patch.setenv(var, value)
                settings = model()
            for var, value in env.items():
                actual: Any = settings
                for part in var.removeprefix("MAILSTREAM_").lower().split("__"):
                    actual = getattr(actual, part)
                if isinstance(actual, str | int | float | Path):
                    assert actual == type(actual)(value), f"{name}: {var}={value} gave {actual!r}"


def test_the_field_check_catches_a_renamed_field() -> None:
    assert field_path_error(SenderSettings, "MAILSTREAM_SMTP__PORT") is None
    assert field_path_error(SenderSettings, "MAILSTREAM_SMTP__PORTS") is not None
    assert field_path_error(CommonSettings, "MAILSTREAM_SMTP__PORT") is not None
    assert field_path_error(CommonSettings, "MAILSTREAM_KAFKA") is not None
    assert field_path_error(CommonSettings, "MAILSTREAM_LOG_LEVEL__X") is not None


# ------------------------------------------------------------------------- wiring


def test_kafka_bootstrap_is_an_advertised_listener(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    kafka = compose_services["kafka"]
    kafka_env = environment(kafka)
    names = {"kafka", kafka.get("hostname", "kafka")}
    advertised = {
        name: (host, int(port))
        for name, host, port in re.findall(
            r"(\w+)://([^:,]*):(\d+)", kafka_env["KAFKA_ADVERTISED_LISTENERS"]
        )
    }
    listening = {
        name: int(port)
        for name, port in re.findall(r"(\w+)://[^:,]*:(\d+)", kafka_env["KAFKA_LISTENERS"])
    }
    for name, service in compose_services.items():
        value = environment(service).get("MAILSTREAM_KAFKA__BOOTSTRAP_SERVERS")
        if not is_app(service) or value is None:
            continue
        for server in value.split(","):
            host, port = server.strip().rsplit(":", 1)
            assert host in names, f"{name}: {server} is not the kafka container"
            matches = [ln for ln, hp in advertised.items() if hp == (host, int(port))]
            assert matches, f"{name}: {server} is not in {kafka_env['KAFKA_ADVERTISED_LISTENERS']}"
            assert listening.get(matches[0]) == int(port), f"kafka does not listen on {server}"


def container_ports(service: dict[str, Any]) -> set[int]:
    ports = {int(str(p).split("/")[0]) for p in service.get("expose", [])}
    for mapping in service.get("ports", []):
        target = mapping["target"] if isinstance(mapping, dict) else str(mapping).split(":")[-1]
        ports.add(int(str(target).split("/")[0]))
    return ports


def test_cassandra_host_and_port_match(compose_services: dict[str, dict[str, Any]]) -> None:
    cassandra_ports = container_ports(compose_services["cassandra"])
    checked = 0
    for name, service in compose_services.items():
        env = environment(service)
        if not is_app(service) or "MAILSTREAM_CASSANDRA__HOSTS" not in env:
            continue
        checked += 1
        hosts = {h.strip() for h in env["MAILSTREAM_CASSANDRA__HOSTS"].split(",")}
        assert hosts == {"cassandra"}, name
        port = int(env.get("MAILSTREAM_CASSANDRA__PORT", CommonSettings().cassandra.port))
        assert port in cassandra_ports, f"{name}: Cassandra port {port} not in {cassandra_ports}"
    assert checked >= len(SERVICES) + 1  # the services and init


def test_sender_delivers_to_the_inbox_port(compose_services: dict[str, dict[str, Any]]) -> None:
    inbox = argv(compose_services["inbox"])
    assert inbox[:3] == ["mailstream", "inbox", "serve"]
    assert option(inbox, "--host") == "0.0.0.0", "the inbox must listen beyond loopback"
    smtp_port = environment(compose_services["sender"]).get("MAILSTREAM_SMTP__PORT")
    assert smtp_port is not None, "the sender would deliver on port 25, the inbox is elsewhere"
    assert int(smtp_port) == int(option(inbox, "--port"))


def test_router_asks_the_dns_container_for_the_inbox_mx(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    dns = compose_services["dns"]
    router_env = environment(compose_services["router"])
    address = dns["networks"]["mailstream"]["ipv4_address"]
    assert router_env["MAILSTREAM_DNS__NAMESERVERS"] == address
    assert int(router_env.get("MAILSTREAM_DNS__PORT", "53")) == 53  # dnsmasq's default
    mounts = [str(v).split(":") for v in dns.get("volumes", [])]
    conf = next(REPO / src for src, _dst, *_ in mounts if src.endswith("dnsmasq.conf"))
    records = re.findall(r"^mx-host=([^,\s]+),([^,\s]+)", conf.read_text(), re.MULTILINE)
    assert ("inbox.mailstream.test", "inbox") in records
    assert "inbox" in compose_services


def test_healthchecks_gate_startup(compose_services: dict[str, dict[str, Any]]) -> None:
    for name in ("kafka", "cassandra"):
        assert compose_services[name].get("healthcheck", {}).get("test"), (
            f"{name} has no healthcheck"
        )
    init_deps = compose_services["init"]["depends_on"]
    for name in ("kafka", "cassandra"):
        assert init_deps[name]["condition"] == "service_healthy"
    for deploy_name in SERVICES:
        deps = compose_services[deploy_name]["depends_on"]
        assert deps["init"]["condition"] == "service_completed_successfully", deploy_name
    for name, service in compose_services.items():
        for dep, spec in (service.get("depends_on") or {}).items():
            if spec.get("condition") == "service_healthy":
                assert compose_services[dep].get("healthcheck"), (
                    f"{name} waits on {dep}: no healthcheck"
                )


def test_init_provisions_topics_tables_and_the_demo_tenant(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    init = compose_services["init"]
    script = " ".join(argv(init))
    assert "mailstream topics create" in script
    assert "mailstream db migrate" in script
    match = re.search(r"mailstream tenants apply -f (\S+)", script)
    assert match, script
    mounts = {dst: src for src, dst, *_ in (str(v).split(":") for v in init.get("volumes", []))}
    source = REPO / mounts[match.group(1)]
    assert source == REPO / "deploy/compose/tenants.yaml"
    spec = read_tenants_file(source)
    demo = {t.id: t for t in spec.tenants}["demo"]
    assert [d.domain for d in demo.sender_domains] == ["demo.mailstream.test"]


# ------------------------------------------------------------------------- image


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuations joined."""
    text = re.sub(r"\\\n(\s*#[^\n]*\n)*", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        instruction, _, args = line.strip().partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


def test_runtime_stage_is_slim_python_and_not_root() -> None:
    preamble, *stages = dockerfile_stages()
    assert len(stages) >= 2, "the Dockerfile should be multi-stage"
    runtime = stages[-1]
    args = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for i, a in preamble if i == "ARG")))
    base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], runtime[0][1].split()[0])
    assert base == "python:3.11-slim"
    users = [a for i, a in runtime if i == "USER"]
    assert users, "the runtime stage sets no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}


def test_image_environment_names_real_settings_and_no_secrets() -> None:
    runtime = dockerfile_stages()[-1]
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for i, a in runtime if i == "ENV")))
    for var in env:
        assert not re.search("PASSWORD|SECRET|TOKEN|PRIVATE", var), f"{var} baked into the image"
        if var.startswith("MAILSTREAM_"):
            assert field_path_error(CommonSettings, var) is None, var
    workdir = [a for i, a in runtime if i == "WORKDIR"][-1]
    copies_schemas = any(i == "COPY" and " schemas " in f" {a} " for i, a in runtime)
    assert copies_schemas and env["MAILSTREAM_SCHEMAS_DIR"] == f"{workdir}/schemas"


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = set((REPO / ".dockerignore").read_text().split())
    assert {".git", ".venv", ".state", "**/__pycache__"} <= ignored


def test_the_four_services_are_healthy_only_when_ready(
    compose_services: dict[str, dict[str, Any]],
) -> None:
    """Compose's healthcheck asks each service's /readyz on the port its settings serve."""
    from services.common.config import HealthSettings

    port = HealthSettings().port
    for deploy_name in SERVICES:
        check = compose_services[deploy_name].get("healthcheck") or {}
        probe = " ".join(str(part) for part in check.get("test", []))
        assert f"127.0.0.1:{port}/readyz" in probe, (deploy_name, probe)
