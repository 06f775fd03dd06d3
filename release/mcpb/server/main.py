"""The bundle's entry point: `close-mcp serve` over stdio, from the wheel the bundle carries.

The host runs it with uv (`uv run --directory <bundle> server/main.py`), which installs the
wheel in `server/` and its dependencies from the bundle's pyproject.toml first. Settings come
from the environment the manifest's `mcp_config.env` fills from the user's settings.
"""

from close_mcp.cli.main import main

raise SystemExit(main(["serve"]))
