"""DKIM signing (RFC 6376, RFC 8463): dkimpy canonicalizes, OpenSSL signs."""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast, get_args

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, utils
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from dkim.canonicalization import (
    CanonicalizationPolicy,
    correct_empty_body,
    strip_trailing_lines,
)

from services.common.tenants import DkimAlgorithm

Algorithm = DkimAlgorithm
PrivateKey = RSAPrivateKey | Ed25519PrivateKey

# Signed when present, in this order; From is signed once more than it occurs (over-signing),
# so a second From added in transit breaks the signature.
SIGNED_HEADERS: tuple[bytes, ...] = (
    b"from", b"to", b"cc", b"subject", b"date", b"message-id", b"reply-to", b"mime-version",
    b"content-type", b"content-transfer-encoding", b"list-unsubscribe", b"list-unsubscribe-post",
)  # fmt: skip
OVERSIGNED_HEADERS: frozenset[bytes] = frozenset({b"from"})
MIN_RSA_BITS = 1024  # RFC 8301 3.2: verifiers may reject anything shorter
_DNS_NAME = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(?:\.[A-Za-z0-9_-]+)*")
_CANON = CanonicalizationPolicy.from_c_value(b"relaxed/relaxed")
_HEADER_NAME = b"DKIM-Signature"
_FOLD_AT = 76
_B64_CHUNK = 72


