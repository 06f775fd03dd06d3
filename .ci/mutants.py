#!/usr/bin/env python3
"""A small mutation check: break each safety guard on purpose, in a copy, and see a test fail.

For each mutant below, the repository's files (tracked, plus untracked files git does not
ignore) are copied into a temporary directory, one guard is broken there by exact textual
replacement, and a few named test files run against the copy with the project's Python:

    python -m pytest -x -q -p no:cacheprovider <tests>      (cwd = PYTHONPATH = the copy)

so the copy's `close_mcp` is imported, not the editable install of the working tree (checked
before anything runs). A mutant is *caught* when its tests fail and *survives* when they pass.
The unmutated copy runs the union of all selected tests first; it must pass.

The tree is copied once at the start (a snapshot: edits made to the working tree during the run
do not reach it). A replacement whose original text is not found exactly once in the snapshot
stops the run before any test runs: the table must be updated when the code moves, never go
quietly stale.

    .venv/bin/python .ci/mutants.py            # every mutant; exit 1 if one survives
    .venv/bin/python .ci/mutants.py --list     # the table, without running anything
    .venv/bin/python .ci/mutants.py --only digest-off --only mac-off

Exit status: 0 every mutant caught; 1 a mutant survived or its run broke (not a test failure);
2 the table is stale, or the unmutated baseline fails.
"""

from __future__ import annotations

import argparse
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

# -- where things are (module paths move in issue 14: change them here only) ----------------

PACKAGE = "close_mcp"
CONFIRM = "close_mcp/writes/tokens.py"
WRITES = "close_mcp/writes/pipeline.py"
CLIENT = "close_mcp/close/client.py"

T_BULK = "tests/test_bulk_tools.py"
T_CLIENT = "tests/test_client.py"
T_RECENT = "tests/test_recent_lookup.py"
T_REPLICAS = "tests/replicas/test_replicas.py"
T_SEND_EMAIL = "tests/test_send_email.py"
T_MACHINE = "tests/reliability/test_confirmation_machine.py"
T_FAULTS = "tests/reliability/test_faults.py"

PARALLEL = 2  # the CI machine has 2 cores
TIMEOUT_S = 600.0  # per pytest run; a run that hangs counts as caught, marked "timeout"


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str
    # (old, new) pairs applied in order; each `old` must occur exactly once in the file.
    edits: tuple[tuple[str, str], ...]
    breaks: str
    # Test files or node ids, the likeliest catcher first (pytest stops at the first failure).
    tests: tuple[str, ...]


MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        name="refuse-all",
        file=CONFIRM,
        edits=(
            (
                'exact call; return its nonce."""\n',
                'exact call; return its nonce."""\n'
                '        raise TokenRejected("mutant refuse-all")\n',
            ),
        ),
        breaks="every confirmation token is refused",
        tests=(T_MACHINE, T_BULK),
    ),
    Mutant(
        name="digest-off",
        file=CONFIRM,
        edits=(('if payload.get("d") != request_digest(tool, path, body):', "if False:"),),
        breaks="a token fits other arguments (no request-digest check)",
        tests=(T_MACHINE, T_BULK),
    ),
    Mutant(
        name="expiry-boundary",
        file=CONFIRM,
        edits=(
            (
                'if float(payload.get("e", 0)) <= self._clock.time():',
                'if float(payload.get("e", 0)) < self._clock.time():',
            ),
        ),
        breaks="a token is still accepted at the exact second it expires",
        tests=(T_BULK, T_MACHINE),
    ),
    Mutant(
        name="mac-off",
        file=CONFIRM,
        edits=(("if not hmac.compare_digest(mac, self._mac(encoded)):", "if False:"),),
        breaks="forged tokens and other secrets' tokens pass the HMAC check",
        tests=(T_BULK, T_REPLICAS),
    ),
    Mutant(
        name="single-use-off",
        file=CONFIRM,
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
        # Once a job exists, Close's recent jobs refuse the reuse anyway (the replay check);
        # only a reuse after an outcome-unknown POST, which made no job, needs the nonce.
        tests=(T_FAULTS, T_BULK, T_MACHINE),
    ),
    Mutant(
        name="count-off",
        file=CONFIRM,
        edits=(('if payload.get("m") != matched:', "if False:"),),
        breaks="a token fits a selection whose count changed",
        tests=(T_BULK, T_MACHINE),
    ),
    Mutant(
        name="matches-always-true",
        file=WRITES,
        edits=(
            (
                "    def matches(self, item: dict[str, Any], body: dict[str, Any]) -> bool:\n",
                "    def matches(self, item: dict[str, Any], body: dict[str, Any]) -> bool:\n"
                "        return True\n",
            ),
        ),
        breaks="any recent job counts as this write's (replay check, reconciliation)",
        tests=(T_RECENT, T_FAULTS, T_REPLICAS),
    ),
    Mutant(
        name="created-after-always-true",
        file=WRITES,
        edits=(
            (
                "def _created_after(job: dict[str, Any], since: float) -> bool:\n",
                "def _created_after(job: dict[str, Any], since: float) -> bool:\n    return True\n",
            ),
        ),
        breaks="an old identical job counts as this write's (replay check, reconciliation)",
        tests=(T_RECENT, T_FAULTS, T_REPLICAS),
    ),
    Mutant(
        name="shared-wait-off",
        file=CLIENT,
        edits=(
            (
                "self._blocked_until = max(self._blocked_until, now + wait)",
                "await self._clock.sleep(wait)",
            ),
        ),
        breaks="a 429 wait holds only the call that met it, not concurrent calls",
        tests=(T_CLIENT, T_FAULTS),
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
        tests=(T_CLIENT, T_FAULTS),
    ),
    Mutant(
        name="no-confirmation-needed",
        file=WRITES,
        edits=(
            (
                "def needs_confirmation(context: WriteContext, request: WriteRequest) -> bool:\n",
                "def needs_confirmation(context: WriteContext, request: WriteRequest) -> bool:\n"
                "    return False\n",
            ),
        ),
        breaks="destructive writes are sent without a confirmation token",
        tests=(T_BULK, T_MACHINE),
    ),
    Mutant(
        name="elicitation-ignored",
        file=WRITES,
        edits=(
            (
                '    """Why the person\'s answer (or its absence) stops this write, or None to go'
                ' ahead."""\n',
                '    """Why the person\'s answer (or its absence) stops this write, or None to go'
                ' ahead."""\n    return None\n',
            ),
        ),
        breaks="the person's refusal (declined, cancelled, wrong count) is ignored",
        tests=(T_BULK, T_SEND_EMAIL),
    ),
)


# -- machinery ------------------------------------------------------------------------------


class Stale(Exception):
    """The table no longer fits the code."""


@dataclass(frozen=True)
class Run:
    returncode: int | None  # None: timed out
    seconds: float
    output: str


@dataclass(frozen=True)
class Outcome:
    mutant: Mutant
    verdict: str  # caught, SURVIVED, timeout, ERROR
    seconds: float
    detail: str  # the first failing test, or why the run broke


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
        for test in mutant.tests:
            if not (repo / test.split("::")[0]).is_file():
                raise Stale(f"{mutant.name}: test file {test.split('::')[0]} does not exist")


def environment(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root)  # the copy's package first, before the editable install
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTEST_ADDOPTS", None)
    return env


