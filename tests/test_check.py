"""`close-mcp check`: one read-only request per endpoint, each answer's shape checked, a table,
exit 1 on a difference; against the sandbox, and against the sandbox's changed-shape modes."""

from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import pytest

from close_mcp.cli.check import check, item_problems, list_problems
from close_mcp.cli.main import DRIFT_NAMES, build_parser, main
from close_mcp.clock import FakeClock
from close_mcp.close.catalog import Status
from close_mcp.sandbox import Sandbox, emails
from close_mcp.sandbox.drift import CRM_DRIFTS, DRIFTS
from close_mcp.sandbox.routes import Call
from tests.processes import clean_env, free_port, running

API = "/api/v1/"
SENDER = "sandra@sandbox.example"


def a_sandbox(drift: str | None = None) -> Sandbox:
    """A small sandbox with a job of two kinds and an email, so list items are checked too."""
    sandbox = Sandbox(n_leads=30, clock=FakeClock(), drift=drift)
    store = sandbox.store
    lead = next(iter(store.leads.values()))
    s_query = {"type": "object_type", "object_type": "lead"}
    status = next(iter(store.statuses))
    now = sandbox.clock.time()
    sandbox.jobs.create(
        "edit", {"s_query": s_query, "type": "set_lead_status", "lead_status_id": status}, now
    )
    sandbox.jobs.create("delete", {"s_query": s_query}, now)
    emails.create(store, {"lead_id": lead.id, "status": "draft", "body_text": "x"}, now)
    export = {"s_query": s_query, "format": "json", "type": "leads"}
    sandbox.crm.create_export(Call("POST", {}, {}, export, now))
    return sandbox


def run_check(sandbox: Sandbox) -> tuple[int, str]:
    out = io.StringIO()
    args = argparse.Namespace(sandbox=True, drift=sandbox.drift)
    code = check(args, env={}, stdout=out, sandbox=sandbox)
    return code, out.getvalue()


EXPECTED_REQUESTS = [
    ("GET", "me/"),
    ("GET", "status/lead/"),
    ("GET", "custom_field_schema/lead/"),
    ("GET", "email_template/"),
    ("GET", "sequence/"),
    ("GET", "connected_account/"),
    ("GET", "saved_search/"),
    ("GET", "user/"),
    ("POST", "data/search/"),
    ("POST", "data/search/"),
    ("GET", "lead/{id}/"),
    ("GET", "email_template/{id}/render/"),
    ("GET", "bulk_action/edit/"),
    ("GET", "bulk_action/email/"),
    ("GET", "bulk_action/sequence_subscription/"),
    ("GET", "bulk_action/delete/"),
    ("GET", "activity/email/"),
    ("GET", "pipeline/"),
    ("GET", "status/opportunity/"),
    ("GET", "opportunity/"),
    ("GET", "opportunity/{id}/"),
    ("GET", "task/"),
    ("GET", "task/{id}/"),
    ("GET", "export/"),
    ("GET", "export/{id}/"),
    ("GET", "event/"),
]


