"""The base of the specs operators write (tenants files) and the services read back stored."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator

# The validation context of a spec read back from Cassandra rather than from a file.
STORED = {"stored": True}


class SpecModel(BaseModel):
    """A file must name only known fields (a misspelt one is an error, not ignored). A spec
    read back with `context=STORED` leaves out the fields this version does not know: a newer
    CLI may have written them while older services still run (a rolling upgrade)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _known_fields_when_stored(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context and info.context.get("stored") and isinstance(data, dict):
            return {k: v for k, v in data.items() if k in cls.model_fields}
        return data