def run_tests(python: str, root: Path, tests: Sequence[str]) -> Run:
    started = time.monotonic()
    try:
        done = subprocess.run(  # noqa: S603
            [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *tests],
            cwd=root,
            env=environment(root),
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        return Run(None, time.monotonic() - started, out)
    return Run(done.returncode, time.monotonic() - started, done.stdout + done.stderr)


def imported_from(python: str, root: Path) -> Path:
    """Where the copy's environment imports the package from."""
    done = subprocess.run(  # noqa: S603
        [python, "-c", f"import {PACKAGE}; print({PACKAGE}.__file__)"],
        cwd=root,
        env=environment(root),
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(done.stdout.strip()).resolve()


def first_failure(output: str) -> str:
    for line in output.splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            return line.split(" - ")[0]
    return ""


def tail(output: str, lines: int = 25) -> str:
    return "\n".join(output.rstrip().splitlines()[-lines:])


def union(mutants: Sequence[Mutant]) -> list[str]:
    return list(dict.fromkeys(t for m in mutants for t in m.tests))


def run_mutant(
    python: str, snapshot: Path, files: Sequence[str], mutant: Mutant, root: Path
) -> Outcome:
    """Copy the snapshot to `root`, break the guard there, run the mutant's tests."""
    copy_tree(snapshot, files, root)
    target = root / mutant.file
    target.write_text(mutate(target.read_text(encoding="utf-8"), mutant), encoding="utf-8")
    run = run_tests(python, root, mutant.tests)
    shutil.rmtree(root)
    if run.returncode is None:
        return Outcome(mutant, "timeout", run.seconds, f"no answer in {TIMEOUT_S:.0f} s")
    if run.returncode == 0:
        return Outcome(mutant, "SURVIVED", run.seconds, "")
    if run.returncode == 1:
        return Outcome(mutant, "caught", run.seconds, first_failure(run.output))
    # 2: interrupted or collection error, 3: internal error, 4: usage, 5: nothing collected.
    return Outcome(
        mutant, "ERROR", run.seconds, f"pytest exit {run.returncode}\n{tail(run.output)}"
    )


def markdown_table(outcomes: Sequence[Outcome]) -> str:
    rows = [
        "| mutant | file | what it breaks | caught? | s |",
        "|---|---|---|---|--:|",
    ]
    for o in outcomes:
        caught = {"caught": "yes", "SURVIVED": "**no**", "timeout": "yes (timeout)"}.get(
            o.verdict, "**error**"
        )
        rows.append(
            f"| {o.mutant.name} | {o.mutant.file} | {o.mutant.breaks} | {caught} "
            f"| {o.seconds:.1f} |"
        )
    return "\n".join(rows)


def list_mutants(mutants: Sequence[Mutant]) -> None:
    for m in mutants:
        print(f"{m.name}  ({m.file}): {m.breaks}")
        for old, new in m.edits:
            print(f"    - {old.strip()!r}\n    + {new.strip()!r}")
        print(f"    tests: {' '.join(m.tests)}")


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
            where = imported_from(args.python, snapshot)
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
        base = run_tests(args.python, snapshot, baseline_tests)
        if base.returncode != 0:
            print(
                f"mutants.py: the unmutated tests fail (exit {base.returncode}), so no mutant "
                f"can be judged:\n{tail(base.output)}",
                file=sys.stderr,
            )
            return 2
        print(f"baseline: {' '.join(baseline_tests)} pass ({base.seconds:.1f} s)", flush=True)

        def one(mutant: Mutant) -> Outcome:
            outcome = run_mutant(args.python, snapshot, files, mutant, Path(tmp) / mutant.name)
            print(f"  {mutant.name}: {outcome.verdict} ({outcome.seconds:.1f} s)", flush=True)
            return outcome

        with ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            outcomes = list(pool.map(one, chosen))

    print()
    print(markdown_table(outcomes))
    print()
    for o in outcomes:
        if o.detail:
            print(f"{o.mutant.name}: {o.detail}")
    survived = [o.mutant.name for o in outcomes if o.verdict == "SURVIVED"]
    broken = [o.mutant.name for o in outcomes if o.verdict == "ERROR"]
    total = time.monotonic() - started
    print(
        f"\n{len(outcomes) - len(survived) - len(broken)} of {len(outcomes)} mutants caught; "
        f"survived: {', '.join(survived) or 'none'}; broken runs: {', '.join(broken) or 'none'}; "
        f"total {total:.0f} s (baseline {base.seconds:.0f} s)"
    )
    return 1 if survived or broken else 0


if __name__ == "__main__":
    sys.exit(main())
