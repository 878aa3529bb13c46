from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from shop.selectors import featured_products


def home(request: HttpRequest) -> HttpResponse:
    response = render(request, "home.jinja", {"products": featured_products()})
    # The page is personalized per visitor: keep shared caches out of it.
    response["Cache-Control"] = "private, no-cache"
    return response
