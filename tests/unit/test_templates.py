"""Template rendering in the bounded sandbox, and locale fallback (no sockets)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from services.common.avro.records import TemplateRef
from services.mail.render import RenderError, RenderLimits, render
from services.mail.templates import (
    StoredTemplate,
    TemplateStore,
    canonical_locale,
    locale_candidates,
    render_ref,
)

LIMITS = RenderLimits(max_time_ms=200, max_part_chars=512 * 1024)


def template(
    *,
    subject: str = "Your code is {{ code }}",
    text: str | None = "Hello {{ name | default('there') }}, your code is {{ code }}.",
    html: str | None = "<p>Hello {{ name | default('there') }}, <b>{{ code }}</b></p>",
    required: tuple[str, ...] = ("code",),
) -> StoredTemplate:
    return StoredTemplate(
        tenant_id="acme",
        name="otp",
        version=1,
        locale="en",
        default_locale="en",
        subject=subject,
        text=text,
        html=html,
        required=required,
        content_hash="x",
        content_version=1,
    )


def test_renders_all_parts_with_default_filter() -> None:
    out = render(template(), '{"code": "123456"}', limits=LIMITS)
    assert out.subject == "Your code is 123456"
    assert out.text == "Hello there, your code is 123456."
    assert out.html == "<p>Hello there, <b>123456</b></p>"


def test_autoescape_applies_to_html_only() -> None:
    out = render(template(), '{"code": "<b>&", "name": "Tom & <Jerry>"}', limits=LIMITS)
    assert out.subject == "Your code is <b>&"
    assert out.text == "Hello Tom & <Jerry>, your code is <b>&."
    assert out.html == "<p>Hello Tom &amp; &lt;Jerry&gt;, <b>&lt;b&gt;&amp;</b></p>"


def test_text_or_html_may_be_absent() -> None:
    out = render(template(html=None), '{"code": 1}', limits=LIMITS)
    assert out.html is None and out.text is not None


@pytest.mark.parametrize("data", [None, "{}", '{"code": null}', '{"name": "x"}'])
def test_required_variable_missing(data: str | None) -> None:
    with pytest.raises(RenderError) as err:
        render(template(), data, limits=LIMITS)
    assert err.value.reason == "template_data_missing"
    assert "code" in err.value.message


@pytest.mark.parametrize("data", ["not json", "[1, 2]", '"code"', "42", "{" * 100_000])
def test_data_must_be_a_json_object(data: str) -> None:
    with pytest.raises(RenderError) as err:
        render(template(required=()), data, limits=LIMITS)
    assert err.value.reason == "template_data_invalid"


def test_undefined_variable_without_default_fails() -> None:
    with pytest.raises(RenderError) as err:
        render(template(subject="s", text="{{ nope }}", required=()), "{}", limits=LIMITS)
    assert err.value.reason == "render_failed"


@pytest.mark.parametrize(
    "subject",
    [
        "Hello {{ name }}",  # name carries CR/LF from the data
        "Line one\nline two {{ code }}",
    ],
)
def test_subject_with_a_line_break_is_rejected(subject: str) -> None:
    data = '{"code": "1", "name": "x\\r\\nBcc: victim@example.com"}'
    with pytest.raises(RenderError) as err:
        render(template(subject=subject), data, limits=LIMITS)
    assert err.value.reason == "render_failed"


def test_subject_surrounding_whitespace_is_trimmed() -> None:
    out = render(template(subject="  Hi {{ code }}\n"), '{"code": 1}', limits=LIMITS)
    assert out.subject == "Hi 1"


HOSTILE = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ joiner.__init__.__globals__.os }}",
    "{{ x|attr('__class__') }}",
    "{{ x|attr('__class__')|attr('__base__') }}",
    "{{ '%s'|format(x.__class__) }}",
    "{{ '{0.__class__.__base__}'.format(x) }}",
    "{{ '%999999999s'|format(1) }}",
    "{{ '%999999999s' % 1 }}",
    "{{ '{:999999999}'.format(1) }}",
    "{{ '{:{}}'.format(1, 999999999) }}",
    "{{ range(10**9)|list }}",
    "{{ 'a' * 10**9 }}",
    "{{ 'a' * 1000000000 }}",
    "{{ [1] * 10**8 }}",
    "{{ 10 ** 1000000 }}",
    "{{ (10 ** 100000) ** 100000 }}",
    "{{ 'a'|center(1000000000) }}",
    "{{ 'a'.ljust(1000000000) }}",
    "{{ ('a' * 500000)|replace('a', 'aa') }}",
    "{{ ('a' * 500000).replace('a', 'aa') }}",
    "{{ 'x'|slice(1000000000)|list }}",
    "{% set y = 'a' * 500000 %}{{ y ~ y }}",
    "{% set y = 'a' * 500000 %}{{ y + y }}",
    "{% set y = 'a' * 500000 %}{% set z %}{% for i in range(100000) %}{{ y }}{% endfor %}"
    "{% endset %}{{ z|length }}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ j }}{% endfor %}{% endfor %}",
    "{% for a in items %}{% for b in range(100000) %}{% for c in range(100000) %}"
    "{% endfor %}{% endfor %}{% endfor %}",
    "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",  # 10 MB of output
    "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "{{ lipsum(100000) }}",
    "{{ self.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__ }}",
]


@pytest.mark.parametrize("source", HOSTILE)
@pytest.mark.parametrize("part", ["text", "html"])
def test_hostile_templates_fail_fast(source: str, part: str) -> None:
    parts: dict[str, Any] = {"text": None, "html": None, part: source}
    # The limit is the rendering thread's CPU time (time.thread_time): this thread's, not the
    # process's, which counts the Kafka and Cassandra client threads of the test session too.
    started = time.thread_time()
    with pytest.raises(RenderError) as err:
        render(
            template(subject="s", required=(), **parts),
            '{"x": "a", "items": [1, 2, 3]}',
            limits=LIMITS,
        )
    assert err.value.reason == "render_failed"
    assert time.thread_time() - started < 2.0


def test_time_limit_is_the_configured_one() -> None:
    slow = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    started = time.monotonic()
    with pytest.raises(RenderError, match="time limit"):
        render(
            template(subject="s", text=slow, html=None, required=()),
            "{}",
            limits=RenderLimits(max_time_ms=50),
        )
    assert time.monotonic() - started < 5  # it stops at all: 10^10 iterations would not


def test_the_limit_is_cpu_time_so_a_starved_render_still_succeeds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The router renders on a worker thread; under load it waits for the GIL and the cores
    while the wall clock runs (a benchmark saw a trivial receipt rejected render_failed).
    A wall clock that leaps 10 s on every reading must not matter."""
    leaps = iter(range(0, 10**9, 10))
    monkeypatch.setattr(time, "monotonic", lambda: float(next(leaps)))
    monkeypatch.setattr(time, "time", lambda: float(next(leaps)))
    out = render(template(), '{"code": "123456"}', limits=LIMITS)
    assert out.subject == "Your code is 123456"


