"""What became of each fuzzed request (tests/security/test_fuzz.py), and the run's figures."""

from __future__ import annotations

import functools
import statistics
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import hypothesis

from services.common.addresses import normalize_address
from services.common.avro.records import (
    Attachment,
    EmailEvent,
    EmailRequested,
    EventType,
    Recipient,
    TemplateRef,
)
from services.common.kafka import headers as kafka_headers
from services.common.kafka.records import Inbound
from services.common.priority import Priority
from tests.security.fuzz_requests import Draft, label_universe


def finish(draft: Draft, *, index: int, run: str, now_ms: int, empty_taken: bool) -> EmailRequested:
    """The request a draft stands for: a message_id unique in the run (but for the run's one
    empty id), its times made absolute."""
    kind, suffix = draft.mid
    prefix = f"fz{run}-{index:05d}"
    message_id = {
        "empty": f" {prefix}" if empty_taken else "",
        "max-length": (prefix + "-" + "~" * 128)[:128],
        "space": f"{prefix} {suffix}",
    }.get(kind, f"{prefix}-{suffix}")
    times = {
        name: None if t is None else (now_ms + t[1] if t[0] == "rel" else t[1])
        for name, t in draft.times.items()
    }
    f = draft.fields
    people = {k: [Recipient(a, n) for a, n in f[k]] for k in ("to", "cc", "bcc")}
    request = EmailRequested(
        message_id=message_id,
        tenant_id=f["tenant_id"],
        from_address=f["from_address"],
        to=people["to"],
        requested_at=times["requested_at"] or 0,
    )
    plain = ("from_name", "reply_to", "subject", "text_body", "html_body", "template_data_json")
    return replace(
        request,
        **{k: f[k] for k in plain},
        cc=people["cc"],
        bcc=people["bcc"],
        template=TemplateRef(*f["template"]) if f["template"] is not None else None,
        headers=f["headers"],
        attachments=[Attachment(*a) for a in f["attachments"]],
        tags=f["tags"],
        expires_at=times["expires_at"],
        send_at=times["send_at"],
    )


def fitted(
    request: EmailRequested, encode: Callable[[EmailRequested], bytes], limit: int
) -> EmailRequested:
    """The request with its largest values cut until it encodes to at most `limit` bytes: the
    broker refuses a record over 1 MiB, and a request it refuses tests nothing here (the
    contract's 900 KiB limit lies below, and requests between the two are still drawn)."""
    size = len(encode(request))
    while size > limit:
        excess = size - limit + 1024
        texts = {
            k: getattr(request, k) or "" for k in ("text_body", "html_body", "template_data_json")
        }
        files = {i: len(a.content) for i, a in enumerate(request.attachments)}
        tags = {k: len(x) for k, x in request.tags.items()}
        sizes = [(len(t), "text", k) for k, t in texts.items()]
        sizes += [(n, "file", i) for i, n in files.items()] + [
            (n, "tag", k) for k, n in tags.items()
        ]
        length, kind, which = max(sizes, key=lambda item: item[0])
        keep = max(0, length - excess)
        if kind == "text":
            request = replace(request, **{str(which): texts[str(which)][:keep]})
        elif kind == "file":
            attachments = list(request.attachments)
            attachments[int(which)] = replace(
                attachments[int(which)], content=attachments[int(which)].content[:keep]
            )
            request = replace(request, attachments=attachments)
        else:
            request = replace(
                request, tags={**request.tags, str(which): request.tags[str(which)][:keep]}
            )
        size = len(encode(request))
    return request


# ---------------------------------------------------------------------------------------------
# One request and what became of it


