"""Can a reader schema read what a writer schema wrote? The Avro resolution rules, checked."""

from __future__ import annotations

from typing import Any

_PROMOTIONS = {
    "int": {"int", "long", "float", "double"},
    "long": {"long", "float", "double"},
    "float": {"float", "double"},
    "string": {"string", "bytes"},
    "bytes": {"bytes", "string"},
}


def _kind(schema: Any) -> str:
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema["type"])
    return str(schema)


def backward_problems(reader: Any, writer: Any, path: str = "") -> list[str]:
    """Empty when data written with writer can be read with reader (parsed schemas)."""
    rk, wk = _kind(reader), _kind(writer)
    if wk == "union":
        return [p for branch in writer for p in backward_problems(reader, branch, path)]
    if rk == "union":
        for branch in reader:
            if not backward_problems(branch, writer, path):
                return []
        return [f"{path or '/'}: no branch of the reader union reads a writer {wk}"]
    if rk == wk == "record":
        problems = []
        writer_fields = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            sub = f"{path}/{field['name']}"
            if field["name"] in writer_fields:
                problems += backward_problems(
                    field["type"], writer_fields[field["name"]]["type"], sub
                )
            elif "default" not in field:
                problems.append(f"{sub}: new field without a default")
        return problems
    if rk == wk == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            return [f"{path}: reader enum lacks {sorted(missing)}"]
        return []
    if rk == wk == "array":
        return backward_problems(reader["items"], writer["items"], f"{path}[]")
    if rk == wk == "map":
        return backward_problems(reader["values"], writer["values"], f"{path}{{}}")
    if rk == wk == "fixed":
        return [] if reader["size"] == writer["size"] else [f"{path}: fixed size changed"]
    if rk in _PROMOTIONS.get(wk, {wk}) or rk == wk:
        return []
    return [f"{path or '/'}: writer {wk} cannot be read as {rk}"]
