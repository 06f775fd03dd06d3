"""The grammar of Close's query tree as JSON Schema: valid, closed, and complete."""

from __future__ import annotations

from jsonschema import Draft202012Validator

from close_mcp.selection.grammar import SORT_SCHEMA, SQUERY_SCHEMA


def test_schemas_are_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SQUERY_SCHEMA)
    Draft202012Validator.check_schema(SORT_SCHEMA)
    assert SQUERY_SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_every_object_schema_forbids_unknown_keys() -> None:
    variants = {name: d for name, d in SQUERY_SCHEMA["$defs"].items() if "allOf" not in d}
    assert len(variants) == 20  # 8 nodes, 2 field refs, 6 conditions, 4 moments
    for schema in variants.values():
        assert schema["additionalProperties"] is False
    assert variants["moment_offset"]["properties"]["offset"]["additionalProperties"] is False
    assert SORT_SCHEMA["items"]["additionalProperties"] is False


def test_every_grammar_element_has_a_definition() -> None:
    defs = SQUERY_SCHEMA["$defs"]
    assert defs["node"]["properties"]["type"]["enum"] == [
        "and",
        "or",
        "object_type",
        "field_condition",
        "has_related",
        "match_all",
        "saved_search",
        "text",
    ]
    assert defs["field"]["properties"]["type"]["enum"] == ["regular_field", "custom_field"]
    assert defs["condition"]["properties"]["type"]["enum"] == [
        "text",
        "term",
        "reference",
        "number_range",
        "moment_range",
        "exists",
    ]
    assert defs["moment"]["properties"]["type"]["enum"] == [
        "now",
        "fixed_utc",
        "fixed_local_date",
        "offset",
    ]