@dataclass
class Fuzzed:
    index: int
    request: EmailRequested
    priority: Priority
    value: bytes
    labels: frozenset[str]
    repeat: Priority | None
    drawn_ms: int = 0  # the "now" its relative times count from
    published_ms: int = 0
    events: list[EmailEvent] = field(default_factory=list)  # distinct by event_id
    letters: list[Inbound] = field(default_factory=list)
    quarantined: list[Inbound] = field(default_factory=list)
    messages: int = 0
    wire: list[str] = field(default_factory=list)
    body_contains: tuple[str, ...] = ()
    body_lacks: tuple[str, ...] = ()

    @functools.cached_property
    def expected(self) -> frozenset[str]:
        """The recipients its events name: as normalized, or as given when invalid."""
        r = self.request
        return frozenset(
            normalize_address(x.address, allow_test_domains=True) or x.address
            for x in [*r.to, *r.cc, *r.bcc]
        )

    @property
    def rejected(self) -> list[EmailEvent]:
        return [e for e in self.events if e.type is EventType.REJECTED and e.recipient is None]

    def terminal(self) -> dict[str, list[EmailEvent]]:
        found: dict[str, list[EmailEvent]] = {}
        for e in self.events:
            if e.type.terminal and e.recipient is not None:
                found.setdefault(e.recipient, []).append(e)
        return found

    def settled(self) -> bool:
        if self.letters or self.rejected:
            return True
        return bool(self.expected) and self.expected <= set(self.terminal())

    def took_s(self) -> float | None:
        """Seconds from its publish to its last terminal event, once it has one."""
        ends = [e.occurred_at for e in self.events if e.type.terminal]
        return (max(ends) - self.published_ms) / 1000 if ends and self.settled() else None

    def problems(self) -> list[str]:
        """What is wrong with its outcome besides not ending."""
        problems = []
        terminal = self.terminal()
        for recipient, found in terminal.items():
            if len(found) > 1:
                kinds = [f"{e.type.value} {e.reason or ''}".strip() for e in found]
                problems.append(f"{len(found)} terminal events for {recipient[:60]!r}: {kinds}")
        named = {e.recipient for e in self.events if e.recipient is not None}
        for stray in sorted(named - self.expected):
            problems.append(f"an event for {stray[:60]!r}, which the request does not name")
        if len(self.rejected) > 1:
            problems.append(f"{len(self.rejected)} request-level REJECTED events")
        if self.rejected and named:
            problems.append("rejected as a whole and given per-recipient events")
        if self.letters and self.events:
            problems.append(f"dead-lettered and given {len(self.events)} events")
        if len(self.letters) > 1 + (self.repeat is not None):
            problems.append(f"dead-lettered {len(self.letters)} times")
        return problems

    def shape(self) -> str:
        """The request in one line, long values cut: enough to reproduce it."""
        r = self.request
        parts = [
            f"{self.priority.value}",
            f"mid={_cut(r.message_id)}",
            f"tenant={_cut(r.tenant_id)}",
        ]
        parts.append(f"from={_cut(r.from_address)}")
        for name in ("to", "cc", "bcc"):
            people = getattr(r, name)
            if people:
                shown = ", ".join(
                    _cut(p.address) + (f" ({_cut(p.name)})" if p.name else "") for p in people[:3]
                )
                parts.append(f"{name}[{len(people)}]=[{shown}{', ...' if len(people) > 3 else ''}]")
        for name in (
            "from_name",
            "reply_to",
            "subject",
            "text_body",
            "html_body",
            "template_data_json",
        ):
            if getattr(r, name) is not None:
                parts.append(f"{name}={_cut(getattr(r, name))}")
        if r.template is not None:
            t = r.template
            parts.append(f"template=({_cut(t.name)}, v{t.version}, {_cut(t.locale)})")
        if r.headers:
            parts.append(
                "headers={"
                + ", ".join(f"{_cut(k)}: {_cut(x)}" for k, x in list(r.headers.items())[:6])
                + "}"
            )
        if r.attachments:
            shown = ", ".join(
                f"({_cut(a.filename)}, {_cut(a.content_type)}, {len(a.content)} B)"
                for a in r.attachments[:4]
            )
            parts.append(f"attachments[{len(r.attachments)}]=[{shown}]")
        if r.tags:
            parts.append(
                "tags={"
                + ", ".join(f"{_cut(k)}: {_cut(x)}" for k, x in list(r.tags.items())[:4])
                + f"}}[{len(r.tags)}]"
            )
        for name in ("expires_at", "send_at"):
            if getattr(r, name) is not None:
                parts.append(f"{name}={getattr(r, name) - self.drawn_ms:+d} ms")
        if r.requested_at != self.drawn_ms:
            parts.append(f"requested_at={r.requested_at - self.drawn_ms:+d} ms")
        return " ".join(parts)

    def summary(self) -> str:
        counts = Counter(f"{e.type.value} {e.reason or ''}".strip() for e in self.events)
        return ", ".join(f"{n}x {k}" for k, n in counts.items()) or "no events"


def _cut(text: str | None, keep: int = 40) -> str:
    if text is None:
        return "None"
    return repr(text) if len(text) <= keep else f"{text[:keep]!r}...({len(text)} chars)"


@dataclass
class FuzzRun:
    requests: list[Fuzzed]
    digest: str
    published: Counter[str]
    generate_s: float
    publish_s: float
    settle_s: float
    global_problems: list[str]
    dead: list[str]  # evidence of each service that exited
    restarted: list[str]  # services whose process is no longer the one the session started
    quarantined_total: int  # records on mailstream.internal.dlq, this run's and others'
    quarantine_log: list[dict[str, object]]
    seed: int
    bound_s: float
    # For the first few requests that did not end: what the services logged about each.
    trails: dict[int, list[str]] = field(default_factory=dict)


def examples(bad: list[Fuzzed], why: dict[int, str], groups_shown: int = 8) -> str:
    """Failing requests grouped by what went wrong, with up to three reproducible shapes per
    group, each as unlike the ones before it as the drawn kinds allow."""
    groups: dict[str, list[Fuzzed]] = {}
    for f in bad:
        groups.setdefault(why[f.index], []).append(f)
    lines = []
    for reason, members in sorted(groups.items(), key=lambda g: -len(g[1]))[:groups_shown]:
        shown = [members[0]]
        while len(shown) < min(3, len(members)):
            seen = set().union(*(f.labels for f in shown))
            shown.append(max(members, key=lambda f: len(f.labels - seen) - 999 * (f in shown)))
        lines.append(f"- {len(members)}x {reason}")
        lines += [f"    e.g. #{f.index} {f.shape()}" for f in shown]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The figures


