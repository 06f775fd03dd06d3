"""Fixtures the unit tests share: a fake Close that counts its listings, and a catalog over it
(`tests/catalog.py`)."""

from __future__ import annotations

import pytest

from close_mcp.close.catalog import Catalog
from tests.catalog import FakeClose, make_catalog


@pytest.fixture
def fake() -> FakeClose:
    return FakeClose()


@pytest.fixture
def catalog(fake: FakeClose) -> Catalog:
    return make_catalog(fake)
