"""`close-mcp check`: one read-only request per endpoint, each answer's shape checked, a table,
exit 1 on a difference; against the sandbox, and against the sandbox's changed-shape modes."""

from __future__ import annotations

import argparse
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from close_mcp.cli.check import check
from close_mcp.cli.check_shapes import item_problems, list_problems, rate_limit_problems
from close_mcp.cli.main import DRIFT_NAMES, build_parser, main
from close_mcp.clock import FakeClock
from close_mcp.close.catalog import Status
from close_mcp.sandbox import Sandbox, emails
from close_mcp.sandbox.drift import DRIFTS
from close_mcp.sandbox.routes import Call
from tests.processes import clean_env, free_port, running
from tests.queries import LEAD, lead_ids_condition

API = "/api/v1/"
SENDER = "sandra@sandbox.example"


def a_sandbox(drift: str | None = None) -> Sandbox:
    """A small sandbox with a job of two kinds, an email and a subscription of the lead the
    check samples, so list items are checked too."""
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
    sampled = max(store.leads.values(), key=lambda lead: lead.date_created)  # search's order
    sub = next(iter(store.subscriptions.values()))
    store.subscriptions[sub.id] = replace(
        sub, lead_id=sampled.id, contact_id=sampled.contacts[0].id
    )
    export = {"s_query": s_query, "format": "json", "type": "leads"}
    sandbox.crm.exports.create_export(Call("POST", {}, {}, export, now))
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
    ("POST", "data/search/"),  # the count probes, one per query kind
    ("POST", "data/search/"),
    ("POST", "data/search/"),
    ("GET", "status/lead/"),  # the catalog resolving what the filters name
    ("POST", "data/search/"),
    ("GET", "custom_field_schema/lead/"),
    ("GET", "user/"),
    ("POST", "data/search/"),
    ("POST", "data/search/"),
    ("POST", "data/search/"),
    ("POST", "data/search/"),
    ("POST", "data/search/"),  # activity.email
    ("POST", "data/search/"),  # activity.call
    ("GET", "status/opportunity/"),
    ("POST", "data/search/"),  # opportunity
    ("POST", "data/search/"),  # number_range
    ("POST", "data/search/"),  # name prefix
    ("POST", "data/search/"),  # the sort
    ("GET", "email_template/{id}/render/"),
    ("GET", "bulk_action/edit/"),
    ("GET", "bulk_action/email/"),
    ("GET", "bulk_action/sequence_subscription/"),
    ("GET", "bulk_action/delete/"),
    ("GET", "activity/email/"),
    ("GET", "sequence_subscription/"),  # the sampled lead's
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
ROWS = 41
KINDS = [
    "lead-id reference",
    "offset moment",
    "fixed_local_date",
    "status.lead",
    "user_or_group",
    "has_related contact_email",
    "text (name)",
    "text (full text)",
    "has_related activity.email",
    "has_related activity.call",
    "has_related opportunity",
    "number_range",
    "text (name prefix)",
    "sort on a custom field",
]
W = 55  # the endpoint column


def row(endpoint: str, result: str) -> str:
    return f"{endpoint.ljust(W)}{result}"


