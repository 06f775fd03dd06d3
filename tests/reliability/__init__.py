"""Reliability and security suites: fuzzing, confirmation, faults, load, secrets, HTTP (issue 7)."""
