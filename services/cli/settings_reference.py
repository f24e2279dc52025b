"""docs/reference/settings.md, generated from the settings models and their fields' comments."""

from __future__ import annotations

import ast
import functools
import inspect
import io
import json
import textwrap
import tokenize
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from services.cli.settings import CliSettings
from services.common.config import REPO_ROOT, CommonSettings
from services.event_publisher.config import EventPublisherSettings
from services.ingest.config import IngestSettings
from services.router.config import RouterSettings
from services.sender.config import SenderSettings

# What reads each settings class: the class each service's __main__ hands to service_main,
# and the operator CLI's.
READERS: tuple[tuple[str, type[CommonSettings]], ...] = (
    ("ingest", IngestSettings),
    ("router", RouterSettings),
    ("sender", SenderSettings),
    ("event-publisher", EventPublisherSettings),
    ("cli", CliSettings),
)
DOC_PATH = REPO_ROOT / "docs" / "reference" / "settings.md"
PREFIX = "MAILSTREAM_"
UNDESCRIBED = "(not described yet)"
_TOOL_COMMENTS = ("fmt:", "noqa", "type:")


@dataclass(frozen=True)
class Setting:
    name: str  # MAILSTREAM_...
    group: str  # the nested model's field name; "" for top-level settings
    type: str
    default: str
    meaning: str
    readers: tuple[str, ...]


@dataclass(frozen=True)
class ItemKey:
    """A key of the JSON objects a setting holds (an egress pool, a smarthost ...)."""

    model: str
    intro: str  # the model's docstring
    key: str
    type: str
    default: str
    meaning: str


@functools.cache
def field_comments(model: type[BaseModel]) -> dict[str, str]:
    """Each field's comment: the block of `#` lines right above it, then one after it."""
    source = textwrap.dedent(inspect.getsource(model))
    lines = source.splitlines()
    inline: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        text = token.string.lstrip("#").strip()
        if token.type == tokenize.COMMENT and not text.startswith(_TOOL_COMMENTS):
            if lines[token.start[0] - 1].strip().startswith("#"):
                continue
            inline[token.start[0]] = text
    comments = {}
    (cls,) = ast.parse(source).body
    assert isinstance(cls, ast.ClassDef)
    for node in cls.body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        above: list[str] = []
        row = node.lineno - 2
        while row >= 0 and lines[row].strip().startswith("#"):
            above.insert(0, lines[row].strip().lstrip("#").strip())
            row -= 1
        rows = range(node.lineno, (node.end_lineno or node.lineno) + 1)
        after = [inline[r] for r in rows if r in inline]
        text = " ".join([*above, *after])
        if text:
            comments[node.target.id] = text
    return comments


def _meaning(model: type[BaseModel], name: str) -> str:
    """The comment where the field is declared (a subclass may inherit it)."""
    for cls in model.__mro__:
        if name in inspect.get_annotations(cls):
            assert issubclass(cls, BaseModel)
            return field_comments(cls).get(name, "")
    return ""


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for arg in get_args(annotation):
        yield from _models_in(arg)


_SCALARS = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    SecretStr: "secret string",
    Path: "path",
}


