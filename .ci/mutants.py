#!/usr/bin/env python3
"""A small mutation check: break each safety guard on purpose, in a copy, and see its test fail.

Each mutant below is one row of data: a name, the file, the exact text to replace and its
replacement, the test node ids that must catch it, and the guard (issue item or design rule)
it stands for. For each mutant the repository's files (tracked, plus untracked files git does
not ignore) are copied into a temporary directory, the guard is broken there, and only the
named tests run against the copy with the project's Python:

    python -m pytest -q -p no:cacheprovider -p <recorder> <node ids>   (cwd = PYTHONPATH = copy)

so the copy's `close_mcp` is imported, not the editable install (checked before anything runs).
A small pytest plugin (the recorder) writes how each test ended. A mutant is *caught* only when
every one of its named tests fails in its call on an assertion (`assert`, `pytest.fail`,
`pytest.raises` that saw nothing). A test that passes, errors in setup, times out, fails on any
other exception (an import error, a refused valid token raising elsewhere) or was not collected
does not count: a guard must be caught by the test that targets it, for the reason it targets.

The unmutated copy runs the union of all named tests first; every one must pass. The tree is
copied once at the start (a snapshot: edits made during the run do not reach it). A replacement
whose old text is not found exactly once stops the run before any test runs: the table must be
updated when the code moves, never go quietly stale.

    .venv/bin/python .ci/mutants.py            # every mutant; exit 1 if one is not caught
    .venv/bin/python .ci/mutants.py --list     # the table, without running anything
    .venv/bin/python .ci/mutants.py --only digest-off --only mac-off

Exit status: 0 every mutant caught; 1 a mutant not caught (survived, wrong failure, timeout);
2 the table is stale, or the unmutated baseline fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# -- where things are (change them here only when modules move) -----------------------------

PACKAGE = "close_mcp"
TOKENS = "close_mcp/writes/tokens.py"
PIPELINE = "close_mcp/writes/pipeline.py"
CLIENT = "close_mcp/close/client.py"
SEND = "close_mcp/server/tools/send.py"

T_BULK = "tests/test_bulk_tools.py::"
T_BINDING = "tests/test_binding.py::"
T_CLIENT = "tests/test_client.py::"
T_RECENT = "tests/test_recent_lookup.py::"
T_SAFETY = "tests/test_safety_net.py::"
T_SEND = "tests/test_send_email.py::"
T_FAULTS = "tests/reliability/test_faults.py::"

PARALLEL = 2  # the CI machine has 2 cores
TIMEOUT_S = 300.0  # per mutant's pytest run; a run that hangs is NOT caught


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    # (old, new) pairs applied in order; each `old` must occur exactly once in the file.
    edits: tuple[tuple[str, str], ...]
    breaks: str  # what goes wrong with the guard broken
    guards: str  # the issue item or design rule the guard stands for
    # Node ids (a parametrized test's bare name means every instance); each must fail on an
    # assertion for the mutant to count as caught.
    tests: tuple[str, ...]


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        name="digest-off",
        file=TOKENS,
        edits=(('if payload.get("d") != request_digest(tool, path, body):', "if False:"),),
        breaks="a token fits other arguments (no request-digest check)",
        guards="design: a token binds the exact request",
        tests=(
            T_BULK + "test_token_for_other_arguments_is_refused",
            T_SEND + "test_a_token_for_other_arguments_is_refused",
        ),
    ),
    *(
        Mutant(
            name=f"digest-without-{field.replace('_', '-')}",
            file=TOKENS,
            edits=(
                (
                    '    return hashlib.sha256(canonical_json({"tool": tool, "path": path, "body":'
                    " body})).hexdigest()\n",
                    "    if isinstance(body, dict):\n"
                    f"        body = {{k: v for k, v in body.items() if k != {field!r}}}\n"
                    '    return hashlib.sha256(canonical_json({"tool": tool, "path": path, "body":'
                    " body})).hexdigest()\n",
                ),
            ),
            breaks=f"a token fits the same request with another {field}",
            guards="issue 23 item 23: the request digest covers every sender field, the time, Bcc",
            tests=tuple(f"tests/test_request_digest.py::{t}" for t in tests),
        )
        for field, tests in (
            ("sender", ("test_an_email_token_does_not_send_from_another_identity",)),
            *(
                (key, (f"test_a_subscription_token_does_not_run_with_another_sender[{case}]",))
                for key, case in (
                    ("sender_account_id", "sender_account"),
                    ("sender_email", "sender_email"),
                    ("sender_name", "sender_name"),
                )
            ),
            ("date_scheduled", ("test_an_email_token_does_not_send_at_another_time",)),
            ("bcc", ("test_an_email_token_does_not_send_to_a_swapped_bcc",)),
        )
    ),
    Mutant(
        name="expiry-off",
        file=TOKENS,
        edits=(('if float(payload.get("e", 0)) <= self._clock.time():', "if False:"),),
        breaks="a token is accepted after it expired",
        guards="design: tokens last 10 minutes",
        tests=(T_BULK + "test_expired_token_is_refused",),
    ),
    Mutant(
        name="mac-off",
        file=TOKENS,
        edits=(("if not hmac.compare_digest(mac, self._mac(encoded)):", "if False:"),),
        breaks="forged tokens and other secrets' tokens pass the HMAC check",
        guards="design: tokens are HMAC-signed under CLOSE_MCP_SECRET",
        tests=(
            T_BULK + "test_forged_token_is_refused",
            T_BULK + "test_token_from_another_secret_is_refused",
        ),
    ),
    Mutant(
        name="single-use-off",
        file=TOKENS,
        edits=(
            (  # in check()
                "if await self._store.get(_spent_key(nonce)) is not None:",
                "if False:",
            ),
            (  # in spend(): the store is still written, its answer ignored
                '"spent", ttl_s=max(lasts, 1.0)):',
                '"spent", ttl_s=max(lasts, 1.0)) and False:',
            ),
        ),
        breaks="a spent token can be used again (the store's answer ignored)",
        guards="design: a token is single-use",
        # Once a job exists, Close's recent jobs refuse the reuse anyway (the replay check);
        # only a reuse after an outcome-unknown POST, which made no job, needs the nonce.
        tests=(T_FAULTS + "test_failed_bulk_post_reports_outcome_unknown_and_never_resends",),
    ),
    Mutant(
        name="count-off",
        file=TOKENS,
        edits=(('if payload.get("m") != matched:', "if False:"),),
        breaks="a token fits a selection whose count changed",
        guards="design: a token binds the count",
        tests=(T_BULK + "test_changed_count_is_refused_with_fresh_preview",),
    ),
    Mutant(
        name="binding-drift-off",
        file=PIPELINE,
        edits=(
            (
                "if expected is not None and current.digest() == expected:",
                "if True:",
            ),
        ),
        breaks="a token fits other leads at the same count, or an edited template",
        guards="design: a token binds the lead set and content",
        tests=(
            T_BINDING + "test_a_lead_swapped_for_another_at_the_same_count_refuses",
            T_BINDING + "test_a_template_edited_after_the_preview_refuses",
        ),
    ),
    Mutant(
        name="binding-off-with-snapshots-off",
        file=PIPELINE,
        edits=(
            (
                "binding = token is not None and self._binds(request)\n",
                "binding = token is not None and self._binds(request)"
                " and bool(self.context.settings.snapshot_limit)\n",
            ),
        ),
        breaks="with CLOSE_MCP_SNAPSHOT=off a token binds the count only, not each lead",
        guards="issue 23 item 22: the binding holds with snapshots off",
        tests=(T_SAFETY + "test_no_snapshot_above_the_limit_needs_confirmation[off]",),
    ),
    Mutant(
        name="replay-check-off",
        file=PIPELINE,
        edits=(
            (
                '    """A job with this exact request made since the token was minted means it'
                ' was used."""\n',
                '    """A job with this exact request made since the token was minted means it'
                ' was used."""\n        return None\n',
            ),
        ),
        breaks="a token spent on a server with another store is used again",
        guards="design: Close's recent jobs refuse a replayed token",
        tests=(
            T_RECENT + "test_token_used_on_one_server_is_refused_by_the_other_from_closes_jobs",
        ),
    ),
    Mutant(
        name="matches-always-true",
        file=PIPELINE,
        edits=(
            (
                "    def matches(self, item: dict[str, Any], body: dict[str, Any]) -> bool:\n",
                "    def matches(self, item: dict[str, Any], body: dict[str, Any]) -> bool:\n"
                "        return True\n",
            ),
        ),
        breaks="any recent job counts as this write's (replay check, reconciliation)",
        guards="design: the jobs lookup compares the job with the request",
        tests=(
            T_RECENT + "test_replay_check_ignores_another_job_made_in_close",
            T_RECENT + "test_reconciliation_ignores_another_job_made_in_close",
        ),
    ),
    Mutant(
        name="created-after-always-true",
        file=PIPELINE,
        edits=(
            (
                "def _created_after(job: dict[str, Any], since: float) -> bool:\n",
                "def _created_after(job: dict[str, Any], since: float) -> bool:\n    return True\n",
            ),
        ),
        breaks="an old identical job counts as this write's (replay check, reconciliation)",
        guards="design: the jobs lookup takes only jobs made since",
        tests=(
            T_RECENT + "test_replay_check_ignores_an_identical_job_made_in_close_before_the_token",
            T_RECENT + "test_reconciliation_ignores_an_identical_job_made_in_close_before_the_post",
        ),
    ),
    Mutant(
        name="attribution-off",
        file=PIPELINE,
        edits=(("if attributed is not None and attributed != owner:", "if False:"),),
        breaks="reconciliation claims a job another token made 1.5 s before this POST",
        guards="issue 23 item 26 (and 8): another write's job is never ours",
        tests=(T_RECENT + "test_reconciliation_ignores_a_job_another_token_made_just_before",),
    ),
    Mutant(
        name="post-resend",
        file=CLIENT,
        edits=(
            (  # transport errors: timeout, reset
                "if (retry_errors or never_sent)"
                " and error_retries < self._retry.max_error_retries:",
                "if error_retries < self._retry.max_error_retries:",
            ),
            (  # 5xx and unreadable answers
                "if retry_errors and error_retries < self._retry.max_error_retries:",
                "if error_retries < self._retry.max_error_retries:",
            ),
        ),
        breaks="a POST is resent after a 5xx or a timeout",
        guards="design: a write is sent once",
        tests=(
            T_CLIENT + "test_503_on_post_is_not_retried_and_outcome_unknown",
            T_CLIENT + "test_post_timeout_is_outcome_unknown_and_not_retried",
            T_FAULTS + "test_failed_bulk_post_reports_outcome_unknown_and_never_resends",
        ),
    ),
    Mutant(
        name="no-confirmation-needed",
        file=PIPELINE,
        edits=(
            (
                "def needs_confirmation(context: WriteContext, request: WriteRequest) -> bool:\n",
                "def needs_confirmation(context: WriteContext, request: WriteRequest) -> bool:\n"
                "    return False\n",
            ),
        ),
        breaks="destructive writes are sent without a confirmation token",
        guards="design: CLOSE_MCP_CONFIRM's actions are confirmed",
        tests=(T_BULK + "test_by_default_edit_and_revert_send_nothing_on_their_first_call",),
    ),
    Mutant(
        name="elicitation-ignored",
        file=PIPELINE,
        edits=(
            (
                '    """Why the person\'s answer (or its absence) stops this write, or None to go'
                ' ahead."""\n',
                '    """Why the person\'s answer (or its absence) stops this write, or None to go'
                ' ahead."""\n    return None\n',
            ),
        ),
        breaks="the person's refusal (declined, cancelled, wrong count) is ignored",
        guards="design: the person asked must agree",
        tests=(
            T_BULK + "test_elicitation_declined_or_cancelled_refuses",
            T_BULK + "test_elicitation_with_a_wrong_number_refuses",
            T_SEND + "test_the_person_declines_a_send",
        ),
    ),
    Mutant(
        name="safeguard-failure-sends",
        file=PIPELINE,
        edits=(
            (
                "            return await request.safeguard.take(request, self.progress, observe)\n"
                "        except Exception as exc:\n",
                "            return await request.safeguard.take(request, self.progress, observe)\n"
                "        except Exception as exc:\n"
                "            return None\n",
            ),
        ),
        breaks="a delete is sent although its backup failed",
        guards="design: nothing is sent unless the backup/snapshot was saved",
        tests=(T_SAFETY + "test_a_backup_that_fails_midway_refuses_the_delete_and_leaves_nothing",),
    ),
    Mutant(
        name="sender-domain-only",
        file=SEND,
        edits=(
            (
                "if sender_address.lower() in {i.lower() for i in identities}:",
                'if sender_address.lower().rpartition("@")[2]'
                ' in {i.lower().rpartition("@")[2] for i in identities}:',
            ),
        ),
        breaks="any address at a connected domain (ceo@) passes as the caller's identity",
        guards="issue 23 item 25: the sender is checked address for address",
        tests=(
            T_SEND + "test_only_the_callers_own_identities_may_send[legacy-same-domain]",
            T_SEND + "test_only_the_callers_own_identities_may_send[auto-same-domain]",
        ),
    ),
    Mutant(
        name="bare-elicitation-not-asked",
        file=PIPELINE,
        edits=(
            (
                "return elicitation is not None and"
                " (elicitation.form is not None or elicitation.url is None)",
                "return elicitation is not None and elicitation.form is not None",
            ),
        ),
        breaks="a 2025-06-18 client declaring `elicitation: {}` is never asked",
        guards="issue 23 item 24: elicitation capability detection",
        tests=(
            "tests/test_elicitation_question.py::"
            "test_a_client_declaring_a_bare_elicitation_capability_is_asked",
        ),
    ),
    Mutant(
        name="sender-identity-off",
        file=SEND,
        edits=(
            (
                "        if sender_address is not None and status not in LOGGED:\n"
                "            await _check_identity(call.catalog, sender_address)\n",
                "",
            ),
        ),
        breaks="an email goes out from an identity that is not the caller's",
        guards="issue 23 item 14/25: only the caller's connected identities send",
        tests=(
            T_SEND + "test_a_sender_must_be_a_connected_identity_unless_the_email_is_only_logged",
        ),
    ),
)


