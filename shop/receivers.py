"""The shop's part of a profile merge: carts and orders follow the person."""

from __future__ import annotations

from typing import Any

from django.db.models import F

from shop.models import CartLine, Order


def move_shop_rows(sender: Any, *, source_id: int, target_id: int, **_: Any) -> None:
    for line in CartLine.objects.filter(profile_id=source_id):
        # The same product in both carts: add the quantities (one line per product).
        merged = CartLine.objects.filter(profile_id=target_id, product_id=line.product_id).update(
            quantity=F("quantity") + line.quantity
        )
        if merged:
            line.delete()
        else:
            CartLine.objects.filter(pk=line.pk).update(profile_id=target_id)
    Order.objects.filter(profile_id=source_id).update(profile_id=target_id)
