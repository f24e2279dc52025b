"""The reason codes have one home: the Reason enum, its reference doc, and nowhere else."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.avro.records import EventType
from services.common.reasons import Reason
from services.common.reasons.doc import DOC, REGENERATE, render
from services.common.reasons.info import Service, Suppresses
from services.event_publisher.config import SuppressionSettings
from services.sender.outcome import CATEGORIES, HARD_CATEGORIES

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"
HOME = SERVICES / "common" / "reasons"
CODES = frozenset(r.value for r in Reason)
# Strings equal to a reason code that mean something else, by (file, value).
NOT_REASONS = {
    # keys of _CONNECTION_ERRORS: connection-error kinds of smtp.py, mapped to categories
    ("services/sender/outcome.py", "routing"),
    ("services/sender/outcome.py", "tls"),
    ("services/sender/outcome.py", "authentication"),
    ("services/cli/suppressions.py", "expired"),  # the state column of a lapsed suppression
    ("services/sender/shaping.py", "other"),  # the catch-all provider class
}
# A string a reason code would look like, where the code's context says a reason belongs.
CODE_SHAPE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)+")
_LOG_LEVELS = {"debug", "info", "warning", "error", "exception", "critical", "msg"}


def test_the_committed_reference_is_what_the_enum_renders() -> None:
    path = ROOT / DOC
    assert path.exists(), f"{DOC} is missing: run `{REGENERATE}` and commit it"
    assert path.read_text(encoding="utf-8") == render(), (
        f"{DOC} is stale: run `{REGENERATE}` and commit it"
    )


def _signatures(trees: dict[str, ast.Module]) -> dict[str, set[int]]:
    """Callable name -> the positions of its parameters that hold a reason, over services/:
    functions, classes' __init__, and dataclasses' fields in order."""
    found: dict[str, set[int]] = {}
    for tree in trees.values():
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                names = [a.arg for a in node.args.posonlyargs + node.args.args]
                names = names[1:] if names[:1] in (["self"], ["cls"]) else names
            elif isinstance(node, ast.ClassDef):
                init = [
                    n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"
                ]
                if init:
                    names = [a.arg for a in init[0].args.args[1:]]
                else:
                    names = [
                        n.target.id
                        for n in node.body
                        if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)
                    ]
            else:
                continue
            positions = {i for i, name in enumerate(names) if "reason" in name}
            if positions:
                found.setdefault(node.name, set()).update(positions)
    return found


def _callee(call: ast.Call) -> str | None:
    if isinstance(call.func, ast.Name):
        return call.func.id
    if isinstance(call.func, ast.Attribute):
        return call.func.attr
    return None


def _text(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _holds_reason(node: ast.AST) -> bool:
    """A name, attribute or subscript whose name says it is a reason."""
    name = getattr(node, "id", None) or getattr(node, "attr", None)
    return isinstance(name, str) and "reason" in name.lower()


def _exempt(tree: ast.Module) -> set[int]:
    """Strings in the shape of a code that are not reasons: docstrings, structlog event names
    (the first argument of log.info ...) and connection_error kinds (sender/smtp.py)."""
    exempt: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            exempt.add(id(body[0].value))
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in _LOG_LEVELS and node.args:
                exempt.add(id(node.args[0]))
            exempt.update(id(k.value) for k in node.keywords if k.arg == "connection_error")
    return exempt


def _reason_slots(node: ast.AST, signatures: dict[str, set[int]]) -> list[ast.AST]:
    """The expressions a reason goes into, in this node: reason= arguments, a positional
    argument to a reason parameter, assignments and dict entries named reason, comparisons
    with a reason, what a function named for a reason returns, and NAME = "name" (the way
    codes were defined before they had one home)."""
    if isinstance(node, ast.Call):
        slots = [k.value for k in node.keywords if k.arg and "reason" in k.arg.lower()]
        positions = signatures.get(_callee(node) or "", set())
        return slots + [a for i, a in enumerate(node.args) if i in positions]
    if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            name = getattr(target, "id", None) or getattr(target, "attr", "")
            if _holds_reason(target) or name.lower() == _text(node.value):
                return [node.value]
    if isinstance(node, ast.Dict):
        return [v for k, v in zip(node.keys, node.values, strict=True) if _text(k) == "reason"]
    if isinstance(node, ast.Compare):
        sides = [node.left, *node.comparators]
        return sides if any(_holds_reason(side) for side in sides) else []
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and "reason" in node.name:
        return [r.value for r in ast.walk(node) if isinstance(r, ast.Return) and r.value]
    return []


def literal_reasons(trees: dict[str, ast.Module]) -> Iterator[tuple[str, int, str]]:
    """(file, line, string) of every reason code written as a string literal: any string
    equal to a known code, and any code-shaped string where a reason goes."""
    signatures = _signatures(trees)
    for rel, tree in trees.items():
        exempt = _exempt(tree)
        for node in ast.walk(tree):
            value = _text(node)
            if value in CODES and id(node) not in exempt:
                yield rel, getattr(node, "lineno", 0), value
            for slot in _reason_slots(node, signatures):
                for leaf in ast.walk(slot):
                    value = _text(leaf)
                    if value and CODE_SHAPE.fullmatch(value) and id(leaf) not in exempt:
                        yield rel, getattr(leaf, "lineno", 0), value


def _trees() -> dict[str, ast.Module]:
    return {
        str(path.relative_to(ROOT)): ast.parse(path.read_text(encoding="utf-8"))
        for path in sorted(SERVICES.rglob("*.py"))
        if HOME not in path.parents
    }


def test_no_reason_code_is_written_as_a_string_outside_the_enum() -> None:
    found = sorted(
        (rel, line, value)
        for rel, line, value in set(literal_reasons(_trees()))
        if (rel, value) not in NOT_REASONS
    )
    assert found == [], (
        "reason codes written as strings (use or add a member of "
        f"services.common.reasons.Reason, then run `{REGENERATE}`): {found}"
    )


NEW_CODE_WRITTEN_AS_LITERALS = """
from dataclasses import dataclass