def test_ordinary_templates_within_limits_render() -> None:
    text = (
        "{% for item in items %}{{ loop.index }}. {{ item.name|title }} x{{ item.qty }}\n"
        "{% endfor %}Total: {{ '%.2f'|format(total) }} {{ 'ok'.upper() }} {{ notes|wordwrap(20) }}"
    )
    data = '{"items": [{"name": "tea", "qty": 2}], "total": 3.5, "notes": "' + "word " * 50 + '"'
    data += "}"
    out = render(template(subject="s", text=text, html=None, required=()), data, limits=LIMITS)
    assert out.text is not None and out.text.startswith("1. Tea x2\nTotal: 3.50 OK")


def test_large_but_allowed_output() -> None:
    out = render(
        template(subject="s", text="{{ 'x' * 400000 }}", html=None, required=()),
        "{}",
        limits=LIMITS,
    )
    assert out.text is not None and len(out.text) == 400_000


def test_syntax_error_is_render_failed() -> None:
    with pytest.raises(RenderError) as err:
        render(template(subject="s", text="{% for %}", required=()), "{}", limits=LIMITS)
    assert err.value.reason == "render_failed"


@pytest.mark.parametrize(
    ("requested", "default", "expected"),
    [
        ("pt-BR", "en", ["pt-BR", "pt", "en"]),
        ("pt_br", "en", ["pt-BR", "pt", "en"]),
        ("pt", "en", ["pt", "en"]),
        ("en-GB", "en", ["en-GB", "en"]),
        ("en", "en", ["en"]),
        (None, "en", ["en"]),
        ("", "de", ["de"]),
        ("zh-hant-tw", "en", ["zh-Hant-TW", "zh", "en"]),
        ("not a locale!", "en", ["en"]),
    ],
)
def test_locale_candidates(requested: str | None, default: str, expected: list[str]) -> None:
    assert locale_candidates(requested, default) == expected


