"""EmailRequested records over every field from the kinds of tests/security/fuzz_values.py,
drawn by hypothesis: N of them, the same for the same seed.

Every draft carries the labels of the kinds it drew ("attachment.filename:broken"): they say
what a failing request was made of, and which kinds a run covered.

Hypothesis mixes literals found in the source of the non-test modules a process has imported
into what it draws, so the same seed draws differently where other modules are loaded (the
services' code, which changes often, is). generate_isolated() therefore draws in a fresh
interpreter that imports nothing but this module, fuzz_values and hypothesis: drafts are plain
data (tuples, str, bytes) for that reason, and the test makes records of them.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.security import fuzz_values as v

Draw = Callable[[st.SearchStrategy[Any]], Any]
PRIORITIES = ("critical", "transactional", "bulk")  # Priority slugs: no services import here
Person = tuple[str, str | None]  # a Recipient: address, name
File = tuple[str, str, bytes]  # an Attachment: filename, content_type, content
Ref = tuple[str, int | None, str | None]  # a TemplateRef: name, version, locale
DOMAINS = {"acme": "acme.mailstream.test", "other": "other.mailstream.test"}
TEMPLATE_VARIABLES = ("code", "name", "title", "items", "body", "n")  # of the fuzz templates


@dataclass(frozen=True)
class Draft:
    """A drawn request before the run stamps its message_id and times, so that the same seed
    gives the same drafts in any run. times: ("rel", ms from now) or ("abs", epoch ms)."""

    mid: tuple[str, str]  # (kind, drawn suffix)
    fields: dict[str, Any]  # to/cc/bcc as Person, attachments as File, template as Ref
    times: dict[str, tuple[str, int] | None]
    priority: str
    repeat: str | None  # published a second time, to this priority's topic
    labels: frozenset[str] = field(default_factory=frozenset)


# r, x, y or z first: never an injection marker (those start with evil or smuggled)
_LOCAL = st.tuples(st.sampled_from("rxyz"), st.text(v.LETTERS + "._+-", max_size=16)).map("".join)
_DOMAIN = st.sampled_from(v.DELIVERING + v.BOUNCING)
_UNSUBSCRIBE = st.sampled_from(v.UNSUBSCRIBE_VALUES)
_BOOL = st.booleans()
_NOISE_SEED = st.integers(0, 2**32)
_MISSING = st.sampled_from(["{}", '{"name": "x"}'])
_SENDER_LOCAL = st.sampled_from(v.SENDER_LOCALS)
_PRIORITY = st.sampled_from(PRIORITIES)
_SAMPLERS: dict[tuple[tuple[str, int], ...], st.SearchStrategy[str]] = {}
# Which template data a request draws, with a template and without (then it is ignored).
_DATA_TEMPLATED: v.Kinds = {
    "none": (5, None),
    "fits": (45, None),
    "missing": (10, None),
    "odd": (40, None),
}
_DATA_INLINE: v.Kinds = {
    "none": (85, None),
    "fits": (3, None),
    "missing": (2, None),
    "odd": (10, None),
}


def _sampler(kinds: v.Kinds) -> st.SearchStrategy[str]:
    """The kind names, each as often as its weight, built once per table. Hypothesis favours
    the first and last entries of a sampled list beyond their share: the heaviest kind goes
    first, so that the skew only adds to what is most common anyway."""
    key = tuple((k, weight) for k, (weight, _) in kinds.items())
    if key not in _SAMPLERS:
        ranked = sorted(kinds.items(), key=lambda item: -item[1][0])
        _SAMPLERS[key] = st.sampled_from([k for k, (weight, _) in ranked for _ in range(weight)])
    return _SAMPLERS[key]


class _Drawing:
    """One request's draws and the labels of the kinds drawn."""

    def __init__(self, draw: Draw) -> None:
        self.draw = draw
        self.labels: set[str] = set()

    def kind(self, name: str, kinds: v.Kinds) -> str:
        """One of the named kinds, drawn with its weight."""
        kind = str(self.draw(_sampler(kinds)))
        self.labels.add(f"{name}:{kind}")
        return kind

    def pick(self, name: str, kinds: v.Kinds) -> Any:
        """A value of one of the named kinds: drawn from that kind's strategy."""
        return self.draw(kinds[self.kind(name, kinds)][1])

    def chance(self, name: str, percent: int) -> bool:
        return self.kind(name, {"no": (100 - percent, None), "yes": (percent, None)}) == "yes"

    def recipients(self, role: str, counts: v.Kinds) -> list[Person]:
        n = self.pick(f"{role}.count", counts)
        drawn = []
        for _ in range(min(n, 4)):
            local = self.draw(_LOCAL)
            address = self.pick("recipient.address", v.ADDRESS).replace("{local}", local)
            drawn.append((address, self.pick("recipient.name", v.NAME)))
        domain = self.draw(_DOMAIN)  # the rest: cheap draws
        tag = self.draw(v.word)
        return drawn + [(f"r{j}.{tag}@{domain}", None) for j in range(n - len(drawn))]

    def headers(self, priority: str) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.chance("list-unsubscribe", 90 if priority == "bulk" else 10):
            headers["List-Unsubscribe"] = self.draw(_UNSUBSCRIBE)
            if self.draw(_BOOL):
                headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        for _ in range(self.pick("headers.count", v.HEADERS_COUNT)):
            name = self.pick("header.name", v.HEADER_NAME)
            headers[name] = self.pick("header.value", v.HEADER_VALUE)
        return headers

    def attachments(self) -> list[File]:
        out = []
        for _ in range(self.pick("attachments.count", v.ATTACHMENTS_COUNT)):
            filename = self.pick("attachment.filename", v.FILENAME)
            content_type = self.pick("attachment.content_type", v.CONTENT_TYPE)
            size = self.pick("attachment.content", v.CONTENT_SIZE)
            noise = random.Random(self.draw(_NOISE_SEED))  # any size from one draw
            content = b"line\r\n.\r\nQUIT\r\n\x00" if size < 0 else noise.randbytes(size)
            out.append((filename, content_type, content))
        return out

    def template(self) -> Ref | None:
        if not self.pick("template", v.TEMPLATE):
            return None
        return (
            self.pick("template.name", v.TEMPLATE_NAME),
            self.pick("template.version", v.TEMPLATE_VERSION),
            self.pick("template.locale", v.TEMPLATE_LOCALE),
        )

    def template_data(self, templated: bool) -> str | None:
        kind = self.kind("template_data", _DATA_TEMPLATED if templated else _DATA_INLINE)
        if kind == "fits":
            data = {name: self.pick("data", v.VARIABLE) for name in TEMPLATE_VARIABLES}
            return json.dumps(data)
        if kind == "missing":
            return str(self.draw(_MISSING))
        return str(self.draw(v.ODD_JSON)) if kind == "odd" else None

    def tags(self) -> dict[str, str]:
        n = self.pick("tags.count", v.TAGS_COUNT)
        tags = {
            self.pick("tag.key", v.TAG_TEXT): self.pick("tag.value", v.TAG_TEXT) for _ in range(n)
        }
        if self.chance("tags.huge", 1):
            tags[self.draw(v.word)] = self.draw(v.HUGE_TAG)
        return tags