# -- the recorder: how each test ended, written by a plugin inside the pytest run ------------

RECORDER = "mutants_recorder"
RECORDER_SOURCE = '''
"""Writes {node id: [phase, outcome, kind]} to $MUTANTS_OUTCOMES at the end of the run."""
import json, os
import pytest

_seen = {}


def _kind(excinfo):
    if excinfo is None:
        return ""
    exc = excinfo.value
    leaves = [exc]
    while any(isinstance(e, BaseExceptionGroup) for e in leaves):
        leaves = [
            x for e in leaves for x in (e.exceptions if isinstance(e, BaseExceptionGroup) else [e])
        ]
    if all(isinstance(e, (AssertionError, pytest.fail.Exception)) for e in leaves):
        return "assertion"
    return ", ".join(sorted({type(e).__name__ for e in leaves}))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    before = _seen.get(item.nodeid)
    if before is not None and before[1] != "passed":
        return  # the first phase that did not pass decides
    if report.outcome == "passed" and call.when != "call":
        if before is None:
            _seen[item.nodeid] = [call.when, "passed", ""]
        return
    _seen[item.nodeid] = [call.when, report.outcome, _kind(call.excinfo)]


def pytest_collectreport(report):
    if report.failed:
        _seen[report.nodeid or "<collection>"] = ["collect", "failed", "collection error"]


def pytest_sessionfinish(session):
    with open(os.environ["MUTANTS_OUTCOMES"], "w") as out:
        json.dump(_seen, out)
'''


