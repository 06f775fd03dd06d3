"""Compact tool schemas: shorter, and accepting exactly what the long form accepted."""

from __future__ import annotations

import pytest

from close_mcp.server.compact import compact_input, compact_output, without_nulls
from tests.harness import MODES, Harness


def test_input_schema_loses_titles_and_null_arms() -> None:
    schema = {
        "title": "searchArguments",
        "type": "object",
        "properties": {
            "title": {"title": "Title", "type": "string"},
            "limit": {"anyOf": [{"type": "integer"}, {"type": "null"}], "default": None},
            "either": {
                "anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}],
                "default": None,
                "description": "kept",
            },
        },
        "$defs": {"Inner": {"title": "Inner", "type": "object"}},
    }
    assert compact_input(schema) == {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "limit": {"type": "integer"},
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}], "description": "kept"},
        },
        "$defs": {"Inner": {"type": "object"}},
    }


def test_without_nulls_drops_null_members_only() -> None:
    assert without_nulls({"a": None, "b": {"c": None, "d": [None, 1]}, "e": 0}) == {
        "b": {"d": [None, 1]},
        "e": 0,
    }


@pytest.mark.anyio
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.harness(n_leads=30)
async def test_null_arguments_count_as_not_given(h: Harness) -> None:
    result = await h.call(
        "search_leads",
        {
            "filter": {"lead_status": "Qualified", "name": None},
            "s_query": None,
            "results_limit": None,
        },
    )
    assert result["results_limit"] is None
    assert result["total"] >= 0
    error = await h.error("search_leads", {"filter": {"lead_status": "Qualified"}, "sort": 5})
    assert error == "sort: 5 is not of type 'array'"


def test_output_schema_keeps_the_fields_every_result_has() -> None:
    schema = {
        "title": "Result",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "status": {"enum": ["preview", "submitted"], "type": "string", "description": "x"},
            "job": {"anyOf": [{"$ref": "#/$defs/Job"}, {"type": "null"}], "default": None},
        },
        "required": ["status"],
        "$defs": {"Job": {"type": "object", "properties": {"id": {"type": "string"}}}},
    }
    assert compact_output(schema) == {"type": "object", "required": ["status"]}
    assert compact_output({"type": "object", "properties": {"a": {}}}) == {"type": "object"}


def test_listed_input_is_lean_and_describes_shared_definitions_once() -> None:
    from close_mcp.server.compact import SharedDefinitions, listed_input

    inner = {
        "type": "object",
        "additionalProperties": False,
        "properties": {"name": {"type": "string", "maxLength": 9, "description": "Words."}},
    }
    schema = {
        "type": "object",
        "properties": {
            "filter": {"$ref": "#/$defs/Filter", "description": "Which leads."},
            "edit": {
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {"type": {"const": "a"}, "x": {"type": "string"}},
                        "required": ["type", "x"],
                    },
                    {
                        "type": "object",
                        "properties": {"type": {"const": "b"}},
                        "required": ["type"],
                    },
                ],
                "discriminator": {"propertyName": "type"},
            },
            "tags": {
                "anyOf": [
                    {"type": "object", "additionalProperties": {"type": "string"}},
                    {"type": "array", "items": {"type": "string"}, "maxItems": 3},
                ]
            },
        },
        "required": ["edit"],
        "$defs": {"Filter": inner},
    }
    shared = SharedDefinitions()
    first = listed_input(schema, tool="one", shared=shared)
    assert first == {
        "type": "object",
        "properties": {
            "filter": {
                "type": ["object", "null"],
                "properties": {"name": {"type": ["string", "null"], "description": "Words."}},
                "description": "Which leads.",
            },
            "edit": {
                "type": "object",
                "properties": {
                    "type": {"type": "string", "enum": ["a", "b"]},
                    "x": {"type": ["string", "null"], "description": "a, required"},
                },
                "required": ["type"],
            },
            "tags": {"type": ["array", "null"], "items": {"type": "string"}},
        },
        "required": ["edit"],
    }
    second = listed_input(schema, tool="two", shared=shared)
    assert second["properties"]["filter"] == {
        "type": ["object", "null"],
        "properties": {"name": {"type": ["string", "null"]}},
        "description": "Fields as in filter of one.",
    }