def test_against_the_sandbox_every_endpoint_is_ok_and_exit_0() -> None:
    sandbox = a_sandbox()
    code, out = run_check(sandbox)
    assert code == 0, out
    assert out.splitlines() == [
        row("endpoint", "result"),
        row("GET me/", "ok (no RateLimit header on this answer)"),
        row("GET status/lead/", "ok (statuses: 5 checked)"),
        row("GET custom_field_schema/lead/", "ok (fields: 7 checked)"),  # 6 regular, 1 shared
        row("GET email_template/", "ok (templates: 4 checked)"),
        row("GET sequence/", "ok (sequences: 2 checked)"),
        row("GET connected_account/", "ok (accounts: 4 checked)"),
        row("GET saved_search/", "ok (smart views: 2 checked)"),
        row("GET user/", "ok (users: 2 checked)"),
        row("POST data/search/ (count only)", "ok (30 leads)"),
        row("POST data/search/ (one lead)", "ok (leads: 1 checked)"),
        row("GET lead/{id}/", "ok"),
        *[row(f"POST data/search/ (count: {kind})", "ok (1 as expected)") for kind in KINDS],
        row("GET email_template/{id}/render/", "ok"),
        row("GET bulk_action/edit/", "ok (jobs: 1 checked)"),
        row("GET bulk_action/email/", "ok (jobs: none yet, only the list checked)"),
        row("GET bulk_action/sequence_subscription/", "ok (jobs: none yet, only the list checked)"),
        row("GET bulk_action/delete/", "ok (jobs: 1 checked)"),
        row("GET activity/email/", "ok (emails: 1 checked)"),
        row(
            "GET sequence_subscription/ (lead_id)",
            "ok (the sampled lead's subscriptions: 1 checked)",
        ),
        row("GET pipeline/", "ok (pipelines: 2 checked)"),
        row("GET status/opportunity/", "ok (statuses: 8 checked)"),
        row("GET opportunity/", "ok (opportunities: 10 checked)"),
        row("GET opportunity/{id}/", "ok"),
        row("GET task/", "ok (tasks: 10 checked)"),
        row("GET task/{id}/", "ok"),
        row("GET export/", "ok (exports: 1 checked)"),
        row("GET export/{id}/", "ok"),
        row("GET event/ (deleted leads)", "ok (events: 3 checked)"),
        "",
        f"{ROWS} endpoints checked, all answer as close-mcp expects.",
    ]


def test_the_check_only_reads_one_request_per_endpoint() -> None:
    """Only GETs and searches (POST data/search/ with a query, which change nothing); every
    count probe asks for a count alone, of the sampled lead and one query kind."""
    sandbox = a_sandbox()
    run_check(sandbox)
    requests = sandbox.requests
    assert all(
        r.method == "GET" or (r.method == "POST" and r.path == f"{API}data/search/")
        for r in requests
    ), [(r.method, r.path) for r in requests]
    lead = requests[10].path.split("/")[-2]
    template = requests[29].path.split("/")[-3]
    # the single opportunity, task and export the CRM probes read after their lists
    singles = {r.path.split("/")[-2] for r in requests[-6:-1:2]}
    shown = [(r.method, r.path.removeprefix(API)) for r in requests]
    for one in {lead, template, *singles}:
        shown = [(method, path.replace(one, "{id}")) for method, path in shown]
    assert shown == EXPECTED_REQUESTS
    searches = [r.json for r in requests if r.method == "POST"]
    lead_node = LEAD
    sample_fields = {"lead": ["id", "display_name", "status_label"]}
    assert searches[:2] == [
        {"query": lead_node, "include_counts": True, "results_limit": 0, "_limit": 0},
        {"query": lead_node, "_limit": 1, "_fields": sample_fields},
    ]
    by_id = lead_ids_condition([lead])
    for probe in searches[2:]:
        assert (probe["include_counts"], probe["results_limit"], probe["_limit"]) == (True, 0, 0)
        assert probe["query"]["queries"][:2] == [lead_node, by_id]
    assert searches[2]["query"]["queries"] == [lead_node, by_id]
    assert searches[-1]["sort"][0]["field"]["type"] == "custom_field"
    contact = requests[29].query["contact_id"]
    assert requests[29].query == {"lead_id": lead, "contact_id": contact}
    assert contact in {c.id for c in sandbox.store.leads[lead].contacts}
    assert all(r.status == 200 for r in requests)


