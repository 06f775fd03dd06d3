"""A catalog over a fake Close that counts its listings (`tests.test_catalog`)."""

from __future__ import annotations

import pytest

from close_mcp.close.catalog import Catalog
from tests.test_catalog import FakeClose, make_catalog


@pytest.fixture
def fake() -> FakeClose:
    return FakeClose()


@pytest.fixture
def catalog(fake: FakeClose) -> Catalog:
    return make_catalog(fake)
