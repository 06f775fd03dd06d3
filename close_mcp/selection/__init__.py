"""The selection language: friendly filters and raw `s_query` trees, validated and resolved
to the one Close query every preview shows."""
