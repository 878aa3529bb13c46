from __future__ import annotations

from django.db.models import QuerySet

from shop.models import CartLine, Category, Product


def featured_products(limit: int = 6) -> list[Product]:
    return list(Product.objects.select_related("category").order_by("id")[:limit])


def product_list(*, category_slug: str | None = None) -> QuerySet[Product]:
    products = Product.objects.select_related("category")
    if category_slug:
        products = products.filter(category__slug=category_slug)
    return products


def categories() -> QuerySet[Category]:
    return Category.objects.all()


def cart_lines(*, profile_id: int | None) -> list[CartLine]:
    if profile_id is None:
        return []
    return list(
        CartLine.objects.filter(profile_id=profile_id).select_related(
            "product", "product__category"
        )
    )
