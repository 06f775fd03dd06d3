"""`close_mcp.wording`: a message's optional sentences."""

from __future__ import annotations

from close_mcp.wording import sentences


def test_only_the_sentences_whose_condition_holds_are_said_in_their_order() -> None:
    parts = ((2, "two"), (0, "none"), ([], "empty"), (["x"], "one"), (None, "no"), ("why", "w"))
    assert sentences(*parts) == ["two", "one", "w"]
    assert sentences() == []
