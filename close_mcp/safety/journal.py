"""The journal of a restore: what earlier runs did with a backup's leads, so a re-run never
creates a lead twice (see `close_mcp.safety.restore` for when each event is written).

It is one JSON line per event, in the store under the backup's identity (a copy of the backup
sees it), or in the file beside a backup file (`--sandbox`, or a store that ends with the
process). Every event is also appended to one list for every restore (`journal_key(LEADS)`),
keyed by the old lead id: a lead brought back from one source (a backup, Close's event log)
is never brought back again from another.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, Final, Literal

from close_mcp.errors import SafetyNetError
from close_mcp.safety.backups import Backup
from close_mcp.safety.snapshot_writer import STORE_REF
from close_mcp.store import StateStore
from close_mcp.store.sqlite import MEMORY, SQLiteStore

IN_FLIGHT: Final = "the restore stopped while this lead's POST was in flight"
Event = Literal["sending", "restored", "failed", "outcome_unknown"]
# The journal every store-kept restore also appends to, whatever its source (see above).
LEADS: Final = "leads"


def _forgets(store: StateStore) -> bool:
    """A store that ends with this process (`:memory:`): a journal there would not outlive
    the run."""
    return isinstance(store, SQLiteStore) and store.path == MEMORY


def progress_path(backup: Path, *, sandbox: bool = False) -> Path:
    """The progress file of a backup (see the module docstring)."""
    return backup.with_name(
        backup.name + (".sandbox-restored" if sandbox else ".restored") + ".jsonl"
    )


def journal_key(backup_id: str, *, sandbox: bool = False) -> str:
    """The store journal of a backup, by its identity (or, as earlier versions named it,
    by its delete's job id); see the module docstring."""
    return f"{'sandbox-' if sandbox else ''}restored:{backup_id}"


class Progress:
    """What earlier runs did with a backup's leads, and the journal this run appends to: a
    file (`path`), or a list in the store (`store`, `key`)."""

    def __init__(
        self,
        path: Path | None,
        *,
        store: StateStore | None = None,
        key: str | None = None,
        shared: str | None = None,
    ) -> None:
        self.path = path
        self.store = store
        self.key = key
        self.shared = shared  # the journal of every restore's leads, appended to as well
        self.restored: dict[str, str] = {}  # old id -> new id
        self.unknown: dict[str, str] = {}  # old id -> why
        self._file: IO[str] | None = None
        self._torn = False  # the file ends without a newline: a line cut short by a crash

    @property
    def where(self) -> str:
        return str(self.path) if self.path is not None else STORE_REF + str(self.key)

    @classmethod
    def load(cls, backup: Path, *, sandbox: bool = False) -> Progress:
        """The journal file beside a backup file."""
        progress = cls(progress_path(backup, sandbox=sandbox))
        progress._read_file(progress_path(backup, sandbox=sandbox))
        return progress

    @classmethod
    async def open(cls, store: StateStore, backup: Backup, *, sandbox: bool = False) -> Progress:
        """The journal of `backup`, in the store under its identity (its content): a restore
        from a copy of the backup, under any name, sees what every earlier run did. What
        earlier versions journaled is read too (the file beside the backup, the list named
        after its delete). A backup file restored `--sandbox`, or with a store that ends with
        the process, keeps its journal in the file beside it, as before."""
        if backup.path is not None and not backup.in_store and (sandbox or _forgets(store)):
            return cls.load(backup.path, sandbox=sandbox)
        shared = journal_key(LEADS, sandbox=sandbox)
        key = journal_key(backup.identity, sandbox=sandbox)
        progress = cls(None, store=store, key=key, shared=shared)
        # Another source's restores first: this backup's own journal has the last word.
        for line in await store.lines(shared):
            progress._read_line(line)
        if backup.path is not None:
            progress._read_file(progress_path(backup.path, sandbox=sandbox))
            progress._torn = False
        if backup.job_id is not None:
            for line in await store.lines(journal_key(backup.job_id, sandbox=sandbox)):
                progress._read_line(line)
        for line in await store.lines(progress.where.removeprefix(STORE_REF)):
            progress._read_line(line)
        return progress

    def _read_file(self, path: Path) -> None:
        try:
            text = path.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise SafetyNetError(f"The progress file {path} cannot be read: {exc}") from exc
        self._torn = bool(text) and not text.endswith("\n")
        for line in text.split("\n"):
            self._read_line(line)

    def _read_line(self, line: str) -> None:
        try:
            event = json.loads(line)
        except ValueError:
            return  # empty, or cut short by a crash (its `sending` line stands)
        if isinstance(event, dict) and isinstance(event.get("old_id"), str):
            self._apply(event)

    def _apply(self, event: dict[str, Any]) -> None:
        old, kind = event["old_id"], event.get("event")
        if kind == "sending":
            self.unknown[old] = IN_FLIGHT
        elif kind == "restored" and isinstance(event.get("new_id"), str):
            self.restored[old] = event["new_id"]
            self.unknown.pop(old, None)
        elif kind == "outcome_unknown":
            self.unknown[old] = str(event.get("reason") or "outcome unknown")
        elif kind == "failed":
            self.unknown.pop(old, None)

    async def record(
        self, old_id: str, event: Event, *, new_id: str | None = None, reason: str | None = None
    ) -> None:
        """Append one event: to the store, or to the file, synced to disk (the file is
        created 0600 on first use)."""
        line: dict[str, Any] = {"old_id": old_id, "event": event}
        if new_id is not None:
            line["new_id"] = new_id
        if reason is not None:
            line["reason"] = reason
        if self.store is not None and self.key is not None:
            await self.store.append(self.key, json.dumps(line))
            if self.shared is not None:
                await self.store.append(self.shared, json.dumps(line))
        else:
            self._write(json.dumps(line) + "\n")
        self._apply(line)

    def _write(self, text: str) -> None:
        assert self.path is not None
        if self._file is None:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)
            self._file = os.fdopen(fd, "a", encoding="ascii")
            if self._torn:  # end the cut line, so this one stays readable
                self._file.write("\n")
                self._torn = False
        self._file.write(text)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def sends(self, lead: dict[str, Any], *, retry_unknown: bool) -> bool:
        """Whether a run POSTs `lead`: not restored yet, and not of unknown outcome unless
        asked."""
        return lead["id"] not in self.restored and (retry_unknown or lead["id"] not in self.unknown)
