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


def export_shop_rows(sender: Any, *, profile_id: int, into: dict[str, Any], **_: Any) -> None:
    into["orders"] = [
        {
            "order_id": order.pk,
            "total": str(order.total),
            "email": order.email,
            "created_at": order.created_at.isoformat(),
            "lines": [
                {"product": line.product.slug, "quantity": line.quantity, "price": str(line.price)}
                for line in order.lines.all()
            ],
        }
        for order in Order.objects.filter(profile_id=profile_id).prefetch_related("lines__product")
    ]
    into["cart"] = [
        {"product": line.product.slug, "quantity": line.quantity}
        for line in CartLine.objects.filter(profile_id=profile_id).select_related("product")
    ]


def erase_shop_rows(sender: Any, *, profile_id: int, **_: Any) -> None:
    # Orders cascade with the profile; deleting them here too keeps the erase explicit.
    CartLine.objects.filter(profile_id=profile_id).delete()
    Order.objects.filter(profile_id=profile_id).delete()
