from __future__ import annotations

from decimal import Decimal

import pytest

from shop.models import Product
from tests.factories import CategoryFactory, ProductFactory


@pytest.fixture
def tent(db: None) -> Product:
    """A camping product at 289.00 (the shop's and the homepage's tests)."""
    camping = CategoryFactory.create(slug="camping", name="Camping")
    product: Product = ProductFactory.create(
        slug="tent", name="Tent", category=camping, price=Decimal("289.00")
    )
    return product