@st.composite
def drafts(draw: Draw) -> Draft:
    d = _Drawing(draw)
    mid = d.pick("message_id", v.MESSAGE_ID)
    (mid_kind,) = [label.split(":", 1)[1] for label in d.labels]
    tenant = d.pick("tenant_id", v.TENANT)
    domain = DOMAINS.get(tenant, DOMAINS["acme"])
    elsewhere = DOMAINS["other" if domain == DOMAINS["acme"] else "acme"]
    local = draw(_SENDER_LOCAL)
    priority = draw(_PRIORITY)
    d.labels.add(f"priority:{priority}")
    template = d.template()
    fields: dict[str, Any] = {
        "tenant_id": tenant,
        "from_address": d.pick("from_address", v.SENDER)
        .replace("{local}", local)
        .replace("{domain}", domain)
        .replace("{DOMAIN}", domain.upper())
        .replace("{elsewhere}", elsewhere),
        "from_name": d.pick("from_name", v.NAME),
        "reply_to": d.pick("reply_to", v.REPLY_TO),
        "to": d.recipients("to", v.TO_COUNT),
        "cc": d.recipients("cc", v.COPY_COUNT),
        "bcc": d.recipients("bcc", v.COPY_COUNT),
        "subject": d.pick("subject", v.SUBJECT),
        "text_body": d.pick("text_body", v.body(none_weight=15)),
        "html_body": d.pick("html_body", v.body(none_weight=60)),
        "template": template,
        "template_data_json": d.template_data(template is not None),
        "headers": d.headers(priority),
        "attachments": d.attachments(),
        "tags": d.tags(),
    }
    times = {
        "expires_at": d.pick("expires_at", v.EXPIRES_AT),
        "send_at": d.pick("send_at", v.SEND_AT),
        "requested_at": d.pick("requested_at", v.REQUESTED_AT),
    }
    repeat = draw(_PRIORITY) if d.chance("repeat", 3) else None
    return Draft((mid_kind, mid), fields, times, priority, repeat, frozenset(d.labels))