def test_against_the_sandbox_every_endpoint_is_ok_and_exit_0() -> None:
    sandbox = a_sandbox()
    code, out = run_check(sandbox)
    assert code == 0, out
    assert out == (
        "endpoint                                result\n"
        "GET me/                                 ok\n"
        "GET status/lead/                        ok (statuses: 5 checked)\n"
        "GET custom_field_schema/lead/           ok (fields: 7 checked)\n"  # 6 regular, 1 shared
        "GET email_template/                     ok (templates: 4 checked)\n"
        "GET sequence/                           ok (sequences: 2 checked)\n"
        "GET connected_account/                  ok (accounts: 4 checked)\n"
        "GET saved_search/                       ok (smart views: 2 checked)\n"
        "GET user/                               ok (users: 2 checked)\n"
        "POST data/search/ (count only)          ok (30 leads)\n"
        "POST data/search/ (one lead)            ok (leads: 1 checked)\n"
        "GET lead/{id}/                          ok\n"
        "GET email_template/{id}/render/         ok\n"
        "GET bulk_action/edit/                   ok (jobs: 1 checked)\n"
        "GET bulk_action/email/                  ok (jobs: none yet, only the list checked)\n"
        "GET bulk_action/sequence_subscription/  ok (jobs: none yet, only the list checked)\n"
        "GET bulk_action/delete/                 ok (jobs: 1 checked)\n"
        "GET activity/email/                     ok (emails: 1 checked)\n"
        "GET pipeline/                           ok (pipelines: 2 checked)\n"
        "GET status/opportunity/                 ok (statuses: 8 checked)\n"
        "GET opportunity/                        ok (opportunities: 10 checked)\n"
        "GET opportunity/{id}/                   ok\n"
        "GET task/                               ok (tasks: 10 checked)\n"
        "GET task/{id}/                          ok\n"
        "GET export/                             ok (exports: 1 checked)\n"
        "GET export/{id}/                        ok\n"
        "GET event/ (deleted leads)              ok (events: 3 checked)\n"
        "\n"
        "26 endpoints checked, all answer as close-mcp expects.\n"
    )


def test_the_check_only_reads_one_request_per_endpoint() -> None:
    """Only GETs and searches (POST data/search/ with a query, which change nothing)."""
    sandbox = a_sandbox()
    run_check(sandbox)
    requests = sandbox.requests
    assert all(
        r.method == "GET" or (r.method == "POST" and r.path == f"{API}data/search/")
        for r in requests
    ), [(r.method, r.path) for r in requests]
    lead = requests[10].path.split("/")[-2]
    template = requests[11].path.split("/")[-3]
    ids = {lead, template, *(r.path.split("/")[-2] for r in requests[20:27:2])}
    shown = [(r.method, r.path.removeprefix(API)) for r in requests]
    for one in ids:
        shown = [(method, path.replace(one, "{id}")) for method, path in shown]
    assert shown == EXPECTED_REQUESTS
    searches = [r.json for r in requests if r.method == "POST"]
    lead_node = {"type": "object_type", "object_type": "lead"}
    sample_fields = {"lead": ["id", "display_name", "status_label"]}
    assert searches == [
        {"query": lead_node, "include_counts": True, "results_limit": 0, "_limit": 0},
        {"query": lead_node, "_limit": 1, "_fields": sample_fields},
    ]
    contact = requests[11].query["contact_id"]
    assert requests[11].query == {"lead_id": lead, "contact_id": contact}
    assert contact in {c.id for c in sandbox.store.leads[lead].contacts}
    assert all(r.status == 200 for r in requests)


# Each changed shape, the row that must say so, and nothing else differing.
DRIFTED = {
    "status-label": "GET status/lead/                        differs: data[0].label missing "
    "(and in 4 more items)",
    "render-body": "GET email_template/{id}/render/         differs: render.body missing",
    "search-count": "POST data/search/ (count only)          differs: count.total missing",
}


@pytest.mark.parametrize("drift", sorted(set(DRIFTS) - set(CRM_DRIFTS)))
def test_a_changed_shape_names_the_endpoint_and_field_and_exits_1(drift: str) -> None:
    code, out = run_check(a_sandbox(drift))
    assert code == 1
    lines = out.splitlines()
    assert [line for line in lines if "differs" in line] == [DRIFTED[drift]]
    assert lines[-1] == "26 endpoints checked, 1 differ."


# Issue 28's endpoints: a drift of a list and its single object shows in both rows.
CRM_DRIFTED = {
    "pipeline-statuses": [
        "GET pipeline/                           differs: data[0].statuses missing "
        "(and in 1 more items)"
    ],
    "opportunity-status-type": [
        "GET status/opportunity/                 differs: data[0].type missing "
        "(and in 7 more items)"
    ],
    "opportunity-user": [
        "GET opportunity/                        differs: data[0].user_id missing "
        "(and in 9 more items)",
        "GET opportunity/{id}/                   differs: opportunity.user_id missing",
    ],
    "task-assignee": [
        "GET task/                               differs: data[0].assigned_to missing "
        "(and in 9 more items)",
        "GET task/{id}/                          differs: task.assigned_to missing",
    ],
    "export-url": [
        "GET export/                             differs: data[0].download_url missing",
        "GET export/{id}/                        differs: export.download_url missing",
    ],
    "event-previous-data": [
        "GET event/ (deleted leads)              differs: data[0].previous_data missing "
        "(and in 2 more items)"
    ],
}