def test_canonical_locale() -> None:
    assert canonical_locale("PT-br") == "pt-BR"
    assert canonical_locale("es-419") == "es-419"


class _Row:
    def __init__(self, **kw: Any) -> None:
        self.__dict__.update(kw)


class FakeSession:
    """Answers the store's three queries from a dict of rows; counts calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.heads = {1: "en", 2: "en"}
        self.bodies = {("en", 1): "Hi v1", ("pt", 1): "Oi v1", ("en", 2): "Hi v2"}

    async def execute(self, cql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        self.calls += 1
        if "FROM template_versions" in cql:
            versions = [params[2]] if len(params) == 3 else [max(self.heads)]
            known = [v for v in versions if v in self.heads]
            return [_Row(version=v, default_locale=self.heads[v]) for v in known]
        _, _, locale, upto = params
        found = sorted((v for (loc, v) in self.bodies if loc == locale and v <= upto), reverse=True)
        return [
            _Row(
                version=v,
                subject=self.bodies[(locale, v)],
                text_body=self.bodies[(locale, v)],
                html_body=None,
                required=[],
                content_hash="h",
            )
            for v in found[:1]
        ]


def test_store_resolves_versions_fallback_and_caches() -> None:
    session = FakeSession()
    clock = [0.0]
    store = TemplateStore(session=session, monotonic=lambda: clock[0])  # type: ignore[arg-type]

    async def go(version: int | None, locale: str | None) -> StoredTemplate | None:
        return await store.resolve(
            tenant_id="acme", ref=TemplateRef(name="otp", version=version, locale=locale)
        )

    latest_pt = asyncio.run(go(None, "pt-BR"))
    assert latest_pt is not None
    assert (latest_pt.version, latest_pt.locale, latest_pt.subject) == (2, "pt", "Oi v1")
    latest_fr = asyncio.run(go(None, "fr"))
    assert latest_fr is not None and (latest_fr.locale, latest_fr.subject) == ("en", "Hi v2")
    pinned = asyncio.run(go(1, None))
    assert pinned is not None and pinned.subject == "Hi v1"
    assert asyncio.run(go(9, None)) is None

    calls = session.calls
    asyncio.run(go(None, "pt-BR"))
    assert session.calls == calls  # cached
    session.heads[3] = "en"
    session.bodies[("pt", 3)] = "Oi v3"
    clock[0] += 6  # the "latest" entry has expired, the pinned one has not
    refreshed = asyncio.run(go(None, "pt-BR"))
    assert refreshed is not None and refreshed.subject == "Oi v3"
    calls = session.calls
    asyncio.run(go(1, None))
    assert session.calls == calls


def test_render_ref_not_found() -> None:
    store = TemplateStore(session=FakeSession())  # type: ignore[arg-type]
    with pytest.raises(RenderError) as err:
        asyncio.run(render_ref(store, "acme", TemplateRef(name="otp", version=7), "{}", LIMITS))
    assert err.value.reason == "template_not_found"
    out = asyncio.run(render_ref(store, "acme", TemplateRef(name="otp"), "{}", LIMITS))
    assert out.subject == "Hi v2"


def test_out_of_time_once_is_tried_again_twice_is_render_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import services.mail.render as render_module

    real = render_module._render_once
    calls: list[int] = []

    def unlucky_once(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise render_module.RenderTimeExceeded("render time limit exceeded")
        return real(*args, **kwargs)

    monkeypatch.setattr(render_module, "_render_once", unlucky_once)
    assert render(template(), '{"code": "1"}', limits=LIMITS).subject == "Your code is 1"
    assert len(calls) == 2

    def always(*_: Any, **__: Any) -> Any:
        raise render_module.RenderTimeExceeded("render time limit exceeded")

    monkeypatch.setattr(render_module, "_render_once", always)
    with pytest.raises(RenderError, match="time limit") as failed:
        render(template(), '{"code": "1"}', limits=LIMITS)
    assert failed.value.reason == "render_failed"