def label_universe() -> set[str]:
    """Every label a draft can carry: each field's kinds (what a full run should cover)."""
    tables: dict[str, v.Kinds] = {
        "message_id": v.MESSAGE_ID,
        "tenant_id": v.TENANT,
        "from_address": v.SENDER,
        "from_name": v.NAME,
        "reply_to": v.REPLY_TO,
        "subject": v.SUBJECT,
        "text_body": v.body(none_weight=15),
        "html_body": v.body(none_weight=60),
        "template": v.TEMPLATE,
        "template.name": v.TEMPLATE_NAME,
        "template.version": v.TEMPLATE_VERSION,
        "template.locale": v.TEMPLATE_LOCALE,
        "template_data": _DATA_TEMPLATED,
        "data": v.VARIABLE,
        "headers.count": v.HEADERS_COUNT,
        "header.name": v.HEADER_NAME,
        "header.value": v.HEADER_VALUE,
        "attachments.count": v.ATTACHMENTS_COUNT,
        "attachment.filename": v.FILENAME,
        "attachment.content_type": v.CONTENT_TYPE,
        "attachment.content": v.CONTENT_SIZE,
        "tags.count": v.TAGS_COUNT,
        "tag.key": v.TAG_TEXT,
        "tag.value": v.TAG_TEXT,
        "expires_at": v.EXPIRES_AT,
        "send_at": v.SEND_AT,
        "requested_at": v.REQUESTED_AT,
        "to.count": v.TO_COUNT,
        "cc.count": v.COPY_COUNT,
        "bcc.count": v.COPY_COUNT,
        "recipient.address": v.ADDRESS,
        "recipient.name": v.NAME,
        **{name: {"yes": (1, None), "no": (1, None)} for name in _CHANCES},
        "priority": {p: (1, None) for p in PRIORITIES},
    }
    return {f"{name}:{kind}" for name, kinds in tables.items() for kind in kinds}


_CHANCES = ("list-unsubscribe", "tags.huge", "repeat")


def generate(seed_value: int, n: int) -> list[Draft]:
    """n drafts, the same for the same seed: hypothesis draws them as the examples of a test
    that only collects them (generation only: no database, no shrinking, no health checks)."""
    collected: list[Draft] = []

    @settings(
        max_examples=n,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @seed(seed_value)
    @given(drafts())
    def collect(draft: Draft) -> None:
        collected.append(draft)

    collect()
    assert len(collected) >= n, f"hypothesis drew {len(collected)} of {n} requests"
    return collected[:n]


def generate_isolated(seed_value: int, n: int) -> list[Draft]:
    """generate() in a fresh interpreter (see the module's docstring): the same drafts for the
    same seed, whatever the calling process has imported."""
    repo = Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "drafts.pickle"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "tests.security.fuzz_requests",
                str(seed_value),
                str(n),
                str(out),
            ],
            cwd=repo,
            check=True,
            timeout=600,
        )
        drafts_: list[Draft] = pickle.loads(out.read_bytes())
    return drafts_


def main() -> None:
    parser = argparse.ArgumentParser(description="Draw fuzz drafts into a pickle file.")
    parser.add_argument("seed", type=int)
    parser.add_argument("n", type=int)
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    # By its importable name, so that the pickle names tests.security.fuzz_requests.Draft.
    from tests.security import fuzz_requests

    args.out.write_bytes(pickle.dumps(fuzz_requests.generate(args.seed, args.n)))


if __name__ == "__main__":
    main()
