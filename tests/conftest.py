"""Shared fixtures: every async test runs on asyncio through anyio's pytest plugin.

A test that talks to a server takes `h`, a started `Harness` stopped at teardown:

    @pytest.mark.harness(n_leads=60, confirm="edit")
    @pytest.mark.parametrize("mode", MODES)
    async def test_something(h: Harness) -> None: ...

`harness` markers give `Harness.start`'s options: a module's `pytestmark` sets its defaults, a
test's own marker overrides them key by key; `audited=True` writes the audit log to the test's
`tmp_path`, `store_file=True` keeps the state store in a SQLite file there (as `close-mcp
restore` has by default) instead of in memory. The era is the `mode` fixture: "legacy" unless
the test parametrizes `mode`.
A test whose options are made in its body (a sandbox, a clock, a transport), or that starts more
than one server, calls `start_harness(**options)` instead: the same defaults, keyword arguments
on top, each harness stopped at teardown, the last started first.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import pytest

from tests.harness import Harness, Mode, StartHarness
from tests.reliability.support import FIGURES


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "harness(**options): Harness.start options for the h and start_harness fixtures "
        "(audited=True: the audit log in tmp_path)",
    )


@pytest.hookimpl(optionalhook=True)  # without pytest-xdist (`-p no:xdist`) nobody calls it
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto` (README's test command): a worker per core, and one more. Much of the suite
    waits on child processes (real servers, replicas, outside clients) and on real-time rate
    limits, leaving a core idle meanwhile: on 2 cores the suite took 453 s with 2 workers and
    410 s with 3."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (cores or 1) + 1


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def mode() -> Mode:
    """The MCP era the harness speaks; `@pytest.mark.parametrize("mode", MODES)` runs both."""
    return "legacy"


@pytest.fixture
def harness_options(request: pytest.FixtureRequest, mode: Mode) -> dict[str, Any]:
    """The options the `harness` markers give, the closest marker winning key by key."""
    options: dict[str, Any] = {"mode": mode}
    for marker in reversed(list(request.node.iter_markers("harness"))):
        options.update(marker.kwargs)
    if options.pop("audited", False):
        options["audit_dir"] = request.getfixturevalue("tmp_path")
    if options.pop("store_file", False):
        store = request.getfixturevalue("tmp_path") / "state.sqlite3"
        options["env"] = {"CLOSE_MCP_STORE": str(store), **options.get("env", {})}
    return options


@pytest.fixture
async def start_harness(harness_options: dict[str, Any]) -> AsyncIterator[StartHarness]:
    async with AsyncExitStack() as stack:

        async def start(**options: Any) -> Harness:
            started = Harness.start(**{**harness_options, **options})
            return await stack.enter_async_context(started)

        yield start


@pytest.fixture
async def h(start_harness: StartHarness) -> Harness:
    return await start_harness()


# -- what the reliability suites measured, printed after the run -----------------------------
#
# Under pytest-xdist (README's test command runs `-n auto --dist loadfile`: each file whole on
# one worker) the tests record their figures in the workers; each worker hands them to the
# controller as it stops, and the controller prints them all.


def pytest_sessionfinish(session: pytest.Session) -> None:
    output = getattr(session.config, "workeroutput", None)
    if output is not None:  # a pytest-xdist worker
        output["close_mcp_figures"] = dict(FIGURES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """pytest-xdist's controller: a worker stopped; take its figures."""
    FIGURES.update(getattr(node, "workeroutput", {}).get("close_mcp_figures", {}))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.section("close-mcp reliability figures")
    for name, value in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{name}: {value}")