@dataclass(frozen=True)
class Verdict:
    rejected_reason: str | None = None
    detail: str = ""

class Refused(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason

CODE_ONE = "code_one"

def refuse(emit, task):
    emit(task, reason="code_two")
    yield Verdict("code_three", "detail")
    raise Refused("code_four")

def handle(verdict):
    if verdict.rejected_reason == "code_five":
        return {"reason": "code_six"}
    log.info("code_shaped_log_event", reason=None)
    return Verdict(rejected_reason="quota")

def skip_reason(task):
    return "code_seven"
"""


def test_the_scan_finds_a_new_code_however_it_is_written() -> None:
    tree = ast.parse(NEW_CODE_WRITTEN_AS_LITERALS)
    found = {value for _rel, _line, value in literal_reasons({"services/x.py": tree})}
    assert found == {
        f"code_{n}" for n in (["one", "two", "three", "four", "five", "six", "seven"])
    } | {"quota"}


def test_every_exemption_is_still_needed() -> None:
    seen = {
        (rel, _text(node))
        for rel, tree in _trees().items()
        for node in ast.walk(tree)
        if _text(node) in CODES
    }
    assert NOT_REASONS - seen == set()


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_every_reason_has_complete_metadata(reason: Reason) -> None:
    info = reason.info
    assert CODE_SHAPE.fullmatch(reason.value) or reason.value.isalpha()
    assert reason.name == reason.value.upper()
    assert info.services, "which service emits it"
    assert len(set(info.events)) == len(info.events)
    assert EventType.ACCEPTED not in info.events
    # No event type only for the reason of a suppression-list entry, never an event's.
    assert bool(info.events) == (info.suppresses is not Suppresses.IS_ENTRY)
    assert info.fate in {"terminal", "retried", "retried when DEFERRED, else terminal", "-"}
    for text in (info.means, info.action):
        assert text.strip() == text and len(text) > 10 and text.endswith((".", ")"))
        assert "|" not in text and "\n" not in text


def test_the_metadata_agrees_with_the_code_that_decides() -> None:
    """What the table says of SMTP categories and suppression is what the classifier and the
    event-publisher's default settings do."""
    smtp = {
        r
        for r in Reason
        if Service.SENDER in r.info.services and EventType.BOUNCED in r.info.events
    }
    assert CATEGORIES - {"delivered"} == smtp
    settings = SuppressionSettings()
    for reason in smtp:
        if reason in HARD_CATEGORIES:
            permanent = reason in settings.permanent_categories
            expected = Suppresses.HARD_FOR_GOOD if permanent else Suppresses.HARD_EXPIRING
        elif reason in settings.soft_categories:
            expected = Suppresses.SOFT_COUNTED
        else:
            expected = Suppresses.NO
        assert reason.info.suppresses is expected, reason
    # The numbers the Suppresses texts state.
    assert settings.hard_expiry_s == 30 * 24 * 3600
    assert (settings.soft_threshold, settings.soft_window_s, settings.soft_expiry_s) == (
        3,
        72 * 3600,
        24 * 3600,
    )
    assert settings.complaint_expiry_s == 0
    # The router's DNS bounces carry category bad_domain, suppressed for good.
    assert Reason.BAD_DOMAIN in settings.permanent_categories
