from __future__ import annotations

from decimal import Decimal

import pytest

from personalize.models import Identity, Profile
from personalize.services import resolve_profile
from shop.models import CartLine, Order
from tests.factories import IdentityFactory, ProductFactory, ProfileFactory


@pytest.mark.django_db
def test_merging_profiles_moves_cart_lines_and_orders_and_adds_quantities_of_the_same_product() -> (
    None
):
    tent, stove = ProductFactory.create(), ProductFactory.create()
    anonymous = IdentityFactory.create(kind=Identity.Kind.ANONYMOUS_ID, value="anon-1").profile
    known = IdentityFactory.create(kind=Identity.Kind.USER_ID, value="user-1").profile
    CartLine.objects.create(profile=anonymous, product=tent, quantity=2)
    CartLine.objects.create(profile=anonymous, product=stove, quantity=1)
    CartLine.objects.create(profile=known, product=tent, quantity=1)
    Order.objects.create(profile=anonymous, total=Decimal("59.00"))

    survivor = resolve_profile(anonymous_id="anon-1", user_id="user-1")

    assert survivor.pk == known.pk
    assert not Profile.objects.filter(pk=anonymous.pk).exists()
    lines = {line.product_id: line.quantity for line in CartLine.objects.filter(profile=known)}
    assert lines == {tent.pk: 3, stove.pk: 1}
    assert list(Order.objects.filter(profile=known).values_list("total", flat=True)) == [
        Decimal("59.00")
    ]


@pytest.mark.django_db
def test_a_profile_without_shop_rows_merges_without_creating_any() -> None:
    IdentityFactory.create(kind=Identity.Kind.ANONYMOUS_ID, value="anon-2")
    known = IdentityFactory.create(
        kind=Identity.Kind.USER_ID, value="user-2", profile=ProfileFactory.create()
    ).profile

    resolve_profile(anonymous_id="anon-2", user_id="user-2")

    assert CartLine.objects.filter(profile=known).count() == 0
    assert Order.objects.filter(profile=known).count() == 0
