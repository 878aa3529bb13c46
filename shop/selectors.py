from __future__ import annotations

from django.db.models import QuerySet

from config.stamps import ProcessCache
from shop.models import PRODUCTS_STAMP, CartLine, Category, Product

# The homepage shows them to everyone: kept per process until a product or category
# is written. The instances are shared by the process's threads: read them only.
_featured: ProcessCache[tuple[Product, ...]] = ProcessCache(PRODUCTS_STAMP, max_age_seconds=60)


def featured_products(limit: int = 6) -> list[Product]:
    def load() -> tuple[Product, ...]:
        return tuple(Product.objects.select_related("category").order_by("id")[:limit])

    return list(_featured.get(limit, load))


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
