"""The audit log: one JSON line per submitted write and per refusal, private to the user.

It answers "what did the assistant do to my CRM, and when": the tool, the path and exact
body sent (or that would have been sent), how many leads matched, the outcome, the job id
and the snapshot file. It never holds the API key: nothing from the request headers is
written, only what the tools built.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, TextIO

from close_mcp.clock import Clock
from close_mcp.writes.tokens import iso

log = logging.getLogger(__name__)

# submitted: Close accepted it; refused: nothing was sent; failed: Close said no (nothing
# happened); outcome_unknown: it may or may not have happened, so it is never resent.
AuditOutcome = Literal["submitted", "refused", "failed", "outcome_unknown"]


# Who the current call acts for, when a person signed in with Close (OAuth): their Close
# user and organization, added to every audit line the call writes. Set by the server layer.
AUDIT_CALLER: ContextVar[Mapping[str, str] | None] = ContextVar("audit_caller", default=None)


class AuditLog:
    def __init__(self, path: Path | None, clock: Clock, *, stream: TextIO | None = None) -> None:
        self.path = path
        self.stream = stream  # stderr for a log collector; stdout belongs to the protocol
        self._clock = clock
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AuditLog(path={str(self.path) if self.path else None!r})"

    def record(
        self,
        *,
        tool: str,
        outcome: AuditOutcome,
        path: str | None = None,
        request: Any = None,
        matched: int | None = None,
        job_id: str | None = None,
        snapshot: str | None = None,
        reason: str | None = None,
    ) -> None:
        if self.path is None and self.stream is None:
            return
        entry: dict[str, Any] = {
            "time": iso(self._clock.time()),
            "tool": tool,
            "outcome": outcome,
            "path": path,
            "request": request,
            "matched": matched,
            "job_id": job_id,
            "snapshot": snapshot,
            "reason": reason,
        }
        if (caller := AUDIT_CALLER.get()) is not None:
            entry.update(caller)
        line = json.dumps({k: v for k, v in entry.items() if v is not None}, ensure_ascii=False)
        if self.stream is not None:
            with self._lock:
                self.stream.write(line + "\n")
                self.stream.flush()
            return
        assert self.path is not None
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as handle:
                    handle.write(line + "\n")
        except OSError as exc:
            # The write already happened (or was refused); losing the line must not hide that.
            log.error("could not write the audit log %s: %s", self.path, exc)

    def unwritable(self) -> str | None:
        """Why a line could not be written now (None: it can, or the log is off): checked
        before a write is sent, so nothing reaches Close that the log would miss."""
        if self.stream is not None:
            return "the audit stream is closed" if self.stream.closed else None
        if self.path is None:
            return None
        try:
            with self._lock:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        except OSError as exc:
            return f"the audit log {self.path} cannot be written ({exc})"
        return None

    def entries(self) -> list[dict[str, Any]]:
        if self.path is None or not self.path.exists():
            return []
        with self.path.open(encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
