"""`cli.commands.restore` (`close-mcp restore`) called directly with its terminal: confirmed by
the typed count, refused without a terminal, run twice it restores once, unknown outcomes held
back until --retry-unknown, and a backup named by job id read from the store under its lock."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import anyio
import pytest

from close_mcp.cli import commands
from close_mcp.safety.restore import Progress, Report, progress_path
from close_mcp.safety.snapshot_reader import read_backup
from close_mcp.sandbox import Sandbox
from tests.safety_net import backup_file, mode_of

pytestmark = pytest.mark.anyio


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _args(path: Path, *, yes: bool = False, retry_unknown: bool = False) -> argparse.Namespace:
    return argparse.Namespace(backup=str(path), sandbox=True, yes=yes, retry_unknown=retry_unknown)


def test_restore_command_confirms_by_count_and_reports_old_to_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    path = backup_file(tmp_path, Sandbox(n_leads=10), 3)
    out, err = io.StringIO(), io.StringIO()
    code = commands.restore(_args(path), stdin=Terminal("3\n"), stdout=out, stderr=err)
    assert code == 0
    report = json.loads(out.getvalue())
    old = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert sorted(report["restored"]) == sorted(old)
    assert report["failed"] == {}
    assert "Type the number of leads to restore (3) to go ahead: " in err.getvalue()
    assert err.getvalue().startswith(f"Backup {path}: 3 leads with ")
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    # One line per re-created lead, each naming the new lead and the backup it came from.
    assert [(a["tool"], a["outcome"], a["path"], a["matched"], a["snapshot"]) for a in audit] == [
        ("restore", "submitted", "/lead/", 1, str(path))
    ] * 3
    assert sorted(a["job_id"] for a in audit) == sorted(report["restored"].values())


def test_restore_command_refuses_without_terminal_or_with_a_wrong_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", "off")
    path = backup_file(tmp_path, Sandbox(n_leads=10), 2)
    out, err = io.StringIO(), io.StringIO()
    assert commands.restore(_args(path), stdin=io.StringIO("2\n"), stdout=out, stderr=err) == 1
    assert "stdin is not a terminal" in err.getvalue()
    assert out.getvalue() == ""
    err = io.StringIO()
    assert commands.restore(_args(path), stdin=Terminal("3\n"), stdout=out, stderr=err) == 1
    assert "not restored (typed '3', expected 2)" in err.getvalue()
    assert out.getvalue() == ""
    code = commands.restore(_args(path, yes=True), stdin=io.StringIO(""), stdout=out, stderr=err)
    assert code == 0
    assert len(json.loads(out.getvalue())["restored"]) == 2


def test_restore_command_reports_a_backup_that_is_not_utf8(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", "off")
    path = tmp_path / "bulkdelete_test.jsonl"
    path.write_bytes(b'{"id": "lead_1", "name": "\xff"}\n')
    out, err = io.StringIO(), io.StringIO()
    code = commands.restore(_args(path, yes=True), stdin=io.StringIO(""), stdout=out, stderr=err)
    assert code == 1
    assert err.getvalue().startswith("close-mcp: cannot read the backup: ")
    assert out.getvalue() == ""


def test_restore_command_run_twice_restores_once_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", "off")
    path = backup_file(tmp_path, Sandbox(n_leads=10), 3)
    out, err = io.StringIO(), io.StringIO()
    assert commands.restore(_args(path), stdin=Terminal("3\n"), stdout=out, stderr=err) == 0
    first = json.loads(out.getvalue())
    assert len(first["restored"]) == 3
    # --sandbox keeps its own record, so trying the command never hides a real restore.
    journal = tmp_path / "bulkdelete_test.jsonl.sandbox-restored.jsonl"
    assert mode_of(journal) == 0o600
    assert not (tmp_path / "bulkdelete_test.jsonl.restored.jsonl").exists()

    out, err = io.StringIO(), io.StringIO()
    code = commands.restore(_args(path), stdin=Terminal(""), stdout=out, stderr=err)
    assert code == 0
    assert err.getvalue().splitlines()[1] == (
        f"3 of them were restored by an earlier run (recorded in {journal}): skipped."
    )
    assert "Type the number" not in err.getvalue()
    report = json.loads(out.getvalue())
    assert report == {
        "restored": {},
        "already_restored": first["restored"],
        "failed": {},
        "outcome_unknown": {},
    }
    assert err.getvalue().endswith(
        "close-mcp: restored 0 of 3 leads; 3 already restored by an earlier run\n"
    )


def test_restore_command_holds_back_unknown_leads_until_retry_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", "off")
    path = backup_file(tmp_path, Sandbox(n_leads=10), 2)
    old = [lead["id"] for lead in read_backup(path)]
    progress = Progress.load(path, sandbox=True)
    # A run killed while this lead's POST was out.
    anyio.run(lambda: progress.record(old[0], "sending"))
    progress.close()
    with progress_path(path, sandbox=True).open("a") as journal:
        journal.write('{"old_id": "lead_x", "event": "resto')  # and its last line cut short
    out, err = io.StringIO(), io.StringIO()
    code = commands.restore(_args(path, yes=True), stdin=io.StringIO(""), stdout=out, stderr=err)
    assert code == 1
    assert (
        "1 of them had an unknown outcome in an earlier run (Close may have created them): "
        "not sent again." in err.getvalue()
    )
    report = json.loads(out.getvalue())
    assert list(report["restored"]) == [old[1]]
    assert list(report["outcome_unknown"]) == [old[0]]
    assert "outcome unknown: see 'outcome_unknown'" in err.getvalue()

    from close_mcp.cli.main import main

    assert main(["restore", str(path), "--sandbox", "--yes", "--retry-unknown"]) == 0
    captured = capsys.readouterr()
    assert list(json.loads(captured.out)["restored"]) == [old[0]]
    assert "are sent again (--retry-unknown)" in captured.err


def test_restore_command_by_job_id_holds_the_backup_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`close-mcp restore bulkdelete_...` reads the backup from the store; while another
    restore of it holds its lock, the command says so, exits 1 and sends nothing."""
    from close_mcp.store import open_store

    store_path = tmp_path / "state.sqlite3"
    monkeypatch.setenv("CLOSE_MCP_AUDIT_LOG", "off")
    monkeypatch.setenv("CLOSE_MCP_STORE", str(store_path))
    rows = read_backup(backup_file(tmp_path, Sandbox(n_leads=10), 2))
    job_id = "bulkdelete_held0"

    async def seed() -> None:
        store = open_store(store_path)
        await store.extend("backup-leads:held0", [json.dumps(r) for r in rows])
        header = {"version": 2, "job_id": job_id, "leads_key": "backup-leads:held0"}
        await store.put(f"backup:{job_id}", json.dumps({**header, "leads_count": len(rows)}))
        await store.add(f"lock:restore:{job_id}", "someone-else", ttl_s=60)
        await store.aclose()

    anyio.run(seed)
    args = argparse.Namespace(backup=job_id, sandbox=False, yes=True, retry_unknown=False)
    monkeypatch.setenv("CLOSE_API_KEY", "api_unused")
    monkeypatch.setenv("CLOSE_API_BASE_URL", "http://127.0.0.1:9/api/v1/")  # never reached
    out, err = io.StringIO(), io.StringIO()
    code = commands.restore(args, stdin=io.StringIO(""), stdout=out, stderr=err)
    assert code == 1
    assert err.getvalue() == (
        f"close-mcp: not restored: another restore of store:backup:{job_id} is running (here "
        "or on a machine sharing the state store); nothing was sent. Let it finish, then run "
        "this again: it skips what that run restored.\n"
    )
    assert out.getvalue() == ""


def test_the_summary_line_names_each_outcome_that_happened_in_order() -> None:
    report = Report(
        restored={"lead_a": "lead_n"},
        already_restored={"lead_b": "lead_m"},
        failed={"lead_c": "400", "lead_d": "400"},
        outcome_unknown={"lead_e": "timeout"},
        stopped="the progress file could not be written",
    )
    assert commands.restore_summary(report, 6) == (
        "close-mcp: restored 1 of 6 leads; 1 already restored by an earlier run; 2 failed "
        "(see 'failed'; a re-run sends them again); 1 outcome unknown: see 'outcome_unknown', "
        "check in Close whether they exist, then --retry-unknown sends them again; stopped: the "
        "progress file could not be written"
    )
    assert commands.restore_summary(Report(), 0) == "close-mcp: restored 0 of 0 leads"
