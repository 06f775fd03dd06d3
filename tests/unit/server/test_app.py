"""`close_mcp.server.app.instructions`: the actions said to run at once are the unconfirmed
ones among the tools this server lists (each action is named after its toolset)."""

from __future__ import annotations

from close_mcp.config import load_settings
from close_mcp.server.app import INSTRUCTIONS, instructions

ENV = {"CLOSE_API_KEY": "api_x", "HOME": "/home/u"}
RUN_AT_ONCE = " On this server these actions run at once (CLOSE_MCP_CONFIRM leaves them out): "


def test_an_unconfirmed_opt_in_action_is_told_only_when_its_toolset_is_on() -> None:
    off = load_settings({**ENV, "CLOSE_MCP_CONFIRM": "email,sequences,send,delete"})
    assert instructions(off).removeprefix(INSTRUCTIONS).startswith(f"{RUN_AT_ONCE}edit. ")
    every = load_settings(
        {**ENV, "CLOSE_MCP_CONFIRM": "email,sequences,send,delete", "CLOSE_MCP_TOOLSETS": "all"}
    )
    said = instructions(every).removeprefix(INSTRUCTIONS)
    assert said.startswith(f"{RUN_AT_ONCE}edit, export, opportunities, tasks. ")
    assert instructions(load_settings({**ENV, "CLOSE_MCP_TOOLSETS": "all"})) == INSTRUCTIONS
