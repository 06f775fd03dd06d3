#!/usr/bin/env python3
"""A small mutation check: break each safety guard on purpose, in a copy, and see its test fail.

Each mutant below is one row of data: a name, the file, the exact text to replace and its
replacement, the test node ids that must catch it, and the guard (issue item or design rule)
it stands for. For each mutant the repository's files (tracked, plus untracked files git does
not ignore) are copied into a temporary directory, the guard is broken there, and only the
named tests run against the copy with the project's Python, as

    python -m pytest -q -p no:cacheprovider -p <recorder> <node ids>   (cwd = PYTHONPATH = copy)

would, but in a process forked from one server (multiprocessing's forkserver) that imported the
third-party modules the named tests use (pytest, mcp, pydantic, httpx, hypothesis...) once, so a
run does not pay an interpreter's start-up. Nothing of the copy is imported by the server (each
run checks it before pytest starts), and each run's own recorder says which file `close_mcp`
came from: a run that did not import the copy's is an ERROR, never caught. The processes the
tests start (`python -m close_mcp ...`) import the copy through PYTHONPATH (checked once, before
anything runs, in a fresh interpreter). A run that hangs is stopped with every process it
started after TIMEOUT_S.
A small pytest plugin (the recorder) writes how each test ended. A mutant is *caught* only when
every one of its named tests fails in its call on an assertion (`assert`, `pytest.fail`,
`pytest.raises` that saw nothing). A test that passes, errors in setup, times out, fails on any
other exception (an import error, a refused valid token raising elsewhere) or was not collected
does not count: a guard must be caught by the test that targets it, for the reason it targets.

Every named test must first pass unmutated: an unmutated copy runs them all, beside the first
mutants, and no verdict counts unless it passes; or, with --passed, the JUnit report of a whole
suite run on this same tree (.ci/run's, just before) shows each instance passed and no file
changed after that suite started. The tree is copied once at the start (a snapshot: edits made
during the run do not reach it). A replacement whose old text is not found exactly once stops
the run before any test runs: the table must be updated when the code moves, never go quietly
stale.

    .venv/bin/python .ci/mutants.py            # every mutant; exit 1 if one is not caught
    .venv/bin/python .ci/mutants.py --list     # the table, without running anything
    .venv/bin/python .ci/mutants.py --only digest-off --only mac-off
    .venv/bin/python .ci/mutants.py --passed suite.xml   # after pytest --junitxml=suite.xml

Exit status: 0 every mutant caught; 1 a mutant not caught (survived, wrong failure, timeout);
2 the table is stale, or the unmutated baseline fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import multiprocessing.forkserver
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# -- where things are (change them here only when modules move) -----------------------------

PACKAGE = "close_mcp"
TOKENS = "close_mcp/writes/tokens.py"
PIPELINE = "close_mcp/writes/pipeline.py"
CLIENT = "close_mcp/close/client.py"
SEND = "close_mcp/server/tools/send.py"
HTTP = "close_mcp/server/http.py"
OAUTH = "close_mcp/server/oauth.py"
RESTORE = "close_mcp/safety/restore.py"
BINDING = "close_mcp/writes/binding.py"
JOB_CONTROL = "close_mcp/server/tools/job_control.py"
SANDBOX_EVENTS = "close_mcp/sandbox/events.py"

T_BULK = "tests/test_bulk_tools.py::"
T_BINDING = "tests/test_binding.py::"
T_CLIENT = "tests/unit/close/test_client.py::"
T_RECENT = "tests/test_recent_lookup.py::"
T_SNAPSHOTS = "tests/test_snapshots.py::"
T_BACKUPS = "tests/test_backups.py::"
T_SEND = "tests/test_send_email.py::"
T_FAULTS = "tests/reliability/test_faults.py::"
T_SESSIONS = "tests/reliability/test_http_sessions.py::"
T_HOSTILE = "tests/reliability/test_stdio_hostile.py::"
T_UNTRUSTED = "tests/reliability/test_untrusted_data.py::"
T_OAUTH = "tests/test_oauth.py::"
T_CLI = "tests/test_cli_messages.py::"
T_RELEASE = "tests/test_release.py::"
T_EVERYDAY = "tests/test_everyday_results.py::"
T_ROUND2 = "tests/test_faithful_close_round2.py::"
T_LOCKS = "tests/store/test_locks.py::"
T_HOLES = "tests/test_confirmation_holes.py::"
T_SANDBOX_EVENTS = "tests/sandbox/test_events.py::"
T_RESTORE_TOOL = "tests/test_restore_leads.py::"
T_MERGE = "tests/test_merge_leads.py::"
T_REGISTRY = "tests/unit/server/tools/test_registry.py::"
T_RECORDS = "tests/test_record_writes.py::"
T_EXPORT = "tests/test_export_leads.py::"

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
        # both checks: when a token is checked, and when it is spent (one decision per call
        # checks it before the person answers; spend sees it again after)
        edits=(
            ('if float(payload.get("e", 0)) <= self._clock.time():', "if False:"),
            ("        if lasts <= 0:\n", "        if False:\n"),
        ),
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
        file="close_mcp/writes/read_once.py",
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
        file="close_mcp/writes/read_once.py",
        edits=(
            (
                "binding = token is not None and self.binds(request)\n",
                "binding = token is not None and self.binds(request)"
                " and bool(self.context.settings.snapshot_limit)\n",
            ),
        ),
        breaks="with CLOSE_MCP_SNAPSHOT=off a token binds the count only, not each lead",
        guards="issue 23 item 22: the binding holds with snapshots off",
        tests=(T_SNAPSHOTS + "test_no_snapshot_above_the_limit_needs_confirmation[off]",),
    ),
    Mutant(
        name="replay-check-off",
        file="close_mcp/writes/reconcile.py",
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
        file="close_mcp/writes/reconcile.py",
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
        file="close_mcp/writes/reconcile.py",
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
        file="close_mcp/writes/reconcile.py",
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
        file="close_mcp/writes/gate.py",
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
        file="close_mcp/writes/gate.py",
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
        file="close_mcp/writes/read_once.py",
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
        tests=(
            T_BACKUPS + "test_a_backup_that_fails_midway_refuses_the_delete_and_leaves_nothing",
        ),
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
        file="close_mcp/writes/gate.py",
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
                "    if sender_address is not None and args.status not in LOGGED:\n"
                "        await _check_identity(call.catalog, sender_address)\n",
                "",
            ),
        ),
        breaks="an email goes out from an identity that is not the caller's",
        guards="issue 23 item 14/25: only the caller's connected identities send",
        tests=(
            T_SEND + "test_a_sender_must_be_a_connected_identity_unless_the_email_is_only_logged",
        ),
    ),
    # -- issue 23 items 2, 12, 18, 19 and issue 30 (HTTP callers, OAuth) ----------------------
    Mutant(
        name="http-caller-anyone",
        file=HTTP,
        edits=(('identity = caller_identity(scope["headers"])', 'identity = "caller:anyone"'),),
        breaks="every caller without OAuth is one caller: B answers or uses A's session",
        guards="issue 23 item 2: a session belongs to the credentials that opened it",
        tests=(T_SESSIONS + "test_another_caller_cannot_answer_or_use_a_legacy_session",),
    ),
    Mutant(
        name="http-caller-ignores-key",
        file=HTTP,
        edits=(
            (
                'for wanted in (b"authorization", KEY_HEADER.encode()):',
                'for wanted in (b"authorization",):',
            ),
        ),
        breaks="two callers with other Close keys (and the same bearer) are one caller",
        guards="issue 23 item 2: the caller is its bearer token and its Close key",
        tests=(
            T_SESSIONS + "test_another_caller_cannot_answer_or_use_a_legacy_session[env0-a0-b0]",
            T_SESSIONS + "test_another_caller_cannot_answer_or_use_a_legacy_session[env1-a1-b1]",
        ),
    ),
    Mutant(
        name="http-sessions-uncapped",
        file=HTTP,
        edits=(("if held >= self.limit:", "if False:"),),
        breaks="one caller opens sessions without limit",
        guards="issue 23 item 18: sessions are capped per caller",
        tests=(T_SESSIONS + "test_sessions_are_capped_per_caller",),
    ),
    Mutant(
        name="secret-with-memory-store",
        file="close_mcp/config.py",
        edits=(('if raw_secret and store == ":memory:" and not sandbox:', "if False:"),),
        breaks="replicas sharing a secret each keep spent nonces in memory (a token used twice)",
        guards="issue 23 item 12: a shared secret needs a shared store",
        tests=(T_SESSIONS + "test_a_shared_secret_with_a_process_local_store_refuses_to_start",),
    ),
    Mutant(
        name="date-min-overflows",
        file="close_mcp/selection/parsers.py",
        edits=(("if day == date.min:", "if False:"),),
        breaks="0001-01-01 overflows inside the query check instead of a tool error",
        guards="issue 23 item 19: hostile input gets a tool error naming the field",
        tests=(
            T_HOSTILE + "test_dates_at_the_ends_of_the_calendar_get_a_tool_error_naming_the_field",
        ),
    ),
    Mutant(
        name="stdio-unparsable-unanswered",
        file="close_mcp/server/stdio.py",
        edits=(
            (
                "answer = answer_for(item) if isinstance(item, Exception) else None",
                "answer = None",
            ),
        ),
        breaks="a request the parser cannot read gets no JSON-RPC error (the client waits)",
        guards="issue 23 item 19: every request gets an answer with its id",
        tests=(T_HOSTILE + "test_a_request_nested_5000_deep_gets_a_json_rpc_error_with_its_id",),
    ),
    Mutant(
        name="oauth-grant-reusable",
        file=OAUTH,
        edits=(
            (
                "        if raw is None or not spent:\n"
                '            raise TokenError("invalid_grant", f"{what} already used")\n'
                "        await self.store.delete(key)\n",
                "        if raw is None:\n"
                '            raise TokenError("invalid_grant", f"{what} already used")\n',
            ),
        ),
        breaks="an authorization code or a refresh token is exchanged more than once",
        guards="issue 30: authorization codes are single-use and refresh tokens rotate",
        # in_process's second exchange (right verifier): the code; the reuse in
        # test_refresh_revocation_forgery_and_a_reused_code: the refresh token.
        tests=(
            T_OAUTH + "test_an_expired_token_is_refused",
            T_OAUTH + "test_refresh_revocation_forgery_and_a_reused_code",
        ),
    ),
    Mutant(
        name="oauth-revoke-noop",
        file=OAUTH,
        edits=(
            (
                '        """Ends the whole sign-in: both tokens stop working on every'
                ' replica."""\n',
                '        """Ends the whole sign-in: both tokens stop working on every'
                ' replica."""\n        return\n',
            ),
        ),
        breaks="a revoked token keeps working",
        guards="issue 30: revocation ends the sign-in",
        tests=(T_OAUTH + "test_refresh_revocation_forgery_and_a_reused_code",),
    ),
    Mutant(
        name="oauth-close-refresh-late",
        file=OAUTH,
        edits=(("CLOSE_REFRESH_MARGIN_S: Final = 5 * 60", "CLOSE_REFRESH_MARGIN_S: Final = 0"),),
        breaks="Close's access token is used until it expires mid-call",
        guards="issue 30: Close's token is refreshed before it expires",
        tests=(T_OAUTH + "test_closes_token_is_refreshed_before_it_expires",),
    ),
    Mutant(
        name="oauth-resource-unchecked",
        file=OAUTH,
        edits=(
            (
                '        if params.resource is not None and params.resource.rstrip("/") !='
                " self.resource_url:\n"
                '            raise AuthorizeError("invalid_target", "this server\'s resource is'
                ' its /mcp URL")\n',
                "",
            ),
        ),
        breaks="a token is issued for another resource (RFC 8707)",
        guards="issue 30: the resource indicator is this server's /mcp",
        tests=(T_OAUTH + "test_authorize_refuses_what_the_client_did_not_register",),
    ),
    Mutant(
        name="oauth-any-grant-type",
        file=OAUTH,
        edits=(
            (
                "if not more and grant is not None and grant not in GRANT_TYPES:",
                "if not more and grant is not None and False:",
            ),
        ),
        breaks="an unknown grant_type reaches the SDK instead of unsupported_grant_type",
        guards="issue 30: only the two grant types are taken",
        tests=(T_OAUTH + "test_refresh_revocation_forgery_and_a_reused_code",),
    ),
    # -- issue 29 (CLI messages, release metadata) --------------------------------------------
    Mutant(
        name="busy-port-traceback",
        file="close_mcp/cli/ports.py",
        edits=(("if exc.errno == errno.EADDRINUSE:", "if False:"),),
        breaks="a busy port ends in an OSError traceback, not one line naming --port",
        guards="issue 29: a busy port is one line naming it and the flag",
        tests=(T_CLI + "test_a_busy_port_is_one_line_naming_it_and_the_flag",),
    ),
    Mutant(
        name="unknown-command-serves",
        file="close_mcp/cli/main.py",
        edits=(
            (
                '    if lead < len(argv) and not argv[lead].startswith("-"):\n'
                "        # A word where a command goes",
                "    if False:\n        # A word where a command goes",
            ),
        ),
        breaks="a mistyped command is passed to `serve` instead of naming the commands",
        guards="issue 29: an unknown command names the commands",
        tests=(T_CLI + "test_an_unknown_command_names_the_commands",),
    ),
    Mutant(
        name="release-key-not-secret",
        file="release/check.py",
        edits=(
            (
                'if not (key.get("isSecret") is True and key.get("isRequired") is True):',
                "if False:",
            ),
        ),
        breaks="server.json may publish CLOSE_API_KEY as a plain, optional setting",
        guards="issue 29: the API key is a required secret in server.json",
        tests=(T_RELEASE + "test_each_guard_fails_with_a_line_saying_what[secret]",),
    ),
    Mutant(
        name="release-schema-unpinned",
        file="release/check.py",
        edits=(("if hashlib.sha256(raw_schema).hexdigest() != SCHEMA_SHA256:", "if False:"),),
        breaks="a changed copy of the registry's schema validates server.json",
        guards="issue 29: the kept registry schema is pinned by its sha256",
        tests=(T_RELEASE + "test_a_changed_schema_file_is_refused",),
    ),
    # -- issue 26 (results and previews) ------------------------------------------------------
    Mutant(
        name="id-lists-never-shortened",
        file="close_mcp/server/idlists.py",
        edits=(("and len(value) > LONG\n", "and len(value) > 10**6\n"),),
        breaks="a 1000-id selection is echoed whole in the result",
        guards="issue 26: long id lists are shortened, the whole list a resource",
        tests=(T_EVERYDAY + "test_a_1000_id_selection_answers_small_and_sends_every_id",),
    ),
    Mutant(
        name="id-lists-any-caller",
        file="close_mcp/server/idlists.py",
        edits=(('    return f"id-list:{caller}:{sha256}"', '    return f"id-list:{sha256}"'),),
        breaks="another key that learns a list's sha256 reads the whole list",
        guards="issue 23 item 5: a store-backed resource is read only by the caller it was for",
        tests=(T_EVERYDAY + "test_an_id_list_is_read_only_by_the_caller_whose_result_showed_it",),
    ),
    Mutant(
        name="empty-selection-with-token",
        file=PIPELINE,
        edits=(
            (
                "if request.matched == 0 and request.when_empty is not None:",
                "if token_problem is None and request.matched == 0"
                " and request.when_empty is not None:",
            ),
        ),
        breaks="a selection that now matches nothing hands out a token to act on 0 leads",
        guards="issue 26: nothing to do means no token",
        tests=(
            T_EVERYDAY
            + "test_a_selection_that_now_matches_nothing_answers_nothing_to_do_without_a_token",
        ),
    ),
    Mutant(
        name="used-token-gets-fresh-one",
        file=PIPELINE,
        edits=(("if problem.startswith(USED_TOKEN):", "if False:"),),
        breaks="a used token's refusal hands out a fresh token (the same write again)",
        guards="issue 26: a used token is refused without a fresh one",
        tests=(T_EVERYDAY + "test_a_used_token_is_refused_without_a_fresh_one",),
    ),
    Mutant(
        name="cannot-ask-as-not-asked",
        file="close_mcp/writes/gate.py",
        edits=(
            ("        return replace(decision, answer=CANNOT_ASK)\n", "        return decision\n"),
        ),
        breaks="a client that cannot ask its user is not told a human must confirm",
        guards="issue 26: without elicitation a token suffices unless a human is required",
        tests=(T_BULK + "test_without_elicitation_token_suffices_unless_human_required",),
    ),
    Mutant(
        name="reach-counts-taken",
        file="close_mcp/server/tools/reach.py",
        edits=(
            (
                "found = [(cid, a) for cid, a in every if cid not in taken]",
                "found = [(cid, a) for cid, a in every]",
            ),
        ),
        breaks="the subscribe preview counts contacts that already had the sequence",
        guards="issue 26: the preview names whom it reaches and why leads are skipped",
        tests=(
            T_EVERYDAY
            + "test_the_subscribe_preview_names_whom_it_reaches_and_why_leads_are_skipped",
        ),
    ),
    Mutant(
        name="revert-any-job",
        file="close_mcp/server/tools/revert.py",
        edits=(
            (
                '    """A revert of another kind of job says what undoes that kind instead."""\n',
                '    """A revert of another kind of job says what undoes that kind instead."""\n'
                "    return\n",
            ),
        ),
        breaks="a revert of a delete or an email job is not told what undoes it",
        guards="issue 26: a revert of another kind of job says what undoes it",
        tests=(T_EVERYDAY + "test_a_revert_of_another_kind_of_job_says_what_undoes_it",),
    ),
    Mutant(
        name="sole-identity-takes-first",
        file=SEND,
        edits=(("if len(account.identities) != 1:", "if len(account.identities) < 1:"),),
        breaks="an account with several identities sends as the first without asking",
        guards="issue 26: the sender is implied only by an account with one identity",
        tests=(T_EVERYDAY + "test_send_email_takes_the_sender_from_an_account_with_one_identity",),
    ),
    # -- issue 25 (Close's clock, time zones and 429s) ----------------------------------------
    Mutant(
        name="shared-wait-off",
        file=CLIENT,
        edits=(
            (
                "await budget.block(now + wait)  # held by every call of this group",
                "await self._clock.sleep(wait)",
            ),
        ),
        breaks="calls that start during a 429's wait go out and hit the limit again",
        guards="issue 25: a 429's wait is shared by its endpoint group",
        tests=(T_CLIENT + "test_429_wait_is_shared_by_the_calls_that_start_during_it",),
    ),
    Mutant(
        name="naive-close-time-local",
        file="close_mcp/close/times.py",
        edits=(
            (
                "    if moment.tzinfo is None:\n        return moment.replace(tzinfo=UTC)\n",
                "    if moment.tzinfo is None:\n        return moment.astimezone(UTC)\n",
            ),
        ),
        breaks="Close's offset-less times are read in the server's time zone",
        guards="issue 25: Close's naive times are UTC",
        tests=(T_ROUND2 + "test_an_ambiguous_outbox_send_is_found_in_tokyo",),
    ),
    Mutant(
        name="recent-lookup-unfiltered",
        file="close_mcp/writes/reconcile.py",
        edits=(("if lookup.since_param is not None:", "if False:"),),
        breaks="reconciliation reads the newest page only, missing this write's email",
        guards="issue 25: the recent lookup asks Close for items since the write",
        tests=(
            T_ROUND2 + "test_an_ambiguous_outbox_send_is_found_in_tokyo",
            "tests/test_faithful_lookup.py::"
            "test_an_emails_reconciliation_reads_past_a_page_with_nothing_recent",
        ),
    ),
    Mutant(
        name="date-field-takes-time",
        file="close_mcp/selection/values.py",
        edits=(('if kind == "date" and isinstance(when, datetime):', "if False:"),),
        breaks="a time for a date field gets a token, then fails inside Close's job",
        guards="issue 25: a date field takes a day, refused before any token",
        tests=(T_ROUND2 + "test_a_time_for_a_date_field_is_refused_before_any_token",),
    ),
    Mutant(
        name="one-budget-for-all",
        file=CLIENT,
        edits=(("group = endpoint_group(method, path)", 'group = "all"'),),
        breaks="a 429 on search delays every other call",
        guards="issue 25: rate limits are per endpoint group",
        tests=(T_ROUND2 + "test_a_429_on_search_does_not_delay_a_status_lookup",),
    ),
    Mutant(
        name="unknown-status-waited-out",
        file="close_mcp/server/tools/job_reads.py",
        edits=(('("paused", "unknown")', '("paused",)'),),
        breaks="a job whose status Close reports as null is waited on until the timeout",
        guards="issue 25: a null status is unknown, not running",
        tests=(T_ROUND2 + "test_a_null_job_status_is_unknown_and_not_waited_out",),
    ),
    Mutant(
        name="resumed-anyway-unread",
        file="close_mcp/server/tools/job_control.py",
        edits=(
            (
                '"cannot resume"; None if it is not running."""\n',
                '"cannot resume"; None if it is not running."""\n    return None\n',
            ),
        ),
        breaks="a resume whose first PUT worked is reported as refused",
        guards="issue 25: a refused PUT reads the job before saying cannot resume",
        tests=(T_ROUND2 + "test_a_resume_whose_first_put_worked_is_not_reported_as_refused",),
    ),
    Mutant(
        name="sandbox-naive-fixed-utc",
        file="close_mcp/sandbox/moments.py",
        edits=(
            (
                "                raise QueryError(\n"
                '                    {f"{path}.value": "A fixed_utc moment needs a UTC offset'
                ' (Z or +00:00)."}\n'
                "                )\n",
                "                return parsed.replace(tzinfo=UTC)\n",
            ),
        ),
        breaks="the sandbox takes a fixed_utc without an offset, which Close refuses",
        guards="issue 25: the sandbox is as strict as Close on moments",
        tests=(
            T_ROUND2 + "test_the_sandbox_refuses_a_naive_fixed_utc_and_a_fixed_utc_on_a_date_field",
        ),
    ),
    Mutant(
        name="relative-span-day-end",
        file="close_mcp/selection/tree.py",
        edits=(('        "which_day_end": "start",\n    }\n', "    }\n"),),
        breaks="a relative span is sent in a form Close's UI does not export",
        guards="issue 25: relative spans are sent as Close's UI exports them",
        tests=(T_ROUND2 + "test_relative_spans_are_sent_in_the_form_closes_ui_exports",),
    ),
    # -- issue 27, 23.11, 23.22 (leads read once, bound whatever the snapshot) ----------------
    Mutant(
        name="read-once-walks-twice",
        file="close_mcp/writes/read_once.py",
        edits=(("walk=saved is None)", "walk=True)"),),
        breaks="a confirmed edit or delete reads its leads twice (backup, then binding)",
        guards="issue 27: a confirmed write reads its leads once",
        tests=("tests/test_read_once.py::test_a_confirmed_edit_or_delete_reads_its_leads_once",),
    ),
    Mutant(
        name="drift-keeps-backup",
        file="close_mcp/writes/read_once.py",
        edits=(
            (
                "            return saved, None\n        await self.discard(request, saved)\n",
                "            return saved, None\n",
            ),
        ),
        breaks="a backup of leads a refused write never touched is kept (and restorable)",
        guards="issue 27: a swap found once the backup is written discards it",
        tests=(T_BINDING + "test_a_swap_found_once_the_backup_is_written_discards_it",),
    ),
    Mutant(
        name="unbound-above-snapshot-limit",
        file="close_mcp/writes/read_once.py",
        edits=(
            (
                "        keep = self.context.settings.lead_ids_kept\n",
                "        keep = self.context.settings.lead_ids_kept\n"
                "        if request.matched > keep:\n            return None\n",
            ),
        ),
        breaks="above the snapshot limit a token binds the count only",
        guards="issue 23 item 11: every lead is bound, whatever the snapshot limit",
        tests=(T_BINDING + "test_above_the_snapshot_limit_a_same_count_swap_still_refuses",),
    ),
    Mutant(
        name="snapshot-limit-off-by-one",
        file="close_mcp/config.py",
        edits=(("        if matched > limit:", "        if matched >= limit:"),),
        breaks="a selection of exactly the snapshot limit is not saved",
        guards="issue 27: the snapshot limit is inclusive",
        tests=(T_BINDING + "test_at_the_snapshot_limit_every_lead_is_bound_and_saved[0]",),
    ),
    Mutant(
        name="lead-set-unkeyed",
        file="close_mcp/writes/binding.py",
        edits=(
            (
                "self._key = hashlib.sha256(key).digest()",
                'self._key = hashlib.sha256(b"").digest()',
            ),
        ),
        breaks="the lead-set digest is the same under any key (guessable from the ids)",
        guards="issue 27: the lead-set digest is keyed",
        tests=(T_BINDING + "test_a_lead_set_digest_is_the_set_not_the_order_and_needs_the_key",),
    ),
    Mutant(
        name="paused-server-job-sends",
        file=PIPELINE,
        edits=(('if await decide(self.context.store, job_id, "send") != "send":', "if False:"),),
        breaks="a server job paused while reading its leads still sends",
        guards="issue 27: pausing a job still reading stops it, nothing sent",
        tests=(
            "tests/test_server_jobs.py::"
            "test_pausing_a_job_still_reading_stops_it_and_nothing_is_sent",
        ),
    ),
    Mutant(
        name="stale-server-job-running",
        file="close_mcp/writes/background.py",
        edits=(
            (
                'if state.get("state") in ("reading", "sending") and clock.time() - state["at"]'
                " > STALE_S:",
                "if False:",
            ),
        ),
        breaks="a job whose server stopped reads as running forever",
        guards="issue 27: a job whose server stopped reads as stopped",
        tests=("tests/test_server_jobs.py::test_a_job_whose_server_stopped_reads_as_stopped",),
    ),
    # -- issue 23 items 5, 7, 9, 14, 15, 16, 21, 22 (locks, restores, binding, senders) -------
    Mutant(
        name="held-lock-deletes-any",
        file="close_mcp/store/base.py",
        edits=(
            (
                'await store.delete(f"lock:{each}", if_value=owner)',
                'await store.delete(f"lock:{each}")',
            ),
        ),
        breaks="a holder whose lock expired deletes the new holder's lock",
        guards="issue 23 item 5: a lock is released by its owner only",
        tests=(
            T_LOCKS + "test_release_of_an_expired_lock_leaves_the_new_holder_alone[sqlite-held]",
            T_LOCKS + "test_release_of_an_expired_lock_leaves_the_new_holder_alone[sqlite-renewed]",
        ),
    ),
    Mutant(
        name="held-lock-not-renewed",
        file="close_mcp/store/base.py",
        edits=(("tasks.start_soon(_renew, store, taken, owner, ttl_s, renew)", "pass"),),
        breaks="a long restore's lock expires and a second restore starts beside it",
        guards="issue 23 item 5: the restore lock is renewed while it runs",
        tests=(T_LOCKS + "test_the_restore_lock_is_renewed_while_a_restore_runs",),
    ),
    Mutant(
        name="sqlite-delete-ignores-owner",
        file="close_mcp/store/sqlite.py",
        edits=(
            (
                "if current is None or (if_value is not None and current != if_value):",
                "if current is None:",
            ),
        ),
        breaks="SQLite's conditional delete deletes whatever the key holds",
        guards="issue 23 item 5: a lock is released by its owner only (SQLite)",
        tests=(
            T_LOCKS + "test_release_of_an_expired_lock_leaves_the_new_holder_alone[sqlite-held]",
        ),
    ),
    Mutant(
        name="redis-delete-ignores-owner",
        file="close_mcp/store/redis.py",
        edits=(
            (
                "\"if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del',"
                ' KEYS[1]) end return 0"',
                "\"return redis.call('del', KEYS[1])\"",
            ),
        ),
        breaks="Redis's conditional delete deletes whatever the key holds",
        guards="issue 23 item 5: a lock is released by its owner only (Redis)",
        tests=(
            T_LOCKS + "test_release_of_an_expired_lock_leaves_the_new_holder_alone[redis-held]",
        ),
    ),
    Mutant(
        name="revert-plan-any-key",
        file="close_mcp/server/resources.py",
        edits=(("await shown_to_caller(job_id, ctx)", "pass"),),
        breaks="a revert plan is read with a key Close does not show the edit to",
        guards="issue 23 item 7: a revert plan is read-only to a key that sees the edit",
        tests=(
            "tests/test_resources.py::"
            "test_a_revert_plan_is_read_only_with_a_key_close_shows_the_edit_to",
        ),
    ),
    Mutant(
        name="restore-journal-beside-copy",
        file="close_mcp/safety/journal.py",
        edits=(
            (
                "if backup.path is not None and not backup.in_store"
                " and (sandbox or _forgets(store)):",
                "if backup.path is not None and not backup.in_store:",
            ),
        ),
        breaks="a copy of a backup file restores its leads again (journal beside the file)",
        guards="issue 23 item 9: a restore's journal is keyed by the backup's identity",
        tests=(
            "tests/unit/safety/test_restore.py::test_a_copy_of_a_backup_file_restores_nothing_again",
        ),
    ),
    Mutant(
        name="binding-without-step-templates",
        file=BINDING,
        edits=(
            (
                '            content["step_templates"] = await _step_templates(client,'
                ' sequence.get("steps"))\n',
                "",
            ),
        ),
        breaks="a sequence step's template rewritten after the preview still sends",
        guards="issue 23 item 22: the binding covers a sequence's step templates",
        tests=(T_BINDING + "test_a_sequence_step_template_rewritten_after_the_preview_refuses",),
    ),
    Mutant(
        name="binding-without-subject",
        file=BINDING,
        edits=(
            (
                'content["template"] = {k: template.get(k) for k in ("subject", "body")}',
                'content["template"] = {k: template.get(k) for k in ("body",)}',
            ),
        ),
        breaks="a template whose subject was edited after the preview still sends",
        guards="issue 23 item 22: the binding covers a template's subject and body",
        tests=(T_BINDING + "test_a_template_subject_edited_after_the_preview_refuses",),
    ),
    Mutant(
        name="binding-without-steps",
        file=BINDING,
        edits=(('for k in ("steps", "name")}', 'for k in ("name",)}'),),
        breaks="a sequence whose steps changed after the preview still subscribes",
        guards="issue 23 item 22: the binding covers a sequence's steps",
        tests=(T_BINDING + "test_a_sequence_whose_steps_changed_after_the_preview_refuses",),
    ),
    Mutant(
        name="colleagues-identities-own",
        file="close_mcp/close/catalog.py",
        edits=(
            (
                "return [a for a in await self.email_accounts() if a.user_id == me]",
                "return [a for a in await self.email_accounts() if me]",
            ),
        ),
        breaks="a colleague's identity passes as the caller's sender",
        guards="issue 23 item 14: only the caller's own identities send",
        tests=(
            T_SEND + "test_only_the_callers_own_identities_may_send[legacy-colleague]",
            T_SEND + "test_only_the_callers_own_identities_may_send[auto-colleague]",
        ),
    ),
    Mutant(
        name="colleagues-account-sends",
        file=SEND,
        edits=(("if account.user_id != await catalog.me_id():", "if False:"),),
        breaks="an email goes out through a colleague's email account",
        guards="issue 23 item 14: only the caller's own email accounts send",
        tests=(T_SEND + "test_a_colleagues_email_account_is_refused",),
    ),
    Mutant(
        name="quoted-unclipped",
        file="close_mcp/writes/gate.py",
        edits=(
            (
                'return repr(text if len(text) <= limit else text[: limit - 1] + "…")',
                "return repr(text)",
            ),
        ),
        breaks="a lead named like an instruction is put whole into the question",
        guards="issue 23 item 15: CRM text in the question is clipped and quoted",
        tests=(
            "tests/test_elicitation_question.py::"
            "test_a_lead_named_like_an_instruction_is_clipped_and_quoted",
        ),
    ),
    Mutant(
        name="crm-errors-unfenced",
        file="close_mcp/server/tools/declare.py",
        edits=(("if exc.quotes_crm_text:", "if False:"),),
        breaks="a tool error quoting CRM text reads as the server's own words",
        guards="issue 23 item 16: tool errors that quote CRM text are fenced",
        tests=(T_UNTRUSTED + "test_tool_errors_that_quote_crm_text_are_fenced_too",),
    ),
    # -- issue 23 items 1, 3, 4, 6, 8, 10, 13, 17, 20 (confirmation holes) --------------------
    Mutant(
        name="uncounted-resume-as-zero",
        file=JOB_CONTROL,
        edits=(
            (
                "        if job.n_leads is None:\n            return None\n",
                "        if job.n_leads is None:\n"
                '            return 0, f"Job {job.id} was paused before Close counted it."\n',
            ),
        ),
        breaks="a job paused before Close counted it is confirmed and resumed on '0 left'",
        guards="issue 23 item 1: an uncounted job is resumed on its query's real count",
        tests=(
            T_HOLES + "test_a_delete_paused_before_close_counted_it_is_resumed_on_its_real_count",
            T_HOLES + "test_an_uncounted_job_whose_query_close_does_not_show_is_refused",
        ),
    ),
    Mutant(
        name="bookkeeping-raises-after-accept",
        file=PIPELINE,
        edits=(
            (
                "            except Exception as exc:\n"
                '                log.error("%s: %s was submitted, but recording',
                "            except ZeroDivisionError as exc:\n"
                '                log.error("%s: %s was submitted, but recording',
            ),
        ),
        breaks="a store failing after Close accepted a write turns it into an error (retried)",
        guards="issue 23 item 3: nothing raised after Close accepted a write",
        tests=(
            T_HOLES + "test_a_store_failing_after_close_accepted_the_write_still_says_submitted",
        ),
    ),
    Mutant(
        name="lead-total-kept",
        file="close_mcp/selection/every_lead.py",
        edits=(
            (
                "    return matched >= await client.count(dict(LEAD_NODE))\n",
                "    if id(client) not in _KEPT:\n"
                "        _KEPT[id(client)] = await client.count(dict(LEAD_NODE))\n"
                "    return matched >= _KEPT[id(client)]\n",
            ),
            (
                "async def _counts_every_lead(",
                "_KEPT: dict[int, int] = {}\n\n\nasync def _counts_every_lead(",
            ),
        ),
        breaks="every lead left after a delete passes as narrower than a kept total",
        guards="issue 23 item 4: 'every lead' is counted at each call, confirmation included",
        tests=(
            T_HOLES + "test_every_remaining_lead_after_a_delete_is_still_every_lead",
            T_HOLES + "test_every_lead_is_recounted_at_confirmation",
        ),
    ),
    Mutant(
        name="every-lead-refusal-unaudited",
        file="close_mcp/server/tools/bulk.py",
        edits=(("refused(verdict.refusal, body, seen.matched)", "pass"),),
        breaks="an every-lead refusal leaves no audit line",
        guards="issue 23 item 6: every refusal is audited",
        tests=(T_HOLES + "test_every_lead_refusals_are_audited",),
    ),
    Mutant(
        name="every-lead-count-ignored",
        file="close_mcp/selection/every_lead.py",
        edits=(
            (
                "if not everything and client is not None and matched is not None:",
                "if False:",
            ),
        ),
        breaks="a selection whose count is the organization's total passes as narrower",
        guards="design: every lead is decided by counting, not by the query's wording",
        tests=(
            "tests/unit/selection/test_every_lead.py::test_a_count_of_every_lead_is_every_lead",
        ),
    ),
    Mutant(
        name="empty-org-counted",
        file="close_mcp/selection/every_lead.py",
        edits=(("    if matched <= 0:\n        return False\n", ""),),
        breaks="a selection matching nothing costs a count of the organization",
        guards="issue 24: 'every lead' decided in one function, counting only when it matters",
        tests=(
            "tests/unit/selection/test_every_lead.py::"
            "test_no_count_is_asked_for_when_it_cannot_change_the_answer[nothing matched]",
        ),
    ),
    Mutant(
        name="view-tree-shared",
        file="close_mcp/selection/smart_views.py",
        edits=(("copy.deepcopy(view.query)", "view.query"),),
        breaks="inlining a saved search edits the view's stored query",
        guards="design: saved_search nodes are inlined from the view's stored query",
        tests=(
            "tests/unit/selection/test_smart_views.py::"
            "test_a_negated_saved_search_node_is_the_views_tree_negated",
        ),
    ),
    Mutant(
        name="unwritable-audit-confirms",
        file=PIPELINE,
        edits=(
            (
                "        problem = self.context.audit.unwritable()\n        if problem is None:\n",
                "        problem = self.context.audit.unwritable()\n        if True:\n",
            ),
        ),
        breaks="a confirmation is taken (token spent) while the audit log cannot be written",
        guards="issue 23 item 6: nothing is sent while the audit log cannot be written",
        tests=(T_HOLES + "test_nothing_is_sent_while_the_audit_log_cannot_be_written",),
    ),
    Mutant(
        name="unwritable-audit-sends",
        file="close_mcp/writes/sender.py",
        edits=(
            (
                "if (problem := self.audit.unwritable()) is not None:",
                "if (problem := self.audit.unwritable()) is not None and False:",
            ),
        ),
        breaks="a write reaches Close while the audit log cannot be written",
        guards="issue 23 item 6: no write goes unrecorded",
        tests=(T_HOLES + "test_nothing_is_sent_while_the_audit_log_cannot_be_written",),
    ),
    Mutant(
        name="untold-job-reconciled",
        file="close_mcp/writes/reconcile.py",
        edits=(("            if lookup.untold:\n", "            if False:\n"),),
        breaks="a multi-value edit's lost answer is reconciled to a look-alike job",
        guards="issue 23 item 8: a job that cannot be told apart is never claimed",
        tests=(T_HOLES + "test_a_multi_value_edit_is_never_reconciled_to_a_look_alike_job",),
    ),
    Mutant(
        name="token-any-caller",
        file=TOKENS,
        edits=(
            (
                'if not hmac.compare_digest(str(payload.get("c", "")), self._caller_tag(caller)):',
                "if False:",
            ),
        ),
        breaks="a colleague's key, or another organization's, confirms my token",
        guards="issue 23 item 10: a token confirms only for the caller it was issued to",
        tests=(
            T_HOLES + "test_a_colleagues_key_cannot_confirm_my_token",
            T_HOLES + "test_a_token_made_in_one_organization_deletes_nothing_in_another",
        ),
    ),
    Mutant(
        name="resume-without-toolset",
        file=JOB_CONTROL,
        edits=(("if TOOLSETS[kind] not in runtime.settings.toolsets:", "if False:"),),
        breaks="a server without the delete toolset resumes a bulk delete",
        guards="issue 23 item 13: resuming a job needs its action's toolset",
        tests=(
            T_HOLES + "test_resuming_a_delete_needs_the_delete_toolset",
            T_HOLES + "test_resuming_needs_the_toolset_of_each_kind",
        ),
    ),
    Mutant(
        name="cancel-draft-writes",
        file="close_mcp/server/tools/cancel.py",
        edits=(('if email.get("status") == "draft":', "if False:"),),
        breaks="a repeated cancel_email writes to Close again",
        guards="issue 23 item 17: cancel_email is idempotent",
        tests=(T_HOLES + "test_cancelling_an_email_twice_answers_the_repeat_without_a_write",),
    ),
    Mutant(
        name="put-nonce-unspent",
        file=PIPELINE,
        edits=(
            (
                "            if problem is None:\n"
                "                try:\n"
                "                    await self.context.tokens.spend(token)\n",
                '            if problem is None and request.method == "POST":\n'
                "                try:\n"
                "                    await self.context.tokens.spend(token)\n",
            ),
        ),
        breaks="one resume or cancel confirmation acts twice (after a re-pause)",
        guards="issue 23 item 20: a PUT's token is spent like any other",
        tests=(
            T_HOLES + "test_one_resume_confirmation_resumes_once",
            T_HOLES + "test_one_cancel_confirmation_cancels_once",
        ),
    ),
    # -- issue 28 groundwork (the sandbox's CRM objects as Close has them; the CRM client) ----
    Mutant(
        name="sandbox-events-uncapped",
        file=SANDBOX_EVENTS,
        edits=(
            (
                'limit = min(_int_param(query, "_limit", EVENT_MAX_LIMIT, 1), EVENT_MAX_LIMIT)',
                'limit = _int_param(query, "_limit", EVENT_MAX_LIMIT, 1)',
            ),
        ),
        breaks="the sandbox's event log answers pages of more than 50, which Close caps",
        guards="issue 28: the sandbox pages the event log as Close does",
        tests=(
            T_SANDBOX_EVENTS
            + "test_the_event_log_pages_with_cursors_and_refuses_what_close_refuses",
        ),
    ),
    Mutant(
        name="sandbox-events-forever",
        file=SANDBOX_EVENTS,
        edits=(
            (
                "horizon = now - timedelta(days=EVENT_DAYS)",
                "horizon = now - timedelta(days=10 * EVENT_DAYS)",
            ),
        ),
        breaks="the sandbox's event log shows deletes older than Close's 30 days",
        guards="issue 28: the event log goes 30 days back, as Close's",
        tests=(
            T_SANDBOX_EVENTS
            + "test_the_event_log_keeps_30_days_of_deleted_leads_with_their_previous_data",
        ),
    ),
    Mutant(
        name="sandbox-events-any-filters",
        file=SANDBOX_EVENTS,
        edits=(("if given not in EVENT_COMBOS:", "if False:"),),
        breaks="the sandbox takes event filter combinations Close refuses",
        guards="issue 28: the sandbox refuses what Close refuses",
        tests=(
            T_SANDBOX_EVENTS
            + "test_the_event_log_pages_with_cursors_and_refuses_what_close_refuses",
        ),
    ),
    Mutant(
        name="merge-resent",
        file="close_mcp/close/crm.py",
        edits=(
            (
                'await client.request("POST", "lead/merge/", json_body=body, retry_errors=False)',
                'await client.request("POST", "lead/merge/", json_body=body, retry_errors=True)',
            ),
        ),
        breaks="a merge is sent again after a 5xx (the source may be gone already)",
        guards="design: a write is sent once (lead merge)",
        tests=(
            "tests/unit/close/test_crm.py::"
            "test_a_merge_is_one_post_never_repeated_after_an_ambiguous_failure",
        ),
    ),
    Mutant(
        name="pipeline-filter-ignored",
        file="close_mcp/close/crm.py",
        edits=(('if s.get("pipeline_id") == where.pipeline_id', "if True"),),
        breaks="a pipeline filter selects the opportunities of every pipeline",
        guards="issue 28: a pipeline is sent as its statuses (Close cannot filter by it)",
        # test_a_pipeline_without_the_asked_statuses_selects_nothing_without_listing fails on
        # its recorder's answer (a ServerError), not an assertion: the sandbox run decides.
        tests=(
            "tests/unit/close/test_crm.py::"
            "test_against_the_sandbox_a_pipeline_selects_exactly_its_opportunities",
        ),
    ),
    Mutant(
        name="check-deleted-leads-unread",
        file="close_mcp/cli/check_crm.py",
        edits=(("        if unlike:\n", "        if False:\n"),),
        breaks="`close-mcp check` misses a deleted-lead event without its previous data",
        guards="issue 28: check names each drift of Close's answers",
        tests=(
            "tests/test_check.py::"
            "test_a_changed_shape_names_the_endpoint_and_field_and_exits_1[event-previous-data]",
        ),
    ),
    Mutant(
        name="check-subscriptions-unread",
        file="close_mcp/cli/check.py",
        edits=(("keys=SUBSCRIPTION_KEYS", "keys=()"),),
        breaks="`close-mcp check` misses subscriptions without the sequence get_lead reads",
        guards="check probes `sequence_subscription/?lead_id=` as get_lead reads it",
        tests=(
            "tests/test_check.py::"
            "test_a_changed_shape_names_the_endpoint_and_field_and_exits_1[subscription-sequence]",
        ),
    ),
    # -- issue 26/28: restore_leads (backups and the event log) --------------------------------
    Mutant(
        name="restore-shared-journal-unread",
        file="close_mcp/safety/journal.py",
        edits=(("for line in await store.lines(shared):", "for line in []:"),),
        breaks="a lead restored from its backup comes back again from the event log",
        guards="issue 28: a lead is never restored twice, whatever the source",
        tests=(
            T_RESTORE_TOOL
            + "test_a_lead_restored_from_its_backup_is_not_restored_from_the_event_log",
        ),
    ),
    Mutant(
        name="restore-overtaken-sends",
        file="close_mcp/safety/restore_plan.py",
        edits=(("            if moved:", "            if False:"),),
        breaks="a restore another run overtook after the check sends its leads again",
        guards="issue 26: restore_leads exactly once",
        tests=(
            T_RESTORE_TOOL
            + "test_a_restore_that_another_run_overtook_after_the_check_sends_nothing",
        ),
    ),
    Mutant(
        name="restore-global-lock-off",
        file="close_mcp/safety/restore_plan.py",
        edits=(
            (
                '    names = [ALL_RESTORES, f"restore:{backup.identity}"]',
                '    names = [f"restore:{backup.identity}"]',
            ),
        ),
        breaks="two restores of different sources send the same lead at once",
        guards="issue 28: one restore sends at a time",
        tests=(T_RESTORE_TOOL + "test_a_restore_while_another_one_is_sending_sends_nothing",),
    ),
    Mutant(
        name="restore-token-unbound",
        file="close_mcp/safety/restore_plan.py",
        edits=(
            ('"identity": backup.identity,', '"identity": "x",'),
            ('"leads_sha256": plan.digest,', '"leads_sha256": "x",'),
        ),
        breaks="a token fits a backup that changed since its preview",
        guards="design: a token binds the exact records and content",
        tests=(
            T_RESTORE_TOOL + "test_a_token_is_refused_when_the_backup_changed_since_the_preview",
        ),
    ),
    Mutant(
        name="restore-since-unbounded",
        file="close_mcp/safety/restore_plan.py",
        edits=(("    if moment.date() < oldest.date():", "    if False:"),),
        breaks="deleted_since older than Close keeps events is taken as complete",
        guards="issue 28: within the period Close keeps events",
        tests=(T_RESTORE_TOOL + "test_deleted_since_reaches_back_30_days_only",),
    ),
    Mutant(
        name="restore-count-untyped",
        file="close_mcp/writes/gate.py",
        edits=(('if request.action == "delete" and request.counted != "deleted":', "if False:"),),
        breaks="a restore is confirmed with the delete's wording",
        guards="issue 26: restore_leads with the same typed-count confirmation as a delete",
        tests=(T_RESTORE_TOOL + "test_a_delete_comes_back_after_the_preview_and_the_typed_count",),
    ),
    Mutant(
        name="held-locks-leak",
        file="close_mcp/store/base.py",
        edits=(("            taken.append(each)\n", "            pass\n"),),
        breaks="a busy second lock leaves the first one held",
        guards="issue 23 item 21: locks released by their owner",
        tests=(
            "tests/unit/store/test_held.py::"
            "test_a_busy_second_lock_releases_the_first_and_runs_nothing",
        ),
    ),
    # -- issue 26: the friendly filter's activity fields and the selection handle ---------------
    Mutant(
        name="handle-any-caller",
        file="close_mcp/selection/handles.py",
        edits=(('    return f"selection:{caller}:{handle}"', '    return f"selection:{handle}"'),),
        breaks="another key that learns a handle acts on the first key's selection",
        guards="issue 23 item 5: what the store keeps for a caller is read by that caller only",
        tests=(
            "tests/test_selection_handles.py::"
            "test_another_key_cannot_use_a_handle_even_through_a_shared_store",
        ),
    ),
    Mutant(
        name="handle-forever",
        file="close_mcp/selection/handles.py",
        edits=(("record, ttl_s=KEPT_S)", "record, ttl_s=None)"),),
        breaks="a selection handle never expires",
        guards="issue 26: a handle lasts an hour",
        tests=("tests/test_selection_handles.py::test_a_handle_expires_after_an_hour",),
    ),
    Mutant(
        name="not-emailed-is-emailed",
        file="close_mcp/selection/activity.py",
        edits=(("build(since(span), negate=negate)", "build(since(span))"),),
        breaks="'not emailed within' selects the leads that were emailed",
        guards="issue 26: activity in the friendly filter",
        tests=(
            "tests/test_tasks.py::test_count_potential_leads_created_in_90_days_and_not_emailed_in_30",
        ),
    ),
    Mutant(
        name="sandbox-opportunity-status-any-reference",
        file="close_mcp/sandbox/query_fields.py",
        edits=(
            ('lambda o: [o.status_id], ("status.opportunity",))', "lambda o: [o.status_id], ())"),
        ),
        breaks="the sandbox takes an opportunity status condition Close refuses",
        guards="design: the sandbox is as strict as Close",
        tests=("tests/sandbox/test_related.py::test_forms_close_refuses_are_refused",),
    ),
    # -- issue 24: one confirmation decision per call ---------------------------------------
    Mutant(
        name="expired-token-spent",
        file=TOKENS,
        edits=(("        if lasts <= 0:\n", "        if False:\n"),),
        breaks="a token that expired while its person answered is spent and acted on",
        guards="design: a token expires after 10 minutes",
        tests=(
            "tests/unit/writes/test_pipeline.py::"
            "test_a_token_that_expires_while_its_person_answers_sends_nothing[legacy]",
            "tests/unit/writes/test_tokens.py::"
            "test_a_token_that_expired_since_it_was_checked_is_not_spent",
        ),
    ),
    Mutant(
        name="unfitting-token-asks",
        file="close_mcp/writes/gate.py",
        edits=(
            (
                "    if token is None or decision.token_problem is not None:\n",
                "    if token is None:\n",
            ),
        ),
        breaks="the person is asked about a token that does not fit the call",
        guards="issue 24: the confirmation decision is made once and passed on",
        tests=(
            "tests/unit/writes/test_pipeline.py::"
            "test_a_token_that_does_not_fit_is_refused_without_asking_the_person",
        ),
    ),
    Mutant(
        name="decision-token-problem-dropped",
        file=PIPELINE,
        edits=(
            ("        token_problem = decision.token_problem\n", "        token_problem = None\n"),
        ),
        breaks="a token for other arguments is taken because the decision's finding is lost",
        guards="issue 24: the confirmation decision is made once and passed on",
        tests=(T_BULK + "test_token_for_other_arguments_is_refused",),
    ),
    # -- issue 24: safeguards return what they add; the snapshot limit in one place ------------
    Mutant(
        name="unsaved-write-not-confirmed",
        file="close_mcp/safety/snapshot_policy.py",
        edits=(
            ("return Guard(None, (note,), always_confirm=True)", "return Guard(None, (note,))"),
        ),
        breaks="a write with no snapshot (above the limit) goes out without confirmation",
        guards="design: a write above the snapshot limit always needs confirmation",
        tests=(T_SNAPSHOTS + "test_no_snapshot_above_the_limit_needs_confirmation",),
    ),
    Mutant(
        name="guard-walks-without-selection",
        file="close_mcp/safety/snapshot_policy.py",
        edits=(("return Guard(saves, (note,))", "return Guard(safeguard, (note,))"),),
        breaks="a request without a selection gets a safeguard that walks nothing",
        guards="issue 24: safeguards return what they add",
        tests=(
            "tests/unit/safety/test_snapshot_policy.py::"
            "test_a_request_without_a_selection_has_nothing_to_walk",
        ),
    ),
    Mutant(
        name="snapshot-off-ignored",
        file="close_mcp/config.py",
        edits=(("        if limit == 0:\n", "        if False:\n"),),
        breaks="CLOSE_MCP_SNAPSHOT=off still takes snapshots and backups",
        guards="issue 24: the snapshot limit decided in one place",
        tests=(T_SNAPSHOTS + "test_no_snapshot_above_the_limit_needs_confirmation[off]",),
    ),
    Mutant(
        name="guard-drops-always-confirm",
        file="close_mcp/writes/guard.py",
        edits=(
            (
                "always_confirm=request.always_confirm or self.always_confirm",
                "always_confirm=self.always_confirm",
            ),
        ),
        breaks="attaching a safeguard takes away a confirmation the request already needed",
        guards="issue 24: a prepared request is never edited, only added to",
        tests=("tests/unit/writes/test_guard.py::test_always_confirm_is_added_never_taken_away",),
    ),
    Mutant(
        name="revert-per-lead-boundary",
        file="close_mcp/safety/revert_plan.py",
        edits=(("if len(ids) <= PER_LEAD_MAX:", "if len(ids) < PER_LEAD_MAX:"),),
        breaks="a group of exactly PER_LEAD_MAX leads is reverted as a bulk edit",
        guards="design: revert puts small groups back lead by lead",
        tests=(
            "tests/unit/safety/test_revert_plan.py::"
            "test_up_to_per_lead_max_leads_of_a_value_are_put_back_one_by_one",
        ),
    ),
    Mutant(
        name="revert-changed-leads-overwritten",
        file="close_mcp/safety/revert_plan.py",
        edits=(("if not self.include_changed_since:", "if self.include_changed_since:"),),
        breaks="a revert overwrites leads changed since the edit",
        guards="design: leads changed since the edit are left alone and reported",
        tests=(
            "tests/unit/safety/test_revert_plan.py::test_each_lead_goes_back_is_left_or_reported",
        ),
    ),
    # -- issue 26: list_emails, search_leads pages, the sandbox's strict lists ----------------
    Mutant(
        name="emails-unsorted",
        file="close_mcp/close/activities.py",
        edits=(("    emails.sort(key=email_moment, reverse=True)\n", ""),),
        breaks="list_emails pages in Close's undocumented order, not newest first",
        guards="issue 26: a lead's emails newest first",
        tests=(
            "tests/unit/close/test_activities.py::test_lead_emails_are_newest_first_whatever_close_lists",
            "tests/test_list_emails.py::test_list_emails_newest_first_in_pages",
        ),
    ),
    Mutant(
        name="cursor-any-selection",
        file="close_mcp/close/lead_walk.py",
        edits=(("if made_for != digest:", "if False:"),),
        breaks="a search cursor made for one selection pages through another",
        guards="issue 26: search_leads pages with a cursor of its selection",
        tests=(
            "tests/unit/close/test_lead_walk.py::test_a_cursor_for_another_selection_or_forged_is_refused",
            "tests/test_search_leads.py::test_a_cursor_with_another_selection_is_a_clear_error",
        ),
    ),
    Mutant(
        name="cursor-dies-with-closes",
        file="close_mcp/close/lead_walk.py",
        edits=(("pass  # expired", "raise  # expired"),),
        breaks="the next page fails once Close's own 30 s cursor expired",
        guards="issue 26: search_leads pages with a cursor",
        tests=("tests/test_search_leads.py::test_a_cursor_still_works_after_closes_own_expired",),
    ),
    Mutant(
        name="search-page-unbounded",
        file="close_mcp/server/tools/leads.py",
        edits=(("if kept and spent > budget:", "if False:"),),
        breaks="a page of search_leads grows past the result budget",
        guards="design: every result within 1,500 tokens",
        tests=(
            "tests/test_search_leads.py::test_search_leads_lists_1000_leads_in_pages_that_stay_small",
        ),
    ),
    Mutant(
        name="search-pages-past-limit",
        file="close_mcp/server/tools/leads.py",
        edits=(("if page.offset + len(result.sample) >= matched:", "if False:"),),
        breaks="search_leads offers a next page past results_limit",
        guards="issue 26: search_leads pages and says its limits",
        tests=(
            "tests/test_search_leads.py::test_pages_stop_at_results_limit_and_total_counts_every_match",
        ),
    ),
    Mutant(
        name="sandbox-email-list-any-params",
        file="close_mcp/sandbox/routes.py",
        edits=(
            ("unknown = sorted(set(call.query) - EMAIL_LIST_PARAMS)", "unknown: list[str] = []"),
        ),
        breaks="the sandbox takes email-list parameters Close does not document",
        guards="design: the sandbox is as strict as Close's documentation",
        tests=(
            "tests/unit/sandbox/test_routes.py::test_email_list_refuses_what_close_does_not_document",
        ),
    ),
    Mutant(
        name="sandbox-subscriptions-unfiltered",
        file="close_mcp/sandbox/routes.py",
        edits=(("if all(call.query.get(key) is None for key in keys):", "if False:"),),
        breaks="the sandbox lists subscriptions without the filter Close requires",
        guards="design: the sandbox is as strict as Close's documentation",
        tests=(
            "tests/unit/sandbox/test_routes.py::test_subscriptions_need_a_sequence_contact_or_lead",
        ),
    ),
    Mutant(
        name="email-subjects-unclipped",
        file="close_mcp/server/tools/emails.py",
        edits=(("return text if len(text) <= SUBJECT_CHARS else", "return text if True else"),),
        breaks="a page of long subjects outgrows the result budget",
        guards="design: every result within 1,500 tokens",
        tests=(
            "tests/test_list_emails.py::test_a_full_page_of_long_subjects_stays_small_even_with_closes_longer_ids",
        ),
    ),
    Mutant(
        name="emails-none-unsaid",
        file="close_mcp/server/tools/emails.py",
        edits=(("if not read.emails:", "if False:"),),
        breaks="a lead without emails, or a wrong id, answers an empty page",
        guards="issue 26: errors name the fix",
        tests=(
            "tests/test_list_emails.py::test_list_emails_of_a_lead_without_any_says_so_and_a_wrong_id_is_an_error",
        ),
    ),
    # -- issue 28: per-record writes (opportunities, tasks) and every toolset -----------------
    Mutant(
        name="records-digest-ids-only",
        file="close_mcp/safety/records.py",
        edits=(
            (
                "            text = json.dumps(change.shown(), sort_keys=True,"
                ' separators=(",", ":"))\n',
                "            text = change.id\n",
            ),
        ),
        breaks="a token fits records whose values changed since the preview",
        guards="design: a token binds the exact records and content",
        tests=(
            "tests/test_record_writes.py::test_a_record_changed_or_added_since_the_preview_refuses_the_token[changed]",
            "tests/unit/safety/test_records.py::test_the_digest_changes_with_a_value_now_or_a_record_added",
        ),
    ),
    Mutant(
        name="records-stop-ignored",
        file="close_mcp/safety/records.py",
        edits=(("except STOPS_THE_RUN as exc:", "except ZeroDivisionError as exc:"),),
        breaks="a key Close rejects is tried on every record left",
        guards="issue 28: partial failures reported per record, a dead key stops the run",
        tests=(
            "tests/unit/safety/test_records.py::test_a_key_close_rejects_stops_the_run_saying_what_went",
        ),
    ),
    Mutant(
        name="records-undo-twice",
        file="close_mcp/safety/records.py",
        edits=(("if undoing is None:", "if True:"),),
        breaks="two undos of one run are sent at once",
        guards="issue 28: exactly once, undo included",
        tests=("tests/unit/safety/test_records.py::test_one_undo_of_a_run_at_a_time",),
    ),
    Mutant(
        name="records-undo-overwrites",
        file="close_mcp/safety/records.py",
        edits=(("elif all(same(current[k], v) for k, v in after.items()):", "elif True:"),),
        breaks="an undo overwrites values changed since the run",
        guards="issue 28: undo puts back only what still holds the run's values",
        tests=(
            "tests/unit/safety/test_records.py::test_the_undo_puts_back_only_what_still_holds_the_runs_values",
        ),
    ),
    Mutant(
        name="records-alongside-unsaved",
        file="close_mcp/safety/records.py",
        edits=(
            (
                "        for extra in (e for k in differ for e in kind.alongside.get(k, ())"
                " if e not in target):\n            before[extra] = record.get(extra)\n",
                "",
            ),
        ),
        breaks="a field Close changes along (date_won) is not saved nor put back",
        guards="issue 28: snapshot of the old values before the first write",
        tests=(
            "tests/unit/safety/test_records.py::test_a_field_close_changes_along_is_saved_and_put_back_by_the_undo",
        ),
    ),
    Mutant(
        name="toolsets-all-ignored",
        file="close_mcp/settings_table.py",
        edits=(
            ("return frozenset(TOOLSETS) if ALL_TOOLSETS in chosen else chosen", "return chosen"),
        ),
        breaks="CLOSE_MCP_TOOLSETS=all turns nothing on",
        guards="issue 28: CLOSE_MCP_TOOLSETS=all turns every toolset on",
        tests=("tests/unit/test_config.py::test_all_turns_on_every_toolset_the_opt_in_ones_too",),
    ),
    Mutant(
        name="revert-meanwhile-ignored",
        file="close_mcp/safety/revert.py",
        edits=(
            (
                "if len(recorded) > snapshot.stored_reverts:",
                "if len(recorded) > snapshot.stored_reverts + 99:",
            ),
        ),
        breaks="a revert plan made before another revert's records is sent anyway",
        guards="design: a revert plans only what is still to do (two reverts racing)",
        tests=(
            "tests/unit/safety/test_revert.py::test_a_revert_recorded_after_the_plan_was_made_stops_it_before_anything_is_sent",
        ),
    ),
    Mutant(
        name="recreation-unrecorded",
        file="close_mcp/safety/records.py",
        edits=(
            ('            if change.method == "POST" and made:\n', "            if False:\n"),
            ("    await store.put(UNKNOWN + change.id, repr(since))\n", ""),
        ),
        breaks="an undo that created a deleted task again keeps no trace of it (id nor departure)",
        guards="issue 28: a deleted task comes back once however often its run is undone",
        tests=(
            "tests/test_record_writes.py::test_an_undo_of_a_delete_recreates_each_task_once_and_its_own_undo_deletes_them",
        ),
    ),
    Mutant(
        name="recreated-meanwhile-ignored",
        file="close_mcp/safety/records.py",
        edits=(
            (
                "if await latest_recreation(store, o) != s",
                "if await latest_recreation(store, o) != s and False",
            ),
        ),
        breaks="an undo planned before another undo re-created its tasks creates them again",
        guards="issue 28: a deleted task comes back once however often its run is undone",
        tests=(
            "tests/unit/safety/test_records.py::test_an_undo_planned_before_another_undo_created_the_task_again_sends_nothing",
        ),
    ),
    Mutant(
        name="every-lead-wording-dropped",
        file="close_mcp/server/tools/bulk.py",
        edits=(("        selection.worded_every_lead,\n", "        False,\n"),),
        breaks="a selection worded as every lead but counted smaller is taken",
        guards="issue 24: every lead is decided once and passed on",
        tests=(
            "tests/test_selection_handles.py::test_every_lead_by_wording_is_refused_by_arguments_and_by_handle",
        ),
    ),
    Mutant(
        name="every-lead-wording-not-passed",
        file="close_mcp/selection/resolve.py",
        edits=(("decide(selection.worded_every_lead, source", "decide(False, source"),),
        breaks="resolve_selection drops the wording decision",
        guards="issue 24: every lead is decided once and passed on",
        tests=(
            "tests/test_selection_handles.py::test_every_lead_by_wording_is_refused_by_arguments_and_by_handle",
        ),
    ),
    Mutant(
        name="archived-template-emailed",
        file="close_mcp/server/tools/rendering.py",
        edits=(("    if found.is_archived:\n", "    if False:\n"),),
        breaks="a bulk email goes out with an archived template",
        guards="design: an archived template is refused (bulk email as send_email)",
        tests=(
            "tests/test_bulk_tools.py::test_bulk_email_refuses_an_archived_template_as_send_email_does",
        ),
    ),
    Mutant(
        name="revert-resource-read-only",
        file="close_mcp/server/resources.py",
        edits=((" and not (self.writes and settings.read_only)", ""),),
        breaks="read-only mode still offers the revert plan resources",
        guards="design: CLOSE_MCP_READ_ONLY serves no write",
        tests=("tests/test_resources.py::test_revert_plans_are_not_offered_read_only",),
    ),
    Mutant(
        name="merge-journal-ignored",
        file="close_mcp/safety/merge_journal.py",
        edits=(('if state in (None, "failed"):', "if True:"),),
        breaks="a pair an earlier run merged is planned and sent again",
        guards="issue 28: a merge pair is sent once (journal)",
        tests=(T_MERGE + "test_a_pair_an_earlier_run_sent_is_not_sent_again_within_the_hour",),
    ),
    Mutant(
        name="merge-claim-ignored",
        file="close_mcp/safety/merge.py",
        edits=(("if current is None or may(current):", "if True:"),),
        breaks="a pair another run claimed after the preview is sent too",
        guards="issue 28: a merge pair is sent once across replicas (claimed in its journal)",
        tests=(T_MERGE + "test_a_pair_claimed_after_the_preview_is_not_sent",),
    ),
    Mutant(
        name="merge-unknown-resendable",
        file="close_mcp/safety/merge.py",
        edits=(('await mark(pair, "outcome_unknown")', 'await mark(pair, "failed")'),),
        breaks="a merge whose answer was lost may be sent again",
        guards="issue 28: a merge of unknown outcome is not resent within the hour",
        tests=(T_MERGE + "test_a_pair_an_earlier_run_sent_is_not_sent_again_within_the_hour",),
    ),
    Mutant(
        name="merge-source-unbacked",
        file="close_mcp/safety/merge.py",
        edits=(
            (
                "        await store.append(backup.leads_key, "
                "json.dumps(lead, ensure_ascii=False))\n",
                "",
            ),
        ),
        breaks="a merged source is not backed up, so restore_leads cannot bring it back",
        guards="issue 28: each source backed up before merging",
        tests=(
            "tests/test_merge_leads.py::test_duplicates_by_email_are_previewed_merged_once_each_and_restored",
        ),
    ),
    Mutant(
        name="merge-digest-ids-only",
        file="close_mcp/safety/merge.py",
        edits=(
            (
                "row = [p.source, p.destination, self.leads.get(p.source), "
                "self.leads.get(p.destination)]",
                "row = [p.source, p.destination]",
            ),
        ),
        breaks="a lead changed since the preview is merged on the old token",
        guards="issue 28: refuse pairs that changed since the preview",
        tests=(
            "tests/test_merge_leads.py::"
            "test_a_lead_changed_or_a_duplicate_added_since_the_preview_refuses[contact added]",
        ),
    ),
    Mutant(
        name="merge-refused-restored",
        file="close_mcp/safety/snapshot_reader.py",
        edits=(('                if lead["id"] not in skipped:\n', "                if True:\n"),),
        breaks="restoring a merge run re-creates sources Close refused to merge (they still exist)",
        guards="issue 28: the undo of a merge brings back only merged sources",
        tests=(
            "tests/test_merge_leads.py::test_a_pair_close_refuses_is_listed_and_left_out_of_the_backup",
        ),
    ),
    Mutant(
        name="merge-question-yes-no",
        file="close_mcp/writes/gate.py",
        edits=(('    if request.action == "merge":\n', '    if request.action == "never":\n'),),
        breaks="a merge is confirmed with a yes instead of the typed number of pairs",
        guards="issue 28: typed-count confirmation for merges",
        tests=("tests/test_merge_leads.py::test_the_person_types_the_number_of_pairs",),
    ),
    Mutant(
        name="merge-confirmation-removable",
        file="close_mcp/settings_table.py",
        edits=(
            (
                "return parse_names(name, value, CONFIRMABLE_ACTIONS) | ALWAYS_CONFIRMED",
                'return parse_names(name, value, CONFIRMABLE_ACTIONS) | {"delete"}',
            ),
        ),
        breaks="CLOSE_MCP_CONFIRM can leave merge out",
        guards="design: delete and merge can never be removed from the confirmation list",
        tests=(
            "tests/unit/test_config.py::test_delete_and_merge_can_never_leave_the_confirmation_list",
        ),
    ),
    Mutant(
        name="record-handle-with-own-leads",
        file="close_mcp/server/tools/records.py",
        edits=(
            (
                'also = [n for n in ("filter", "s_query") if getattr(args, n) is not None]',
                "also: list[str] = []",
            ),
        ),
        breaks="a per-record tool takes a handle together with its own filter or s_query",
        guards="issue 28: per-record tools take the selection handle as the bulk tools do",
        tests=(
            "tests/test_selection_handles.py::"
            "test_a_handle_with_its_own_leads_is_refused_by_a_per_record_tool_before_any_read",
        ),
    ),
    Mutant(
        name="request-mutable",
        file="close_mcp/writes/request.py",
        edits=(("@dataclass(frozen=True)\nclass WriteRequest", "@dataclass\nclass WriteRequest"),),
        breaks="a prepared request can be edited after it is built",
        guards="issue 24: a prepared request is immutable",
        tests=(
            "tests/unit/writes/test_request.py::test_setting_a_field_of_a_prepared_request_raises",
        ),
    ),
    Mutant(
        name="request-notes-list",
        file="close_mcp/writes/request.py",
        edits=(('        object.__setattr__(self, "notes", tuple(self.notes))\n', ""),),
        breaks="a prepared request's notes can be added to",
        guards="issue 24: a prepared request is immutable",
        tests=("tests/unit/writes/test_request.py::test_its_notes_and_sample_cannot_be_added_to",),
    ),
    # -- merge_leads: unknown outcomes offered again, the renewed lock, the typed answer -------
    Mutant(
        name="merge-unknown-offered-at-once",
        file="close_mcp/safety/merge_journal.py",
        edits=(("if now - at < LOCK_TTL_S:", "if False:"),),
        breaks="a pair of unknown outcome is offered again before a run could have ended",
        guards="a pair of unknown outcome is offered again only after the lock's lifetime",
        tests=(
            T_MERGE
            + "test_an_unknown_outcome_is_offered_again_an_hour_later_while_its_source_exists",
        ),
    ),
    Mutant(
        name="merge-unknown-offered-while-locked",
        file="close_mcp/safety/merge_journal.py",
        edits=(("elif await is_held(store, LOCK):", "elif False:"),),
        breaks="a pair of unknown outcome is offered again while a merge run is being sent",
        guards="no pair is offered again while a merge run holds the lock",
        tests=(
            T_MERGE + "test_an_old_unknown_outcome_is_held_back_while_a_merge_run_holds_the_lock",
        ),
    ),
    Mutant(
        name="merge-reoffer-claims-any-unknown",
        file="close_mcp/safety/merge_journal.py",
        edits=(
            (
                "or (offered_on is not None and current == offered_on)",
                "or (offered_on is not None and state_of(current) in UNKNOWN)",
            ),
        ),
        breaks="a pair offered again is claimed from an entry another run wrote meanwhile",
        guards="a pair offered again is claimed only from the very entry it was offered on",
        tests=(
            T_MERGE + "test_a_pair_offered_again_is_claimed_only_from_the_entry_it_was_offered_on",
        ),
    ),
    Mutant(
        name="merge-lock-unrenewed",
        file="close_mcp/safety/merge.py",
        edits=(("busy=busy, renew=clock):", "busy=busy):"),),
        breaks="a merge run longer than the lock's lifetime loses its lock; a second run starts",
        guards="the merge lock is renewed while its run is sent",
        tests=(T_MERGE + "test_the_merge_lock_outlives_a_run_longer_than_its_lifetime",),
    ),
    Mutant(
        name="merge-gone-source-unread",
        file="close_mcp/safety/merge_journal.py",
        edits=(
            (
                "(found.gone if await swap(store, key, seen, merged) else found.busy).append(pair)",
                "found.unread.append(pair)",
            ),
        ),
        breaks="a pair of unknown outcome whose source is gone is not counted as merged",
        guards="a source gone after a lost answer counts as merged",
        tests=(T_MERGE + "test_an_unknown_outcome_whose_source_is_gone_counts_as_merged",),
    ),
    Mutant(
        name="merge-untimed-entry-unstamped",
        file="close_mcp/safety/merge_journal.py",
        edits=(("if not await swap(store, key, seen, stamped):", "if False:"),),
        breaks="an entry written without a time is never given one, so never offered again",
        guards="an old entry without a time is stamped at its first look",
        tests=(
            T_MERGE + "test_an_entry_without_a_time_is_offered_again_an_hour_after_its_first_look",
        ),
    ),
    Mutant(
        name="typed-answer-says-leads",
        file="close_mcp/writes/gate.py",
        edits=(("whole number of {data.counted.noun}", "whole number of leads"),),
        breaks="a merge's non-integer typed answer is refused as a number of leads",
        guards="the typed answer's refusal names what the question asked to count",
        tests=(T_MERGE + "test_a_count_of_pairs_that_is_not_an_integer_is_refused",),
    ),
    # -- issue 24: a new write tool is one new module (test_registry puts one into a copy) --
    Mutant(
        name="registry-skips-new-module",
        file="close_mcp/server/tools/__init__.py",
        edits=(
            (
                "        found += getattr(",
                '        if module.name == "mark_leads_qualified":\n'
                "            continue\n"
                "        found += getattr(",
            ),
        ),
        breaks="a tool in a new module is not served unless something else names it",
        guards="issue 24: the registry finds every module's tools; a new tool is one new module",
        tests=(T_REGISTRY + "test_a_write_tool_in_a_new_module_is_listed_confirmed_and_sent_once",),
    ),
    Mutant(
        name="read-only-by-name",
        file="close_mcp/server/tools/__init__.py",
        edits=(
            (
                "writes = not tool.annotations.read_only_hint",
                'writes = tool.name.startswith("create_")',
            ),
        ),
        breaks="read-only mode serves a write tool whose name the registry does not expect",
        guards="read-only mode leaves out every tool declared as writing, whatever its name",
        tests=(T_REGISTRY + "test_in_read_only_mode_the_new_write_tool_is_not_registered",),
    ),
    Mutant(
        name="token-tool-unchecked",
        file=TOKENS,
        edits=(('if payload.get("t") != tool:', "if False:"),),
        breaks="a token minted for one tool is refused for another only as other arguments",
        guards="a token names its tool; another tool's token is refused saying so",
        tests=(T_REGISTRY + "test_a_write_tool_in_a_new_module_is_listed_confirmed_and_sent_once",),
    ),
    # -- the newest write tools attacked from outside (session 25) ---------------------------
    Mutant(
        name="recreation-answer-lost-resent",
        file="close_mcp/safety/records.py",
        edits=(("matched=1, reconcile=look)", "matched=1)"),),
        breaks="a task re-creation whose answer was lost is created again by the next undo",
        guards="a lost re-creation is looked for among the lead's tasks, never sent again",
        tests=(T_RECORDS + "test_a_recreation_whose_answer_is_lost_is_never_sent_again",),
    ),
    Mutant(
        name="recreation-departure-unnoted",
        file="close_mcp/safety/records.py",
        edits=(("    await store.put(UNKNOWN + change.id, repr(since))\n", ""),),
        breaks="a re-creation whose new id the store lost is created again by the next undo",
        guards="the moment a re-creating POST leaves is noted before it is sent",
        tests=(T_RECORDS + "test_a_recreation_the_store_could_not_record_is_never_sent_again",),
    ),
    Mutant(
        name="recreation-own-claim-unfound",
        file="close_mcp/safety/recreations.py",
        edits=((" or await store.get(claim) == wanted.old_id", ""),),
        breaks="a task already claimed for the same old id is not found again: created twice",
        guards="a re-created task claimed for its old id is found again by a later look",
        tests=(T_RECORDS + "test_a_recreation_the_store_could_not_record_is_never_sent_again",),
    ),
    Mutant(
        name="export-answer-lost-unknown",
        file="close_mcp/server/tools/export.py",
        edits=((", reconcile=found)", ")"),),
        breaks="an export whose answer was lost is 'outcome unknown': the person confirms another",
        guards="an export whose answer is lost is found among the recent exports",
        tests=(T_EXPORT + "test_an_export_whose_answer_is_lost_is_found_not_reported_unknown",),
    ),
    Mutant(
        name="export-fields-shown-whole",
        file="close_mcp/server/tools/export.py",
        edits=(("if len(text) <= FIELDS_SHOWN_CHARS:", "if True:"),),
        breaks="an export of the most fields previews over 1,500 tokens",
        guards="a long fields list is previewed as its count, first names and sha256",
        tests=(
            T_EXPORT
            + "test_an_export_of_the_most_fields_previews_within_1500_tokens_and_sends_them_all",
        ),
    ),
    Mutant(
        name="backup-any-organization-delete",
        file="close_mcp/safety/backups.py",
        edits=(('if await shown(client, job_path("delete", job_id)):', "if True:"),),
        breaks="another organization's key reads and restores a delete's backup",
        guards="a backup opens only for a key Close shows its delete job",
        tests=(T_RESTORE_TOOL + "test_another_organizations_key_cannot_read_or_restore_a_backup",),
    ),
    Mutant(
        name="backup-any-organization-merge",
        file="close_mcp/safety/backups.py",
        edits=(("if await shown(client, f\"lead/{pair['destination']}/\"):", "if True:"),),
        breaks="another organization's key reads and restores a merge run's backup",
        guards="a merge run's backup opens only for a key Close shows a destination lead",
        tests=(T_RESTORE_TOOL + "test_another_organizations_key_cannot_read_or_restore_a_backup",),
    ),
    Mutant(
        name="undo-any-organization-lead",
        file="close_mcp/safety/records.py",
        edits=(('elif not await shown(client, f"lead/{change.lead_id}/", leads):', "elif False:"),),
        breaks="another organization's key plans the undo of a run (its deleted tasks)",
        guards="an undo is planned only from records the caller's key sees",
        tests=(T_RECORDS + "test_another_organizations_key_cannot_read_or_undo_a_run",),
    ),
    Mutant(
        name="undo-unseen-run-planned",
        file="close_mcp/safety/records.py",
        edits=(("if run.count and len(plan.not_found) == run.count:", "if False:"),),
        breaks="a run none of whose records the key sees is previewed as an undo",
        guards="a run the caller's key sees nothing of is 'no saved run'",
        tests=(T_RECORDS + "test_another_organizations_key_cannot_read_or_undo_a_run",),
    ),
    Mutant(
        name="sample-name-unclipped",
        file="close_mcp/selection/sample.py",
        edits=(("return clipped(value)", "return value"),),
        breaks="a preview with long lead names runs over 1,500 tokens",
        guards="a sample's lead name and status label are cut at 80 characters",
        tests=(T_HOLES + "test_the_newest_write_tools_preview_long_crm_text_within_1500_tokens",),
    ),
    Mutant(
        name="record-values-unclipped",
        file="close_mcp/safety/records.py",
        edits=(("**clipped_texts(c.shown(), TEXT_SHOWN)", "**c.shown()"),),
        breaks="a per-record preview with long task texts runs over 1,500 tokens",
        guards="a per-record request's values are cut at 200 characters in the preview",
        tests=(T_HOLES + "test_the_newest_write_tools_preview_long_crm_text_within_1500_tokens",),
    ),
    Mutant(
        name="close-errors-unbounded",
        file="close_mcp/close/client.py",
        edits=(("if len(parts) > ERRORS_SHOWN:", "if False:"),),
        breaks="a 400 listing every field error becomes a tool error of thousands of tokens",
        guards="a 400's message names its first 10 field errors and how many more",
        tests=(T_EXPORT + "test_an_export_close_refuses_at_length_is_a_short_tool_error",),
    ),
    Mutant(
        name="undo-stale-plan-sent",
        file="close_mcp/safety/records.py",
        edits=(("if stale or await store.get(UNDONE + undoing) != plan.undone:", "if stale:"),),
        breaks="an undo planned before another undo of the run was sent is sent again",
        guards="an undo plan made before another undo of its run went is refused",
        tests=(
            T_RECORDS
            + "test_an_undo_planned_before_another_undo_of_the_run_was_sent_sends_nothing",
        ),
    ),
    Mutant(
        name="undo-sent-unnoted",
        file="close_mcp/safety/records.py",
        edits=(("            await store.put(UNDONE + undoing, run_id)\n", ""),),
        breaks="an undo sent is not noted, so a plan made before it is sent again",
        guards="each undo sent is noted under the undo lock",
        tests=(
            T_RECORDS
            + "test_an_undo_planned_before_another_undo_of_the_run_was_sent_sends_nothing",
        ),
    ),
    Mutant(
        name="restore-failure-unclipped",
        file="close_mcp/safety/restore_plan.py",
        edits=(("clip(why)", "why"),),
        breaks="a restore Close refuses at length answers over 1,500 tokens",
        guards="each failure's reason in a restore's result is clipped to 300 characters",
        tests=(
            T_RESTORE_TOOL + "test_a_restore_close_refuses_at_length_answers_within_1500_tokens",
        ),
    ),
    Mutant(
        name="notes-every-sentence",
        file="close_mcp/wording.py",
        edits=(
            (
                "[sentence for condition, sentence in parts if condition]",
                "[sentence for condition, sentence in parts]",
            ),
        ),
        breaks="a preview or summary says every optional sentence, true or not (0 unknown, ...)",
        guards="issue 24: a message's optional sentences said once, each when its count holds",
        tests=(
            "tests/unit/test_wording.py::"
            "test_only_the_sentences_whose_condition_holds_are_said_in_their_order",
            "tests/unit/safety/test_records.py::"
            "test_the_notes_say_each_part_of_a_plan_that_is_there_in_order",
            "tests/unit/cli/test_commands.py::"
            "test_the_summary_line_names_each_outcome_that_happened_in_order",
        ),
    ),
    Mutant(
        name="sandbox-update-unstamped",
        file="close_mcp/sandbox/store.py",
        edits=(("self.date_updated, self.updated_by = now, user_id", "self.date_updated = now"),),
        breaks="the sandbox's opportunity or task update keeps the old updated_by",
        guards="the sandbox stamps an update as Close does (drift checks read updated_by)",
        tests=(
            "tests/unit/sandbox/test_store.py::"
            "test_an_update_stamps_when_and_by_whom_and_keeps_the_creation",
        ),
    ),
)