# -- machinery ------------------------------------------------------------------------------


class Stale(Exception):
    """The table no longer fits the code."""


@dataclass(frozen=True)
class Run:
    returncode: int | None  # None: timed out
    seconds: float
    output: str
    ended: dict[str, list[str]]  # node id -> [phase, outcome, kind]


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    verdict: str  # caught, SURVIVED, WRONG-FAILURE, TIMEOUT, ERROR
    seconds: float
    detail: str  # per named test, how it ended


def source_files(repo: Path) -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=repo,
        check=True,
        capture_output=True,
    ).stdout.decode()
    # A tracked file deleted in the working tree is listed but absent: the copy follows the tree.
    return sorted(
        p
        for p in set(listed.split("\0"))
        if p and ((repo / p).is_file() or (repo / p).is_symlink())
    )


def uncommitted(repo: Path, paths: Iterable[str]) -> list[str]:
    """Which of `paths` differ from HEAD in the working tree (the snapshot takes them as is)."""
    listed = subprocess.run(  # noqa: S603
        ["git", "diff", "--name-only", "HEAD", "--", *paths],  # noqa: S607
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return listed.split()


def copy_tree(repo: Path, files: Iterable[str], dest: Path) -> None:
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / rel, target, follow_symlinks=False)


def mutate(text: str, mutant: Mutant) -> str:
    for old, new in mutant.edits:
        found = text.count(old)
        if found != 1:
            raise Stale(
                f"{mutant.name}: expected the text to replace exactly once in {mutant.file}, "
                f"found it {found} times:\n{old}"
            )
        text = text.replace(old, new)
    return text


