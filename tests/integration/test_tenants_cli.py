"""`mailstream tenants apply` against the real Cassandra: add and update only, remove with
--prune, and --dry-run prints the change without writing it.

The session's shared keyspace keeps its tenants (acme, other, routed, badrelay) for every other
test: here it sees only files of fresh tenants, and --prune only with --dry-run. A real prune
runs in a keyspace of its own, dropped after."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.cassandra.session import connect
from services.common.config import CommonSettings
from tests.integration.harness import mailstream

pytestmark = pytest.mark.integration

SHARED = ("acme", "other", "routed", "badrelay")


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = mailstream(env, "tenants", *args)
    assert result.returncode == 0, result.stderr
    return result


def write(path: Path, tenants: dict[str, str]) -> Path:
    """A tenants file: id -> sender domain."""
    lines = ["tenants:"]
    for tenant_id, domain in tenants.items():
        lines += [f"  - id: {tenant_id}", f"    sender_domains: [{{domain: {domain}}}]"]
    path.write_text("\n".join(lines) + "\n")
    return path


def listed(env: dict[str, str]) -> dict[str, str]:
    rows = cli(env, "list").stdout.splitlines()[1:]
    return {row.split()[0]: row.split(None, 1)[1].strip() for row in rows}


def test_apply_adds_and_updates_only_and_dry_run_writes_nothing(
    provisioned: Path, env: dict[str, str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:6]
    one, two = f"t{tag}-one", f"t{tag}-two"
    first = write(tmp_path / "first.yaml", {one: "one.example", two: "two.example"})
    dry = cli(env, "apply", "-f", str(first), "--dry-run").stdout.splitlines()
    assert [f"added      {one}", f"added      {two}"] == dry[:2]
    assert dry[-1] == "dry run: nothing written"
    assert one not in listed(env)

    applied = cli(env, "apply", "-f", str(first)).stdout.splitlines()
    assert applied[:2] == [f"added      {one}", f"added      {two}"]
    # Tenants the file lacks stay, and say so.
    for tenant in SHARED:
        assert f"unchanged  {tenant}  (not in the file: --prune removes it)" in applied
    assert not any(line.startswith("removed") for line in applied)
    stored = listed(env)
    assert stored[one] == "one.example" and set(SHARED) <= set(stored)

    again = cli(env, "apply", "-f", str(first)).stdout.splitlines()
    assert again[:2] == [f"unchanged  {one}", f"unchanged  {two}"]

    second = write(tmp_path / "second.yaml", {two: "two-new.example"})
    change = cli(env, "apply", "-f", str(second), "--dry-run").stdout.splitlines()
    assert change[0] == f"changed    {two}"
    assert listed(env)[two] == "two.example"
    assert cli(env, "apply", "-f", str(second)).stdout.splitlines()[0] == f"changed    {two}"
    assert listed(env)[two] == "two-new.example"

    # --prune with --dry-run names every tenant the file lacks, and removes none of them.
    pruned = cli(env, "apply", "-f", str(second), "--prune", "--dry-run").stdout.splitlines()
    for tenant in (*SHARED, one):
        assert f"removed    {tenant}" in pruned
    assert pruned[-1] == "dry run: nothing written"
    assert set(SHARED) | {one, two} <= set(listed(env))


@pytest.fixture
def own_keyspace(env: dict[str, str], settings: CommonSettings) -> Iterator[dict[str, str]]:
    """The session's env with a keyspace of its own, not migrated yet; dropped after."""
    keyspace = f"{settings.cassandra.keyspace}_tenants_{uuid.uuid4().hex[:6]}"
    yield env | {"MAILSTREAM_CASSANDRA__KEYSPACE": keyspace}
    cluster, session = connect(settings.cassandra)
    try:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")
    finally:
        cluster.shutdown()


def test_prune_removes_the_tenants_the_file_lacks(
    own_keyspace: dict[str, str], tmp_path: Path
) -> None:
    env = own_keyspace
    keyspace = env["MAILSTREAM_CASSANDRA__KEYSPACE"]
    before = mailstream(env, "tenants", "list")
    assert before.returncode == 2
    assert before.stderr.strip() == (
        f"error: keyspace '{keyspace}' does not exist: run 'mailstream db migrate'"
    )
    migrated = mailstream(env, "db", "migrate")
    assert migrated.returncode == 0, migrated.stderr

    first = write(tmp_path / "first.yaml", {"kept": "kept.example", "gone": "gone.example"})
    cli(env, "apply", "-f", str(first))
    second = write(tmp_path / "second.yaml", {"kept": "kept-new.example", "new": "new.example"})
    pruned = cli(env, "apply", "-f", str(second), "--prune").stdout.splitlines()
    assert pruned == ["changed    kept", "added      new", "removed    gone"]
    assert listed(env) == {"kept": "kept-new.example", "new": "new.example"}
    again = cli(env, "apply", "-f", str(second), "--prune").stdout.splitlines()
    assert again == ["unchanged  kept", "unchanged  new"]
