"""Helpers for the sentences close-mcp says to a person (previews, notes, summaries)."""

from __future__ import annotations


def leads(n: int) -> str:
    return f"{n} lead" if n == 1 else f"{n} leads"


def sentences(*parts: tuple[object, str]) -> list[str]:
    """The sentences whose condition holds, in order: a message's optional parts, each
    written once beside the count or flag that calls for it."""
    return [sentence for condition, sentence in parts if condition]
