#!/usr/bin/env bash
# Outside clients: install the pinned npm tools (MCP Inspector CLI, MCP conformance suite, Node 22)
# and LangChain's separate venv into .ci/cache/ (ignored by git), then run the tests that use them.
#
#   bash .ci/outside-clients.sh            install, then run tests/outside and tests/test_examples.py
#   bash .ci/outside-clients.sh install    install only (.ci/run's main pytest then runs the tests)
#
# Uses PYTHON, else the project venv's python (.venv), else python3. Any install failure fails
# the script with its reason; only on a developer's machine (CI unset) is an unreachable npm
# registry or PyPI reported and skipped (exit 0), and the tests that need the tool then skip.
# tests/outside/test_toolcache.py checks both against a registry that cannot be reached.
set -euo pipefail
cd "$(dirname "$0")/.."

python="${PYTHON:-.venv/bin/python}"
[ -x "$python" ] || python="$(command -v python3)"

start=$(date +%s)
"$python" -m tests.outside.toolcache install
echo "outside tools ready in $(( $(date +%s) - start ))s"

if [ "${1:-}" != "install" ]; then
    "$python" -m pytest -q tests/outside tests/test_examples.py
    echo "outside clients done in $(( $(date +%s) - start ))s"
fi