@pytest.mark.parametrize("drift", sorted(CRM_DRIFTED))
def test_each_crm_probe_notices_its_drift(drift: str) -> None:
    code, out = run_check(a_sandbox(drift))
    assert code == 1
    lines = out.splitlines()
    assert [line for line in lines if "differs" in line] == CRM_DRIFTED[drift]
    assert lines[-1] == f"26 endpoints checked, {len(CRM_DRIFTED[drift])} differ."


def test_the_drift_names_match_between_the_cli_and_the_sandbox() -> None:
    assert set(DRIFT_NAMES) == set(DRIFTS) == set(DRIFTED) | set(CRM_DRIFTED)


def test_shape_problems_name_the_field_and_the_type() -> None:
    assert item_problems({"id": "stat_1", "label": 7}, "data[0]", model=Status) == [
        "data[0].label: Input should be a valid string"
    ]
    assert item_problems([], "me") == ["me is list, not an object"]
    assert list_problems({"data": {}}) == (["data is not a list"], [])
    assert list_problems({"items": []}, model=Status) == (["data missing"], [])


def test_a_failing_endpoint_is_a_difference() -> None:
    sandbox = a_sandbox()
    sandbox.inject_faults("5xx", path_prefix="sequence/", status=404)
    code, out = run_check(sandbox)
    assert code == 1
    (line,) = [line for line in out.splitlines() if "differs" in line]
    assert line.startswith("GET sequence/                           differs: request failed: ")


def test_help_says_what_it_does_and_the_variables_it_reads(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["check", "--help"])
    assert exited.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    for needed in (
        "one read-only request to each endpoint close-mcp relies on",
        "never writes",
        "CLOSE_API_KEY the Close API key to check with",
        "CLOSE_API_BASE_URL the API root (default https://api.close.com/api/v1/)",
        "Exit status: 0 when every answer has the expected shape, 1 when one differs",
    ):
        assert needed in text, needed


def test_without_a_key_it_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("CLOSE_API_KEY", "CLOSE_API_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert main(["check"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("close-mcp: error: CLOSE_API_KEY is not set.")


def test_drift_without_sandbox_is_a_configuration_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "--drift", "render-body"]) == 2
    assert "--drift needs --sandbox" in capsys.readouterr().err


@pytest.mark.slow
def test_check_a_served_sandbox_through_the_environment(tmp_path: Path) -> None:
    """What a user does: `close-mcp sandbox --drift ...`, then `close-mcp check` with the two
    variables pointing at it; then the same with the sandbox unchanged."""
    import subprocess
    import sys

    for drift, code in (("render-body", 1), (None, 0)):
        port = free_port()
        args = ["sandbox", "--port", str(port), "--leads", "20"]
        args += ["--drift", drift] if drift else []
        base = f"http://127.0.0.1:{port}/api/v1/"
        env = clean_env()
        with running(args, env=env, health=base + "me/", log=tmp_path / "sandbox.log"):
            done = subprocess.run(
                [sys.executable, "-m", "close_mcp", "check"],
                env={
                    **env,
                    "CLOSE_API_KEY": Sandbox(n_leads=1).api_key,
                    "CLOSE_API_BASE_URL": base,
                },
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        assert done.returncode == code, done.stdout + done.stderr
        rows: dict[str, Any] = {
            line.split("  ")[0]: line for line in done.stdout.splitlines() if line.startswith("G")
        }
        render = rows["GET email_template/{id}/render/"]
        assert render.endswith("differs: render.body missing" if drift else "ok"), render
