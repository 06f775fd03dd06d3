#!/usr/bin/env bash
# Outside clients: install the pinned npm tools (MCP Inspector CLI, MCP conformance suite, Node 22)
# and LangChain's separate venv into .ci/cache/ (ignored by git), then run the tests that use them.
#
#   bash .ci/outside-clients.sh            install, then run tests/outside and tests/test_examples.py
#   bash .ci/outside-clients.sh install    install only (.ci/run's main pytest then runs the tests)
#
# Uses the project venv's python (.venv, else PYTHON). An unreachable npm registry or PyPI is
# reported and skipped; any other install failure fails the script.
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
