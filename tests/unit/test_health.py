import json

from services.common.health import Health, HealthServer


def test_ready_only_when_every_required_check_holds() -> None:
    health = Health(service="ingest", required=("kafka", "cassandra"))
    assert not health.ready
    health.set("kafka", True, "metadata answered")
    assert not health.ready
    health.set("cassandra", True, "1 of 1 hosts up")
    assert health.ready
    health.set("kafka", False, "no broker answers")
    report = health.report()
    assert report["ready"] is False
    assert report["checks"]["kafka"]["detail"] == "no broker answers"  # type: ignore[index]


def test_routes() -> None:
    health = Health(service="router", required=("kafka",))
    server = HealthServer(health=health, host="127.0.0.1", port=0)
    assert server._route("GET", "/livez")[0] == 200
    status, ctype, body = server._route("GET", "/readyz")
    assert (status, ctype) == (503, "application/json")
    assert json.loads(body)["checks"]["kafka"]["ok"] is False
    health.set("kafka", True)
    assert server._route("GET", "/readyz")[0] == 200
    assert b"python_gc_objects_collected_total" in server._route("GET", "/metrics")[2]
    assert server._route("POST", "/readyz")[0] == 405
    assert server._route("GET", "/nope")[0] == 404
