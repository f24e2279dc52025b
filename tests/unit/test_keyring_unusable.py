"""A sender domain whose configured DKIM key cannot be loaded, or that no tenant spec names
yet, is never signed by fewer keys than configured: the keyring says why its mail must wait,
and looks again within a second instead of at its next 30 s refresh."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

import services.sender.keyring as keyring_module
from services.sender.keyring import DkimKeyring


class Session:
    def __init__(self) -> None:
        self.specs: list[dict[str, Any]] = []
        self.reads = 0

    async def execute(self, _cql: str, _params: tuple[Any, ...] = ()) -> list[Any]:
        self.reads += 1
        return [SimpleNamespace(spec_json=json.dumps(s)) for s in self.specs]


def _seed(path: Path) -> None:
    seed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    path.write_bytes(base64.b64encode(seed))


def _tenant(domain: str, key_file: Path | None) -> dict[str, Any]:
    dkim = (
        [{"selector": "s1", "algorithm": "ed25519-sha256", "private_key_file": str(key_file)}]
        if key_file
        else []
    )
    return {"id": domain.split(".")[0], "sender_domains": [{"domain": domain, "dkim": dkim}]}


async def test_a_missing_key_file_defers_until_the_file_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(keyring_module.time, "monotonic", lambda: clock[0])
    session = Session()
    key_file = tmp_path / "k.key"
    session.specs = [_tenant("a.example", key_file), _tenant("plain.example", None)]
    keyring = DkimKeyring(session=session, refresh_s=30)  # type: ignore[arg-type]

    await keyring.signer("a.example")
    assert "not loaded: s1" in (keyring.unusable("a.example") or "")
    assert keyring.unusable("plain.example") is None  # no keys configured: unsigned is right
    _seed(key_file)
    await keyring.signer("a.example")  # within the second: no new read
    assert session.reads == 1 and keyring.unusable("a.example") is not None
    clock[0] += 1.0
    signer = await keyring.signer("a.example")
    assert session.reads == 2 and keyring.unusable("a.example") is None
    signed = signer.sign(b"From: x@a.example\r\nSubject: s\r\n\r\nbody\r\n", domain="a.example")
    assert signed.startswith(b"DKIM-Signature:") and b"d=a.example" in signed


async def test_a_domain_no_spec_names_yet_makes_the_keyring_look_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(keyring_module.time, "monotonic", lambda: clock[0])
    session = Session()
    keyring = DkimKeyring(session=session, refresh_s=30)  # type: ignore[arg-type]
    await keyring.signer("new.example")
    assert "no tenant names" in (keyring.unusable("new.example") or "")
    session.specs = [_tenant("new.example", None)]  # `tenants apply` just ran
    clock[0] += 1.0
    await keyring.signer("new.example")
    assert keyring.unusable("new.example") is None
    assert session.reads == 2
    await keyring.signer("new.example")  # known and usable: the 30 s refresh applies
    assert session.reads == 2
