"""A lead as a result shows it in a sample: read tools and write previews both show some.

Its own module so that a read tool's result does not import the write pipeline."""

from __future__ import annotations

from pydantic import BaseModel


class LeadSample(BaseModel):
    id: str
    display_name: str | None = None
    status_label: str | None = None
