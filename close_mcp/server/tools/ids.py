"""Close ids as tool arguments: one definition each, so every tool that takes one checks it
with the same pattern and limit and describes it in the same words."""

from typing import Annotated

from pydantic import Field

LeadIdArg = Annotated[
    str, Field(pattern=r"^lead_[A-Za-z0-9]+$", max_length=100, description="A lead_ id.")
]
