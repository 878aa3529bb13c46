"""Shop actions. Each one is also recorded as a tracked event, like a real shop's server would."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.db.models import F
from django.urls import reverse

from personalize.services import profile_for_visitor, track_server_event
from personalize.visitors import Visitor
from shop.models import CartLine, Order, OrderLine, Product


class EmptyCart(Exception):
    pass


def product_properties(product: Product, quantity: int = 1) -> dict[str, object]:
    """A product as Segment's e-commerce spec describes it in events (the url lets
    recommendations link to it without knowing the shop)."""
    return {
        "product_id": str(product.pk),
        "sku": product.slug,
        "name": product.name,
        "category": product.category.slug,
        "price": float(product.price),
        "quantity": quantity,
        "url": reverse("product", kwargs={"slug": product.slug}),
    }


@transaction.atomic
def cart_add(*, visitor: Visitor, product: Product, quantity: int = 1) -> CartLine:
    profile = profile_for_visitor(visitor)
    line, created = CartLine.objects.get_or_create(
        profile=profile, product=product, defaults={"quantity": quantity}
    )
    if not created:
        CartLine.objects.filter(pk=line.pk).update(quantity=F("quantity") + quantity)
        line.refresh_from_db()
    track_server_event(
        visitor=visitor, event="add_to_cart", properties=product_properties(product, quantity)
    )
    return line


@transaction.atomic
def checkout(*, visitor: Visitor, email: str = "") -> Order:
    profile = profile_for_visitor(visitor)
    lines = list(
        CartLine.objects.select_related("product", "product__category").filter(profile=profile)
    )
    if not lines:
        raise EmptyCart("the cart is empty")
    total = sum((line.subtotal for line in lines), Decimal("0"))
    order = Order.objects.create(profile=profile, email=email, total=total)
    OrderLine.objects.bulk_create(
        OrderLine(
            order=order, product=line.product, quantity=line.quantity, price=line.product.price
        )
        for line in lines
    )
    CartLine.objects.filter(profile=profile).delete()
    track_server_event(
        visitor=visitor,
        event="order_completed",
        properties={
            "order_id": str(order.pk),
            "revenue": float(total),
            "currency": "EUR",
            "products": [product_properties(line.product, line.quantity) for line in lines],
        },
    )
    return order
