"""A lead as a result shows it in a sample: read tools and write previews both show some.

Its own module so that a read tool's result does not import the write pipeline."""

from __future__ import annotations

from typing import Any, Final

from pydantic import BaseModel, field_validator

NAME_MAX: Final = 80  # characters of a name shown: Close sets no short limit on lead names


def clipped(text: str | None, limit: int = NAME_MAX) -> str | None:
    """`text` cut to `limit` characters (its last one an ellipsis when cut)."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def clipped_texts(value: Any, limit: int) -> Any:
    """`value` with every text in it (in dicts and lists too) cut to `limit` characters: what
    a preview shows of values a digest binds whole."""
    if isinstance(value, dict):
        return {k: clipped_texts(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [clipped_texts(v, limit) for v in value]
    return clipped(value, limit) if isinstance(value, str) else value


class LeadSample(BaseModel):
    id: str
    display_name: str | None = None
    status_label: str | None = None

    @field_validator("display_name", "status_label")
    @classmethod
    def _short(cls, value: str | None) -> str | None:
        """A sample shows a few leads; a 3,000-character name would fill the result."""
        return clipped(value)