@dataclass(frozen=True)
class DkimKey:
    """A parsed private key and its selector; key material never appears in repr or str."""

    selector: str
    algorithm: Algorithm
    private_key: PrivateKey = field(repr=False)

    def __post_init__(self) -> None:
        if not _DNS_NAME.fullmatch(self.selector):
            raise ValueError(f"invalid DKIM selector {self.selector!r}")
        if self.algorithm == "rsa-sha256":
            if not isinstance(self.private_key, RSAPrivateKey):
                raise ValueError("rsa-sha256 needs an RSA private key")
            if self.private_key.key_size < MIN_RSA_BITS:
                raise ValueError(f"RSA key of {self.private_key.key_size} bits is too short")
        elif self.algorithm == "ed25519-sha256":
            if not isinstance(self.private_key, Ed25519PrivateKey):
                raise ValueError("ed25519-sha256 needs an Ed25519 private key")
        else:
            raise ValueError(f"unsupported DKIM algorithm {self.algorithm!r}")

    def dns_txt_record(self) -> str:
        """The `v=DKIM1` TXT record to publish at `<selector>._domainkey.<domain>`."""
        public = self.private_key.public_key()
        if isinstance(public, Ed25519PublicKey):
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
            return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a SHA-256 digest as RFC 6376 (RSA) or RFC 8463 (Ed25519 over the digest) says."""
        if isinstance(self.private_key, RSAPrivateKey):
            return self.private_key.sign(
                digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
            )
        return self.private_key.sign(digest)


def parse_key(data: bytes, *, selector: str, algorithm: str) -> DkimKey:
    """Parse PEM (PKCS#1 or PKCS#8) or, for Ed25519, dknewkey's base64 32-byte seed."""
    if algorithm not in get_args(DkimAlgorithm):
        raise ValueError(f"unsupported DKIM algorithm {algorithm!r}")
    private_key: object
    if data.lstrip().startswith(b"-----BEGIN"):
        private_key = serialization.load_pem_private_key(data, password=None)
    elif algorithm == "ed25519-sha256":
        try:
            seed = base64.b64decode(b"".join(data.split()), validate=True)
        except ValueError:
            raise ValueError("Ed25519 key is neither PEM nor base64") from None
        if len(seed) != 32:
            raise ValueError("Ed25519 seed must be 32 bytes")
        private_key = Ed25519PrivateKey.from_private_bytes(seed)
    else:
        raise ValueError("RSA key must be PEM (PKCS#1 or PKCS#8)")
    if not isinstance(private_key, RSAPrivateKey | Ed25519PrivateKey):
        raise ValueError(f"unsupported private key type {type(private_key).__name__}")
    return DkimKey(selector=selector, algorithm=cast(Algorithm, algorithm), private_key=private_key)


def load_key(path: Path, *, selector: str, algorithm: str) -> DkimKey:
    """Read and parse a private key file once, at startup."""
    return parse_key(path.read_bytes(), selector=selector, algorithm=algorithm)


class DkimSigner:
    """Prepends one relaxed/relaxed DKIM-Signature per key of the signing domain."""

    def __init__(
        self, *, keys: Mapping[str, Sequence[DkimKey]], now: Callable[[], float] = time.time
    ) -> None:
        for domain in keys:
            if not _DNS_NAME.fullmatch(domain):
                raise ValueError(f"invalid DKIM domain {domain!r}")
        self._keys = {domain.lower(): tuple(ks) for domain, ks in keys.items()}
        self._now = now

    def sign(self, message: bytes, *, domain: str) -> bytes:
        """Return `message` with signatures prepended, or unchanged if `domain` has no keys."""
        keys = self._keys.get(domain.lower())
        if not keys:
            return message
        headers, body = parse_message(message)
        canonical_headers = relaxed_headers(headers)
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        signed = _signed_header_names(headers)
        timestamp = str(int(self._now())).encode("ascii")
        signatures = [
            _signature(key, canonical_headers, signed, domain.lower().encode("ascii"),
                       timestamp, body_hash)
            for key in keys
        ]  # fmt: skip
        return b"".join(signatures) + message


_FIELD_NAME = re.compile(rb"([\x21-\x7e]+?):")


def parse_message(message: bytes) -> tuple[list[list[bytes]], bytes]:
    """dkimpy's rfc822_parse, without splitting and rejoining the whole body line by line
    (180 us of a 4 KB message) when the message has CRLF line endings only, as every message
    the router builds does; anything else goes to dkimpy itself. The results are identical,
    which tests/unit/test_dkim.py checks with hypothesis."""
    head, separator, body = message.partition(b"\r\n\r\n")
    if (
        not separator
        or message.startswith(b"\r\n")
        or message.count(b"\n") != message.count(b"\r\n")
    ):
        return _dkimpy_parse(message)
    headers: list[list[bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b"\t", b" ") and headers:
            headers[-1][1] += line + b"\r\n"
            continue
        match = _FIELD_NAME.match(line)
        if match is None:
            return _dkimpy_parse(message)  # let dkimpy judge (and refuse) it
        headers.append([match.group(1), line[match.end(0) :] + b"\r\n"])
    return headers, body


def _dkimpy_parse(message: bytes) -> tuple[list[list[bytes]], bytes]:
    parsed: tuple[list[list[bytes]], bytes] = dkim.rfc822_parse(message)
    return parsed


def _compress(text: bytes) -> bytes:
    """Every run of spaces and tabs as one space (dkimpy's compress_whitespace), with bytes
    methods: Python's re scans a 4 KB body position by position, about 300 us."""
    if b"\t" in text:
        text = text.replace(b"\t", b" ")
    while b"  " in text:
        text = text.replace(b"  ", b" ")
    return text


def relaxed_body(body: bytes) -> bytes:
    """RFC 6376 3.4.4 relaxed body canonicalization, byte for byte dkimpy's (whose trailing
    line handling it calls). Compressing first and then dropping the one space left before
    each CRLF equals dkimpy's order (strip trailing whitespace, then compress)."""
    body = _compress(body)
    if b" \r\n" in body:
        body = body.replace(b" \r\n", b"\r\n")
    canonical: bytes = correct_empty_body(strip_trailing_lines(body))
    return canonical


def relaxed_headers(headers: Sequence[Sequence[bytes]]) -> list[tuple[bytes, bytes]]:
    """RFC 6376 3.4.2 relaxed header canonicalization, byte for byte dkimpy's: names lower
    case, values unfolded, whitespace runs as one space, stripped, CRLF-terminated."""
    out = []
    for name, value in headers:
        unfolded = value.replace(b"\r\n", b"").replace(b"\n", b"")
        out.append((name.lower().rstrip(), _compress(unfolded).strip() + b"\r\n"))
    return out


def _signed_header_names(headers: Sequence[Sequence[bytes]]) -> list[bytes]:
    counts: dict[bytes, int] = {}
    for name, _ in headers:
        counts[name.lower()] = counts.get(name.lower(), 0) + 1
    names: list[bytes] = []
    for name in SIGNED_HEADERS:
        extra = 1 if name in OVERSIGNED_HEADERS else 0
        names.extend([name] * (counts.get(name, 0) + extra))
    return names


def _signature(
    key: DkimKey,
    canonical_headers: Sequence[tuple[bytes, bytes]],
    signed: list[bytes],
    domain: bytes,
    timestamp: bytes,
    body_hash: bytes,
) -> bytes:
    tags = [
        b"v=1;", b"a=" + key.algorithm.encode("ascii") + b";", b"c=relaxed/relaxed;",
        b"d=" + domain + b";", b"s=" + key.selector.encode("ascii") + b";",
        b"t=" + timestamp + b";",
    ]  # fmt: skip
    h_tags = [n + b":" for n in signed[:-1]] + [signed[-1] + b";"]
    tags += [b"h=" + h_tags[0], *h_tags[1:], b"bh=" + body_hash + b";"]
    unsigned = _fold([_HEADER_NAME + b":", *tags]) + b"\r\n b="
    hasher = hashlib.sha256()
    # dkimpy's hash_headers empties b= and hashes the signature header without its CRLF.
    value = unsigned[len(_HEADER_NAME) + 1 :]
    dkim.hash_headers(hasher, _CANON, canonical_headers, signed, (_HEADER_NAME, value), {})
    b64 = base64.b64encode(key.sign_digest(hasher.digest()))
    chunks = [b64[i : i + _B64_CHUNK] for i in range(0, len(b64), _B64_CHUNK)]
    return unsigned + b"\r\n   ".join(chunks) + b"\r\n"


def _fold(tokens: list[bytes]) -> bytes:
    """Join tokens with spaces, breaking lines only between tokens, where FWS is allowed."""
    lines: list[bytes] = []
    line = b""
    for token in tokens:
        if line and len(line) + 1 + len(token) > _FOLD_AT:
            lines.append(line)
            line = token
        else:
            line = line + b" " + token if line else token
    lines.append(line)
    return b"\r\n ".join(lines)