# -- the recorder: how each test ended, written by a plugin inside the pytest run ------------

RECORDER = "mutants_recorder"
RECORDER_SOURCE = '''
"""Writes {"tests": {node id: [phase, outcome, kind]}, "package": where close_mcp came from}
to $MUTANTS_OUTCOMES at the end of the run."""
import json, os, sys
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
    package = getattr(sys.modules.get("close_mcp"), "__file__", None) or ""
    with open(os.environ["MUTANTS_OUTCOMES"], "w") as out:
        json.dump({"tests": _seen, "package": package}, out)
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
    package: str  # the file the run imported close_mcp from ("" when it did not say)


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


def compiled(python: str, snapshot: Path, recorder: Path, tests: Sequence[str]) -> list[str]:
    """Compile the snapshot once: its modules' bytecode, and pytest's rewritten named test
    files and conftests (a collection run that may write bytecode). Each copy takes these
    files along: copies keep the sources' times, so the bytecode stays valid and a run no
    longer compiles the whole package and its tests again (a second of each run). The
    broken file's bytecode is never taken (`run_mutant`). The files written, relative."""
    subprocess.run(  # noqa: S603
        [python, "-m", "compileall", "-q", "-j", "0", PACKAGE, "tests"],
        cwd=snapshot,
        check=True,
        capture_output=True,
    )
    env = environment(snapshot, recorder, snapshot / "unused.json")
    env.pop("PYTHONDONTWRITEBYTECODE")
    subprocess.run(  # noqa: S603
        [python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
         *dict.fromkeys(t.split("::")[0] for t in tests)],
        cwd=snapshot,
        env=env,
        check=False,  # a collection error shows in the runs themselves
        capture_output=True,
    )  # fmt: skip
    return sorted(str(p.relative_to(snapshot)) for p in snapshot.rglob("__pycache__/*.pyc"))


def copy_tree(repo: Path, files: Iterable[str], dest: Path) -> None:
    """Sources are copied (a test may write into its tree); bytecode, which nothing writes
    (runs write none), is linked."""
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".pyc"):
            os.link(repo / rel, target)
        else:
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
    # The copy's package first, before the editable install; then the recorder plugin. Processes
    # the tests start (`python -m close_mcp ...`) inherit it and import the copy too.
    env["PYTHONPATH"] = os.pathsep.join([str(root), str(recorder)])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["MUTANTS_OUTCOMES"] = str(outcomes)
    env.pop("PYTEST_ADDOPTS", None)
    return env


# What a run is told to import before pytest starts: nothing from the copy (checked by the child).
OURS = (PACKAGE, "tests", "conftest", RECORDER)

PROBE_SOURCE = """
import importlib, importlib.metadata, json, os, sys
before = set(sys.modules)
import pytest, _pytest.config
for name in _pytest.config.default_plugins:
    importlib.import_module("_pytest." + name)
for entry in importlib.metadata.entry_points(group="pytest11"):
    try:
        importlib.import_module(entry.module)
    except Exception:
        pass
package = importlib.import_module(sys.argv[1])
importlib.import_module(sys.argv[2])
for name in sys.argv[3:]:  # the named tests' modules and their conftests: what they import
    try:
        importlib.import_module(name)
    except BaseException:
        pass
here = os.path.realpath(os.getcwd()) + os.sep
ours = tuple(json.loads(os.environ["MUTANTS_OURS"]))
preload = [
    name
    for name, module in list(sys.modules.items())
    if name not in before
    and name.split(".")[0] not in ours
    and not os.path.realpath(getattr(module, "__file__", None) or os.sep).startswith(here)
]
print(json.dumps({"package": package.__file__, "preload": preload}))
"""


def test_modules(tests: Sequence[str]) -> list[str]:
    """The modules of the named tests' files, each after the conftests above it."""
    names: list[str] = []
    for path in dict.fromkeys(t.split("::")[0] for t in tests):
        parts = Path(path).with_suffix("").parts
        names += [".".join((*parts[:i], "conftest")) for i in range(1, len(parts))]
        names.append(".".join(parts))
    return list(dict.fromkeys(names))


def probe(python: str, root: Path, recorder: Path, tests: Sequence[str]) -> tuple[Path, list[str]]:
    """Where the copy's environment imports the package from (a fresh process, as the servers
    the tests start), and the third-party modules the named tests import: the fork server
    imports those once, never anything from the copy."""
    env = environment(root, recorder, root / "unused.json")
    env["MUTANTS_OURS"] = json.dumps(OURS)
    done = subprocess.run(  # noqa: S603
        [python, "-c", PROBE_SOURCE, PACKAGE, RECORDER, *test_modules(tests)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    return Path(found["package"]).resolve(), list(found["preload"])


def _pytest_in_copy(
    root: str, recorder: str, env: dict[str, str], argv: list[str], output: str
) -> None:
    """A forked run: its own process group, output to a file, the copy first on sys.path, then
    pytest in this process. Exits with pytest's status (3: nothing of the copy may be imported
    before pytest starts, 4: pytest itself raised)."""
    os.setsid()  # the runner can stop this run and every process its tests started
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    early = sorted(n for n in sys.modules if n.split(".")[0] in OURS)
    if early:
        print(f"imported before the run: {', '.join(early)}", flush=True)
        os._exit(3)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(root)
    sys.dont_write_bytecode = True
    here = str(Path(__file__).resolve().parent)
    # As `python -m pytest` with cwd = PYTHONPATH = the copy would have it.
    sys.path[:] = [root, root, recorder, *(p for p in sys.path if p not in ("", here))]
    import pytest

    try:
        code = int(pytest.main(argv))
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 4
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


class Runner:
    """Runs pytest for one copy at a time in a process forked from a server that imported the
    third-party libraries once (pytest, mcp, pydantic, httpx, hypothesis: seconds per run)."""

    def __init__(self, python: str, recorder: Path, preload: Sequence[str]) -> None:
        multiprocessing.set_executable(python)
        self.context = multiprocessing.get_context("forkserver")
        self.context.set_forkserver_preload(list(preload))
        self.recorder = recorder

    def close(self) -> None:
        """Stop the fork server and wait for it (its runs' CPU time then counts as ours)."""
        server = getattr(multiprocessing.forkserver, "_forkserver", None)
        with contextlib.suppress(AttributeError, OSError):
            server._stop()  # type: ignore[union-attr]  # the stdlib's own way to stop it

    def run(self, root: Path, tests: Sequence[str]) -> Run:
        outcomes = root.parent / f"{root.name}.outcomes.json"
        output = root.parent / f"{root.name}.output.txt"
        outcomes.unlink(missing_ok=True)
        # No xdist workers (the recorder sees every test in this process); the third-party
        # plugins were imported before pytest could mark them for assertion rewriting, which is
        # for their own asserts, not the tests'.
        argv = ["-q", "-p", "no:cacheprovider", "-p", RECORDER, "-p", "no:xdist"]
        argv += ["-W", "ignore::pytest.PytestAssertRewriteWarning", *tests]
        env = environment(root, self.recorder, outcomes)
        run = self.context.Process(
            target=_pytest_in_copy, args=(str(root), str(self.recorder), env, argv, str(output))
        )
        started = time.monotonic()
        run.start()
        run.join(TIMEOUT_S)
        timed_out = run.exitcode is None
        # A run that hangs, and whatever the tests started and left behind, stop here.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(run.pid or 0, signal.SIGKILL)
        run.join()
        seconds = time.monotonic() - started
        said = output.read_text(errors="replace") if output.is_file() else ""
        if timed_out:
            return Run(None, seconds, said, {}, "")
        found = json.loads(outcomes.read_text()) if outcomes.is_file() else {}
        return Run(run.exitcode, seconds, said, found.get("tests", {}), found.get("package", ""))


def instances(named: str, ended: dict[str, list[str]]) -> dict[str, list[str]]:
    """The runs of a named test: itself, or each instance of a parametrized one."""
    return {k: v for k, v in ended.items() if k == named or k.startswith(named + "[")}


def tail(output: str, lines: int = 25) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


def union(mutants: Sequence[Mutant]) -> list[str]:
    return list(dict.fromkeys(t for m in mutants for t in m.tests))


def imports_copy(run: Run, root: Path) -> bool:
    """Whether the run's tests imported the package from the copy at `root`."""
    return bool(run.package) and Path(run.package).resolve().is_relative_to(root.resolve())


def judge(mutant: Mutant, run: Run, root: Path) -> Outcome:
    """Caught only when every named test (every instance) failed in its call on an assertion,
    in a run that imported the package from its copy."""
    if run.returncode is None:
        return Outcome(mutant, "TIMEOUT", run.seconds, f"no answer in {TIMEOUT_S:.0f} s")
    collect = {k: v for k, v in run.ended.items() if v[0] == "collect"}
    if collect or run.returncode not in (0, 1):
        return Outcome(
            mutant, "ERROR", run.seconds, f"pytest exit {run.returncode}\n{tail(run.output)}"
        )
    if not imports_copy(run, root):
        where = run.package or "nowhere"
        return Outcome(
            mutant, "ERROR", run.seconds, f"{PACKAGE} imported from {where}, not the copy"
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


def baseline_problem(base: Run, root: Path, tests: Sequence[str]) -> str:
    """Why the unmutated copy's run does not show every named test passing ("" when it does)."""
    if base.returncode is None:
        return f"the unmutated named tests gave no answer in {TIMEOUT_S:.0f} s"
    if not imports_copy(base, root):
        where = base.package or "nowhere"
        return f"the unmutated run imported {PACKAGE} from {where}, not the copy"
    missing = [t for t in tests if not instances(t, base.ended)]
    unpassed = [k for k, v in base.ended.items() if v[1] != "passed"]
    if base.returncode != 0 or missing or unpassed:
        return (
            f"the unmutated named tests do not all pass (exit {base.returncode}; "
            f"not run: {', '.join(missing) or 'none'}; not passed: {', '.join(unpassed) or 'none'})"
        )
    return ""


def passed_in_suite(report: Path, files: Sequence[str], repo: Path, tests: Sequence[str]) -> str:
    """Why the suite's JUnit report does not show every named test passing on this very tree
    ("" when it does): each instance passed, and no file changed after the suite started."""
    suite = ET.parse(report).getroot()  # noqa: S314 (written by this run's own pytest)
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    if suite is None or not suite.get("timestamp"):
        return f"{report} is no pytest JUnit report"
    began = datetime.fromisoformat(suite.get("timestamp", "")).timestamp()
    newer = [f for f in files if (repo / f).lstat().st_mtime > began]
    if newer:
        return f"{', '.join(newer[:5])} changed after the suite in {report} started"
    ended: dict[str, bool] = {}
    for case in suite.iter("testcase"):
        classname, name = case.get("classname", ""), case.get("name", "")
        module = classname
        while module and not (repo / (module.replace(".", "/") + ".py")).is_file():
            module = module.rpartition(".")[0]  # a test class's name follows its module's
        classes = classname[len(module) + 1 :].split(".") if classname != module else []
        node = "::".join([module.replace(".", "/") + ".py", *classes, name])
        ended[node] = not any(c.tag in ("failure", "error", "skipped") for c in case)
    runs: dict[str, list[str]] = {k: [] for k in ended}
    missing = [t for t in tests if not instances(t, runs)]
    unpassed = sorted({k for t in tests for k in instances(t, runs) if not ended[k]})
    if missing or unpassed:
        return (
            f"the suite in {report} did not pass every named test (not run: "
            f"{', '.join(missing) or 'none'}; not passed: {', '.join(unpassed) or 'none'})"
        )
    return ""


def run_mutant(
    runner: Runner, snapshot: Path, files: Sequence[str], mutant: Mutant, root: Path
) -> Outcome:
    """Copy the snapshot to `root`, break the guard there, run the mutant's tests."""
    copy_tree(snapshot, files, root)
    target = root / mutant.file
    target.write_text(mutate(target.read_text(encoding="utf-8"), mutant), encoding="utf-8")
    for cached in (target.parent / "__pycache__").glob(f"{target.stem}.*.pyc"):
        cached.unlink()  # the broken file is compiled from its text, never from the snapshot's
    run = runner.run(root, mutant.tests)
    shutil.rmtree(root)
    return judge(mutant, run, root)


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
        "--passed",
        type=Path,
        metavar="JUNIT_XML",
        help="the JUnit report of a whole-suite run on this tree (.ci/run's): the named tests "
        "passed there, so the unmutated baseline is read from it instead of run again",
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
        baseline_tests = union(chosen)
        try:
            where, preload = probe(args.python, snapshot, recorder, baseline_tests)
        except (OSError, subprocess.CalledProcessError, ValueError) as exc:
            detail = getattr(exc, "stderr", None) or exc
            print(f"mutants.py: {args.python} cannot import {PACKAGE}: {detail}", file=sys.stderr)
            return 2
        if not where.is_relative_to(snapshot.resolve()):
            print(
                f"mutants.py: the copy imports {PACKAGE} from {where}, not the copy",
                file=sys.stderr,
            )
            return 2
        sources = files
        files = [*sources, *compiled(args.python, snapshot, recorder, baseline_tests)]
        print(
            f"baseline: {len(files)} files copied; {PACKAGE} imported from the copy; "
            f"{len(preload)} third-party modules imported once by the fork server",
            flush=True,
        )
        if args.passed:
            problem = passed_in_suite(args.passed, sources, snapshot, baseline_tests)
            if problem:
                print(f"mutants.py: {problem}, so no mutant can be judged", file=sys.stderr)
                return 2
            print(f"baseline: {len(baseline_tests)} named tests passed in {args.passed}")
        runner = Runner(args.python, recorder, preload)
        stop = threading.Event()  # the baseline failed: start no more mutants

        def baseline() -> Run:
            root = Path(tmp) / "baseline"
            copy_tree(snapshot, files, root)
            base = runner.run(root, baseline_tests)
            if baseline_problem(base, root, baseline_tests):
                stop.set()
            shutil.rmtree(root)
            return base

        def one(mutant: Mutant) -> Outcome | None:
            if stop.is_set():
                return None
            root = Path(tmp) / mutant.name
            outcome = run_mutant(runner, snapshot, files, mutant, root)
            print(f"  {mutant.name}: {outcome.verdict} ({outcome.seconds:.1f} s)", flush=True)
            return outcome

        # The baseline runs beside the first mutants (one core each); no verdict counts unless
        # it passes.
        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            base_future = None if args.passed else pool.submit(baseline)
            judged = list(pool.map(one, chosen))
            base = base_future.result() if base_future else None
        runner.close()
        if base is not None:
            problem = baseline_problem(base, Path(tmp) / "baseline", baseline_tests)
            if problem:
                print(
                    f"mutants.py: {problem}, so no mutant can be judged:\n{tail(base.output)}",
                    file=sys.stderr,
                )
                return 2
            print(f"baseline: {len(baseline_tests)} named tests pass ({base.seconds:.1f} s)")
        outcomes = [o for o in judged if o is not None]

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
        + (f"(baseline {base.seconds:.0f} s)" if base else f"(baseline from {args.passed})")
    )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
