"""What a safeguard adds to a write, as a value: the request built by a tool is not edited by
`safety/`; the tool attaches what the safeguard's prepare step returned."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from close_mcp.writes.request import Safeguard, WriteRequest


@dataclass(frozen=True)
class Guard:
    """`safeguard`: what runs before the write is sent (None: nothing will be saved);
    `notes`: what the preview says about it; `always_confirm`: the write cannot be undone,
    so it is confirmed whatever CLOSE_MCP_CONFIRM says."""

    safeguard: Safeguard | None
    notes: tuple[str, ...] = ()
    always_confirm: bool = False

    def attach(self, request: WriteRequest) -> WriteRequest:
        """A copy of `request` with this added (`request` itself is left as it was)."""
        return dataclasses.replace(
            request,
            safeguard=self.safeguard,
            notes=(*request.notes, *self.notes),
            always_confirm=request.always_confirm or self.always_confirm,
        )
