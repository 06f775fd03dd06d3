"""`close_mcp.wording`: a count of leads in words, a message's optional sentences."""

from __future__ import annotations

from close_mcp.wording import leads, sentences


def test_only_the_sentences_whose_condition_holds_are_said_in_their_order() -> None:
    parts = ((2, "two"), (0, "none"), ([], "empty"), (["x"], "one"), (None, "no"), ("why", "w"))
    assert sentences(*parts) == ["two", "one", "w"]
    assert sentences() == []


def test_a_count_of_leads_is_singular_only_for_one() -> None:
    assert [leads(n) for n in (0, 1, 2)] == ["0 leads", "1 lead", "2 leads"]
