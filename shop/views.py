from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from personalize.selectors import profile_id_for_request
from shop import selectors, services
from shop.models import Product


def _private(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "private, no-cache"
    return response


def catalog(request: HttpRequest) -> HttpResponse:
    category = request.GET.get("category") or None
    context = {
        "products": selectors.product_list(category_slug=category),
        "categories": selectors.categories(),
        "current_category": category,
    }
    return _private(render(request, "shop/catalog.jinja", context))


def product_detail(request: HttpRequest, slug: str) -> HttpResponse:
    product = get_object_or_404(Product.objects.select_related("category"), slug=slug)
    return _private(render(request, "shop/product.jinja", {"product": product}))


@require_POST
def cart_add(request: HttpRequest, slug: str) -> HttpResponse:
    product = get_object_or_404(Product.objects.select_related("category"), slug=slug)
    services.cart_add(visitor=request.visitor, product=product)  # type: ignore[attr-defined]
    messages.success(request, f"{product.name} is in your cart.")
    return redirect("cart")


def cart(request: HttpRequest) -> HttpResponse:
    lines = selectors.cart_lines(profile_id=profile_id_for_request(request))
    total = sum(line.subtotal for line in lines)
    return _private(render(request, "shop/cart.jinja", {"lines": lines, "total": total}))


def checkout(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        try:
            order = services.checkout(
                visitor=request.visitor,  # type: ignore[attr-defined]
                email=request.POST.get("email", "")[:254],
            )
        except services.EmptyCart:
            messages.error(request, "Your cart is empty.")
            return redirect("cart")
        return _private(render(request, "shop/thanks.jinja", {"order": order}))
    lines = selectors.cart_lines(profile_id=profile_id_for_request(request))
    total = sum(line.subtotal for line in lines)
    return _private(render(request, "shop/checkout.jinja", {"lines": lines, "total": total}))