def quarantined_why(run: FuzzRun) -> Counter[str]:
    """The services' record_quarantined log lines, by lane and exception (one line each)."""
    return Counter(
        f"{e.get('lane')}: {e.get('exception_line') or e.get('error_class')}"
        for e in run.quarantine_log
    )


def figures(run: FuzzRun) -> list[str]:
    reqs = run.requests
    settled = [f for f in reqs if f.settled()]
    named = [len(f.request.to) + len(f.request.cc) + len(f.request.bcc) for f in reqs]
    rejected = Counter(f.rejected[0].reason for f in reqs if f.rejected)
    terminal = Counter(
        f"{e.type.value} {e.reason or ''}".strip()
        for f in reqs
        for found in f.terminal().values()
        for e in found
    )
    letters = Counter(
        dict(f.letters[0].headers).get(kafka_headers.ERROR_MESSAGE, b"?").decode()[:70]
        for f in reqs
        if f.letters
    )
    ours = [r for f in reqs for r in f.quarantined]
    classes = Counter(dict(r.headers).get(kafka_headers.ERROR_CLASS, b"?").decode() for r in ours)
    took = [t for f in settled if (t := f.took_s()) is not None]
    drawn = {label for f in reqs for label in f.labels}
    never = sorted(label_universe() - drawn)
    sizes = [len(f.value) for f in reqs]
    size = sum(sizes)

    def top(counter: Counter[str], n: int = 12) -> str:
        shown = ", ".join(f"{k} {c}" for k, c in counter.most_common(n))
        rest = sum(counter.values()) - sum(c for _, c in counter.most_common(n))
        return (shown + (f", others {rest}" if rest else "")) or "none"

    return [
        f"fuzz: {len(reqs)} requests, seed {run.seed} (MAILSTREAM_FUZZ_SEED), hypothesis "
        f"{hypothesis.__version__}, digest {run.digest}, drawn in {run.generate_s:.1f}s",
        f"  published: {sum(run.published.values())} records ({size / 1e6:.1f} MB of requests; "
        f"{sum(f.repeat is not None for f in reqs)} published twice) in {run.publish_s:.1f}s: "
        + ", ".join(f"{k.lower()} {n}" for k, n in sorted(run.published.items())),
        f"  sizes: median {statistics.median(sizes):.0f} B, max {max(sizes)} B, over 900 KiB "
        f"{sum(n > 900 * 1024 for n in sizes)}, cut to fit the broker "
        f"{sum('size:cut-to-fit' in f.labels for f in reqs)}",
        f"  recipients named: {sum(named)} (median {statistics.median(named):.0f}, "
        f"max {max(named)} per request), distinct per request {sum(len(f.expected) for f in reqs)}",
        f"  ended: {len(settled)} of {len(reqs)} in {run.settle_s:.1f}s after the last publish "
        f"(bound {run.bound_s:.0f}s); slowest request {max(took, default=0):.1f}s",
        f"  rejected as a whole: {sum(rejected.values())}: {top(rejected)}",
        f"  recipient terminal events: {sum(terminal.values())}: {top(terminal)}",
        f"  dead letters (email.requested.dlq): {sum(letters.values())}: {top(letters, 4)}",
        f"  quarantined (mailstream.internal.dlq): {len(ours)} of this run "
        f"({run.quarantined_total} in the topic): {top(classes, 6)}"
        + "".join(f"\n    {n}x {k}" for k, n in quarantined_why(run).most_common(8)),
        f"  smtp: {sum(f.messages for f in reqs)} messages inspected, "
        f"{sum(bool(f.wire) for f in reqs)} requests with problems on the wire, "
        f"{len(run.global_problems)} smuggled transactions",
        f"  services: exited {len(run.dead)}, restarted {len(run.restarted)}"
        + "".join(f"\n    {d}" for d in run.dead),
        f"  unended {len(reqs) - len(settled)}, "
        f"inconsistent {sum(bool(f.problems()) for f in reqs)}",
        f"  kinds drawn: {len(drawn & label_universe())} of {len(label_universe())}"
        + (f"; never: {never[:12]}" if never else ""),
        *slowest_shown(run),
    ]


def slowest(requests: list[Fuzzed], n: int = 3) -> list[Fuzzed]:
    """The requests that took longest to end, slowest first."""
    timed = [(t, f.index, f) for f in requests if (t := f.took_s()) is not None]
    return [f for _, _, f in sorted(timed, key=lambda x: (-x[0], x[1]))[:n]]


def slowest_shown(run: FuzzRun) -> list[str]:
    """The slowest requests with their events and what the services logged of them: why a run
    that ends in time still ends later than it does alone."""
    lines = []
    for f in slowest(run.requests):
        lines.append(f"  slow #{f.index} ({f.took_s():.1f}s): {f.shape()[:300]}; {f.summary()}")
        lines += [f"    {line}" for line in run.trails.get(f.index, [])[:12]]
    return lines