def check_table(repo: Path, mutants: Sequence[Mutant]) -> None:
    names = [m.name for m in mutants]
    if len(set(names)) != len(names):
        raise Stale("two mutants share a name")
    for mutant in mutants:
        path = repo / mutant.file
        if not path.is_file():
            raise Stale(f"{mutant.name}: {mutant.file} does not exist")
        mutate(path.read_text(encoding="utf-8"), mutant)
        if not mutant.tests:
            raise Stale(f"{mutant.name}: names no test")
        for test in mutant.tests:
            if "::" not in test:
                raise Stale(f"{mutant.name}: {test} is a file; name the test that catches it")
            if not (repo / test.split("::")[0]).is_file():
                raise Stale(f"{mutant.name}: test file {test.split('::')[0]} does not exist")


def environment(root: Path, recorder: Path, outcomes: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The copy's package first, before the editable install; then the recorder plugin.
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(recorder)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MUTANTS_OUTCOMES"] = str(outcomes)
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run_tests(python: str, root: Path, recorder: Path, tests: Sequence[str]) -> Run:
    outcomes = root.parent / f"{root.name}.outcomes.json"
    outcomes.unlink(missing_ok=True)
    started = time.monotonic()
    # One process per run, no xdist workers (the recorder sees every test in this process).
    argv = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", RECORDER]
    argv += ["-p", "no:xdist", *tests]
    try:
        done = subprocess.run(  # noqa: S603
            argv,
            cwd=root,
            env=environment(root, recorder, outcomes),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return Run(None, time.monotonic() - started, out, {})
    ended = json.loads(outcomes.read_text()) if outcomes.is_file() else {}
    return Run(done.returncode, time.monotonic() - started, done.stdout + done.stderr, ended)


def imported_from(python: str, root: Path, recorder: Path) -> Path:
    """Where the copy's environment imports the package from."""
    done = subprocess.run(  # noqa: S603
        [python, "-c", f"import {PACKAGE}, {RECORDER}; print({PACKAGE}.__file__)"],
        cwd=root,
        env=environment(root, recorder, root / "unused.json"),
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip()).resolve()


def instances(named: str, ended: dict[str, list[str]]) -> dict[str, list[str]]:
    """The runs of a named test: itself, or each instance of a parametrized one."""
    return {k: v for k, v in ended.items() if k == named or k.startswith(named + "[")}


def tail(output: str, lines: int = 25) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


def union(mutants: Sequence[Mutant]) -> list[str]:
    return list(dict.fromkeys(t for m in mutants for t in m.tests))


def judge(mutant: Mutant, run: Run) -> Outcome:
    """Caught only when every named test (every instance) failed in its call on an assertion."""
    if run.returncode is None:
        return Outcome(mutant, "TIMEOUT", run.seconds, f"no answer in {TIMEOUT_S:.0f} s")
    collect = {k: v for k, v in run.ended.items() if v[0] == "collect"}
    if collect or run.returncode not in (0, 1):
        return Outcome(
            mutant, "ERROR", run.seconds, f"pytest exit {run.returncode}\n{tail(run.output)}"
        )
    lines: list[str] = []
    passed = wrong = False
    for named in mutant.tests:
        found = instances(named, run.ended)
        if not found:
            wrong = True
            lines.append(f"    {named}: did not run")
        for node, (phase, outcome, kind) in found.items():
            if phase == "call" and outcome == "failed" and kind == "assertion":
                lines.append(f"    {node}: failed on an assertion")
            elif outcome == "passed":
                passed = True
                lines.append(f"    {node}: PASSED")
            else:
                wrong = True
                lines.append(f"    {node}: {outcome} in {phase} ({kind or 'no exception'})")
    verdict = "SURVIVED" if passed else "WRONG-FAILURE" if wrong else "caught"
    return Outcome(mutant, verdict, run.seconds, "\n".join(lines))


def run_mutant(
    python: str, snapshot: Path, files: Sequence[str], mutant: Mutant, root: Path, recorder: Path
) -> Outcome:
    """Copy the snapshot to `root`, break the guard there, run the mutant's tests."""
    copy_tree(snapshot, files, root)
    target = root / mutant.file
    target.write_text(mutate(target.read_text(encoding="utf-8"), mutant), encoding="utf-8")
    run = run_tests(python, root, recorder, mutant.tests)
    shutil.rmtree(root)
    return judge(mutant, run)


def markdown_table(outcomes: Sequence[Outcome]) -> str:
    rows = [
        "| mutant | file | what it breaks | guard | caught? | s |",
        "|---|---|---|---|---|--:|",
    ]
    for o in outcomes:
        caught = "yes" if o.verdict == "caught" else f"**no ({o.verdict.lower()})**"
        rows.append(
            f"| {o.mutant.name} | {o.mutant.file} | {o.mutant.breaks} | {o.mutant.guards} "
            f"| {caught} | {o.seconds:.1f} |"
        )
    return "\n".join(rows)


def list_mutants(mutants: Sequence[Mutant]) -> None:
    for m in mutants:
        print(f"{m.name}  ({m.file}): {m.breaks}  [{m.guards}]")
        for old, new in m.edits:
            print(f"    - {old.strip()!r}\n    + {new.strip()!r}")
        for test in m.tests:
            print(f"    must fail: {test}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--list", action="store_true", help="show the mutants and exit")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=[m.name for m in MUTANTS],
        help="run this mutant only (repeatable)",
    )
    parser.add_argument(
        "--python",
        default=str(REPO / ".venv" / "bin" / "python"),
        help="the Python that runs pytest (default: the repository's .venv)",
    )
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]

    if args.list:
        try:
            check_table(REPO, MUTANTS)
        except Stale as exc:
            print(f"mutants.py: the mutant table is stale: {exc}", file=sys.stderr)
            return 2
        list_mutants(chosen)
        return 0

    started = time.monotonic()
    files = source_files(REPO)
    changed = uncommitted(REPO, sorted({m.file for m in MUTANTS}))
    if changed:
        print(f"note: uncommitted changes in {', '.join(changed)} are part of this run", flush=True)
    with tempfile.TemporaryDirectory(prefix="mutants-") as tmp:
        recorder = Path(tmp) / "recorder"
        recorder.mkdir()
        (recorder / f"{RECORDER}.py").write_text(RECORDER_SOURCE, encoding="utf-8")
        # One snapshot of the tree, taken now: the baseline and every mutant see the same code
        # even while someone edits the working tree during the run.
        snapshot = Path(tmp) / "snapshot"
        copy_tree(REPO, files, snapshot)
        try:
            check_table(snapshot, MUTANTS)
        except Stale as exc:
            print(f"mutants.py: the mutant table is stale: {exc}", file=sys.stderr)
            return 2
        try:
            where = imported_from(args.python, snapshot, recorder)
        except (OSError, subprocess.CalledProcessError) as exc:
            detail = getattr(exc, "stderr", None) or exc
            print(f"mutants.py: {args.python} cannot import {PACKAGE}: {detail}", file=sys.stderr)
            return 2
        if not where.is_relative_to(snapshot.resolve()):
            print(
                f"mutants.py: the copy imports {PACKAGE} from {where}, not the copy",
                file=sys.stderr,
            )
            return 2
        print(f"baseline: {len(files)} files copied; {PACKAGE} imported from the copy", flush=True)
        baseline_tests = union(chosen)
        base = run_tests(args.python, snapshot, recorder, baseline_tests)
        missing = [t for t in baseline_tests if not instances(t, base.ended)]
        unpassed = [k for k, v in base.ended.items() if v[1] != "passed"]
        if base.returncode != 0 or missing or unpassed:
            print(
                f"mutants.py: the unmutated named tests do not all pass (exit {base.returncode}; "
                f"not run: {', '.join(missing) or 'none'}; not passed: "
                f"{', '.join(unpassed) or 'none'}), so no mutant can be judged:\n"
                f"{tail(base.output)}",
                file=sys.stderr,
            )
            return 2
        print(
            f"baseline: {len(baseline_tests)} named tests pass ({base.seconds:.1f} s)", flush=True
        )

        def one(mutant: Mutant) -> Outcome:
            root = Path(tmp) / mutant.name
            outcome = run_mutant(args.python, snapshot, files, mutant, root, recorder)
            print(f"  {mutant.name}: {outcome.verdict} ({outcome.seconds:.1f} s)", flush=True)
            return outcome

        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            outcomes = list(pool.map(one, chosen))

    print()
    print(markdown_table(outcomes))
    print()
    for o in outcomes:
        print(f"{o.mutant.name}: {o.verdict}\n{o.detail}")
    missed = [o.mutant.name for o in outcomes if o.verdict != "caught"]
    total = time.monotonic() - started
    print(
        f"\n{len(outcomes) - len(missed)} of {len(outcomes)} mutants caught by their named "
        f"tests; not caught: {', '.join(missed) or 'none'}; total {total:.0f} s "
        f"(baseline {base.seconds:.0f} s)"
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