def type_text(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation.__name__
    if origin is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        return " or ".join(type_text(a) for a in rest) + (
            ", optional" if len(rest) < len(args) else ""
        )
    if origin in (tuple, list):
        return f"JSON list of {type_text(args[0])}"
    if origin is dict:
        return f"JSON object of name to {type_text(args[1])}"
    raise TypeError(f"no text for the type {annotation!r}")


def _constraints(info: FieldInfo) -> str:
    parts = []
    for item in info.metadata:
        if isinstance(item, annotated_types.Ge):
            parts.append(f"≥ {item.ge}")
        elif isinstance(item, annotated_types.Gt):
            parts.append(f"> {item.gt}")
        elif isinstance(item, annotated_types.Le):
            parts.append(f"≤ {item.le}")
        elif isinstance(item, annotated_types.MinLen):
            parts.append(f"at least {item.min_length}")
    return f" ({', '.join(parts)})" if parts else ""


_UNITS = (("_ms", 1000), ("_s", 1))
_SPANS = ((86400, "day"), (3600, "h"), (60, "min"))


def _human(name: str, value: int | float) -> str:
    """A readable form of a long duration or a size, named by its field's suffix."""
    name = name.lower()
    for suffix, per_second in _UNITS:
        if name.endswith(suffix) and value >= 60 * per_second:
            seconds = value / per_second
            for span, unit in _SPANS:
                if seconds % span == 0:
                    count = int(seconds // span)
                    plural = "s" if unit == "day" and count != 1 else ""
                    return f" ({count} {unit}{plural})"
    scale = 1024 if name.endswith("_kbytes") else 1 if name.endswith("_bytes") else 0
    for size, unit in ((1024 * 1024, "MiB"), (1024, "KiB")):
        if scale and value * scale >= size and value * scale % size == 0:
            return f" ({value * scale // size} {unit})"
    return ""


def default_text(name: str, info: FieldInfo) -> str:
    value = info.get_default(call_default_factory=True)
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, int | float):
        return f"`{value}`{_human(name, value)}"
    if isinstance(value, Path):
        try:
            return f"`{value.relative_to(REPO_ROOT)}` of the installation"
        except ValueError:
            return f"`{value}`"
    if isinstance(value, tuple | list | dict):
        plain = json.loads(json.dumps(value, default=lambda m: m.model_dump(mode="json")))
        return f"`{json.dumps(plain, separators=(', ', ': '))}`"
    return f"`{value}`" if value != "" else "empty"


def settings() -> list[Setting]:
    """Every MAILSTREAM_* setting once, in the order the models declare them."""
    found: dict[str, tuple[str, Any, FieldInfo, str]] = {}
    readers: dict[str, list[str]] = {}
    for reader, model in READERS:
        for field, info in model.model_fields.items():
            nested = info.annotation
            if isinstance(nested, type) and issubclass(nested, BaseModel):
                entries = [
                    (f"{PREFIX}{field}__{sub}".upper(), field, sub_info, _meaning(nested, sub))
                    for sub, sub_info in nested.model_fields.items()
                ]
            else:
                entries = [(f"{PREFIX}{field}".upper(), "", info, _meaning(model, field))]
            for name, group, field_info, meaning in entries:
                found.setdefault(name, (group, field_info.annotation, field_info, meaning))
                readers.setdefault(name, []).append(reader)
    return [
        Setting(
            name=name,
            group=group,
            type=type_text(annotation) + _constraints(info),
            default=default_text(name, info),
            meaning=meaning,
            readers=tuple(readers[name]),
        )
        for name, (group, annotation, info, meaning) in found.items()
    ]


def item_keys() -> list[ItemKey]:
    """The keys of every model that settings hold as JSON values (lists and maps of them)."""
    models: dict[str, type[BaseModel]] = {}
    for _, model in READERS:
        for info in model.model_fields.values():
            nested = info.annotation
            if isinstance(nested, type) and issubclass(nested, BaseModel):
                for sub in nested.model_fields.values():
                    models.update((m.__name__, m) for m in _models_in(sub.annotation))
    return [
        ItemKey(
            model=name,
            intro=_docstring(model),
            key=key,
            type=type_text(info.annotation) + _constraints(info),
            default=default_text(key, info),
            meaning=_meaning(model, key),
        )
        for name, model in models.items()
        for key, info in model.model_fields.items()
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|") or UNDESCRIBED


def _sentence(text: str) -> str:
    """A comment as a table cell: its first letter capitalised (inline ones start lower case)."""
    return _cell(text[:1].upper() + text[1:])


def _readers(names: tuple[str, ...]) -> str:
    return "all" if len(names) == len(READERS) else ", ".join(names)


def _group_title(group: str) -> str:
    return f"`{PREFIX}{group.upper()}__*`" if group else "General"


def group_docs() -> dict[str, str]:
    """Each group's model docstring, by the group's field name."""
    docs: dict[str, str] = {}
    for _, model in READERS:
        for field, info in model.model_fields.items():
            nested = info.annotation
            if isinstance(nested, type) and issubclass(nested, BaseModel):
                docs.setdefault(field, _docstring(nested))
    return docs


def _docstring(model: type[BaseModel]) -> str:
    """The model's own docstring (not one inherited from BaseModel), on one line."""
    return " ".join((model.__dict__.get("__doc__") or "").split())


def render() -> str:
    out = [
        "# Settings reference",
        "",
        "<!-- Generated by `mailstream docs settings --output docs/reference/settings.md`"
        " from the settings models; edit the comments on their fields, not this file. -->",
        "",
        "Every service and the `mailstream` command read their settings from environment"
        f" variables named `{PREFIX}<SETTING>`, or `{PREFIX}<GROUP>__<SETTING>` for a setting of"
        " a group. Names are case-insensitive; lists and objects are given as JSON, for"
        " example `MAILSTREAM_DELAY_TIERS_S='[60, 300, 1200]'`. A malformed value stops the"
        " service at start with one line naming the variable. *Read by* names the processes"
        " that read a setting (`cli` is the `mailstream` command; `all` is every service and"
        " the command).",
        "",
    ]
    groups: dict[str, list[Setting]] = {"": []}  # the top-level settings first
    for setting in settings():
        groups.setdefault(setting.group, []).append(setting)
    intros = group_docs()
    for group, rows in groups.items():
        out += [f"## {_group_title(group)}", ""]
        if intros.get(group):
            out += [intros[group], ""]
        out += ["| Variable | Type | Default | Read by | Meaning |", "|---|---|---|---|---|"]
        out += [
            f"| `{s.name}` | {_cell(s.type)} | {_cell(s.default)} | {_readers(s.readers)} "
            f"| {_sentence(s.meaning)} |"
            for s in rows
        ]
        out.append("")
    keys_of: dict[str, list[ItemKey]] = {}
    for item in item_keys():
        keys_of.setdefault(item.model, []).append(item)
    if keys_of:
        out += ["## Keys of the JSON values", ""]
        out += ["Settings above whose type names one of these hold such objects.", ""]
    for model, keys in keys_of.items():
        out += [f"### {model}", ""]
        if keys[0].intro:
            out += [keys[0].intro, ""]
        out += ["| Key | Type | Default | Meaning |", "|---|---|---|---|"]
        out += [
            f"| `{k.key}` | {_cell(k.type)} | {_cell(k.default)} | {_sentence(k.meaning)} |"
            for k in keys
        ]
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"