MISCOUNT = "differs: counted 2 leads where the sampled lead makes 1"
# Each changed answer, the rows that must say so, and nothing else differing.
DRIFTED = {
    "status-label": [
        row("GET status/lead/", "differs: data[0].label missing (and in 4 more items)"),
        row(  # the filter names the status, and the catalog cannot read the list
            "POST data/search/ (count: status.lead)",
            "differs: request failed: Close's list of lead statuses had an item this server "
            "cannot read (label: Field required). (GET status/lead/)",
        ),
    ],
    "render-body": [row("GET email_template/{id}/render/", "differs: render.body missing")],
    "search-count": [
        row("POST data/search/ (count only)", "differs: count.total missing"),
        *[
            row(
                f"POST data/search/ (count: {kind})",
                "differs: count.total missing or not an integer",
            )
            for kind in KINDS
        ],
    ],
    "email-date": [
        row(
            "GET activity/email/",
            "differs: data[0].date_created: '06/26/2015 02:01' is not a timestamp",
        )
    ],
    # every probe selects the sampled lead by its id
    "query-lead-id": [row(f"POST data/search/ (count: {kind})", MISCOUNT) for kind in KINDS],
    "query-offset": [  # the activity spans are offsets from now too
        row(f"POST data/search/ (count: {kind})", MISCOUNT)
        for kind in ("offset moment", "has_related activity.email", "has_related activity.call")
    ],
    "query-local-date": [row("POST data/search/ (count: fixed_local_date)", MISCOUNT)],
    "query-status": [row("POST data/search/ (count: status.lead)", MISCOUNT)],
    "query-user": [row("POST data/search/ (count: user_or_group)", MISCOUNT)],
    "query-has-related": [row("POST data/search/ (count: has_related contact_email)", MISCOUNT)],
    "query-text": [
        row(f"POST data/search/ (count: {kind})", MISCOUNT)
        for kind in ("text (name)", "text (name prefix)")
    ],
    "query-full-text": [row("POST data/search/ (count: text (full text))", MISCOUNT)],
    "query-sort": [row("POST data/search/ (count: sort on a custom field)", MISCOUNT)],
    # Issue 26's friendly-filter forms.
    "query-email-activity": [
        row("POST data/search/ (count: has_related activity.email)", MISCOUNT)
    ],
    "query-call-activity": [row("POST data/search/ (count: has_related activity.call)", MISCOUNT)],
    "query-opportunity": [row("POST data/search/ (count: has_related opportunity)", MISCOUNT)],
    "query-number-range": [row("POST data/search/ (count: number_range)", MISCOUNT)],
    "query-prefix": [row("POST data/search/ (count: text (name prefix))", MISCOUNT)],
    # Issue 28's endpoints: a list's drift shows in its single object's row too.
    "pipeline-statuses": [
        row("GET pipeline/", "differs: data[0].statuses missing (and in 1 more items)")
    ],
    "opportunity-status-type": [
        row("GET status/opportunity/", "differs: data[0].type missing (and in 7 more items)")
    ],
    "opportunity-user": [
        row("GET opportunity/", "differs: data[0].user_id missing (and in 9 more items)"),
        row("GET opportunity/{id}/", "differs: opportunity.user_id missing"),
    ],
    "task-assignee": [
        row("GET task/", "differs: data[0].assigned_to missing (and in 9 more items)"),
        row("GET task/{id}/", "differs: task.assigned_to missing"),
    ],
    "export-url": [
        row("GET export/", "differs: data[0].download_url missing"),
        row("GET export/{id}/", "differs: export.download_url missing"),
    ],
    "event-previous-data": [
        row(
            "GET event/ (deleted leads)",
            "differs: data[0].previous_data missing (and in 2 more items)",
        )
    ],
    "subscription-sequence": [
        row("GET sequence_subscription/ (lead_id)", "differs: data[0].sequence_id missing")
    ],
}


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_a_changed_shape_names_the_endpoint_and_field_and_exits_1(drift: str) -> None:
    code, out = run_check(a_sandbox(drift))
    assert code == 1
    lines = out.splitlines()
    assert [line for line in lines if "differs" in line] == DRIFTED[drift]
    assert lines[-1] == f"{ROWS} endpoints checked, {len(DRIFTED[drift])} differ."


def test_the_drift_names_match_between_the_cli_and_the_sandbox() -> None:
    assert set(DRIFT_NAMES) == set(DRIFTS) == set(DRIFTED)


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
    assert line.startswith(row("GET sequence/", "differs: request failed: "))


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


def test_the_ratelimit_header_is_read_as_the_client_paces_by_it() -> None:
    sandbox = Sandbox(n_leads=30, clock=FakeClock(), rate_limit=100)
    code, out = run_check(sandbox)
    assert code == 0, out
    assert out.splitlines()[1] == row(
        "GET me/", "ok (RateLimit: limit=100, remaining=99, reset=0.01)"
    )
    assert rate_limit_problems("limit=100, left=5, reset=2") == (
        ["RateLimit 'limit=100, left=5, reset=2': no remaining"],
        "",
    )
    assert rate_limit_problems(None) == ([], "no RateLimit header on this answer")
