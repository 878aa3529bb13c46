"""The demo shop: pages render, cart and checkout write rows and tracked events."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from pytest_django import DjangoCaptureOnCommitCallbacks

from personalize.models import Event, Identity
from segments.models import Membership
from shop.models import CartLine, Order, OrderLine, Product
from tests.factories import ProductFactory


@pytest.fixture
def visitor(client: Client) -> str:
    """A browser that has been to the shop once and holds its anonymous id cookie."""
    return client.get("/shop/").cookies["ajs_anonymous_id"].value


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("/shop/", "Tent"),
        ("/shop/?category=camping", "Tent"),
        ("/shop/p/tent/", "€289.00"),
        ("/shop/cart/", "Your cart is empty."),
        ("/shop/checkout/", "Your cart is empty."),
    ],
)
def test_shop_pages_render(client: Client, tent: Product, path: str, text: str) -> None:
    response = client.get(path)

    assert response.status_code == 200
    assert text in response.content.decode()
    assert response["Cache-Control"] == "private, no-cache"


def test_unknown_product_is_404(client: Client, tent: Product) -> None:
    assert client.get("/shop/p/no-such-thing/").status_code == 404


def test_add_to_cart_stores_a_line_and_an_add_to_cart_event(
    client: Client, tent: Product, visitor: str
) -> None:
    response = client.post("/shop/p/tent/add/")

    assert response.status_code == 302
    assert response["Location"] == "/shop/cart/"
    line = CartLine.objects.get()
    assert (line.product_id, line.quantity) == (tent.pk, 1)
    assert line.profile.identities.get().value == visitor
    event = Event.objects.get()
    assert (event.type, event.name, event.anonymous_id, event.source.name) == (
        "track",
        "add_to_cart",
        visitor,
        "server",
    )
    assert event.properties == {
        "product_id": str(tent.pk),
        "sku": "tent",
        "name": "Tent",
        "category": "camping",
        "price": 289.0,
        "quantity": 1,
        "url": "/shop/p/tent/",
    }
    assert event.profile_id == line.profile_id


def test_adding_the_same_product_twice_raises_the_quantity(
    client: Client, tent: Product, visitor: str
) -> None:
    client.post("/shop/p/tent/add/")
    client.post("/shop/p/tent/add/")

    assert list(CartLine.objects.values_list("quantity", flat=True)) == [2]
    assert Event.objects.filter(name="add_to_cart").count() == 2
    cart = client.get("/shop/cart/").content.decode()
    assert "€578.00" in cart


def test_add_to_cart_needs_post(client: Client, tent: Product) -> None:
    assert client.get("/shop/p/tent/add/").status_code == 405
    assert CartLine.objects.count() == 0


def test_checkout_creates_an_order_tracks_revenue_and_empties_the_cart(
    client: Client, tent: Product, visitor: str
) -> None:
    stove = ProductFactory.create(slug="stove", name="Stove", category=tent.category, price="59.00")
    client.post("/shop/p/tent/add/")
    client.post("/shop/p/stove/add/")
    client.post("/shop/p/stove/add/")

    response = client.post("/shop/checkout/", {"email": "ann@example.com"})

    assert response.status_code == 200
    order = Order.objects.get()
    assert (order.total, order.email) == (Decimal("407.00"), "ann@example.com")
    assert f"Order {order.pk} is placed: €407.00." in response.content.decode()
    assert sorted(OrderLine.objects.values_list("product_id", "quantity", "price")) == sorted(
        [(tent.pk, 1, Decimal("289.00")), (stove.pk, 2, Decimal("59.00"))]
    )
    assert CartLine.objects.count() == 0
    completed = Event.objects.get(name="order_completed")
    assert completed.anonymous_id == visitor
    assert completed.properties["order_id"] == str(order.pk)
    assert (completed.properties["revenue"], completed.properties["currency"]) == (407.0, "EUR")
    assert sorted((p["sku"], p["quantity"]) for p in completed.properties["products"]) == [
        ("stove", 2),
        ("tent", 1),
    ]


def test_checkout_with_an_empty_cart_redirects_and_creates_no_order(
    client: Client, tent: Product, visitor: str
) -> None:
    response = client.post("/shop/checkout/", {"email": "ann@example.com"})

    assert response.status_code == 302
    assert response["Location"] == "/shop/cart/"
    assert Order.objects.count() == 0
    assert Event.objects.filter(name="order_completed").count() == 0
    # The failed checkout leaves no trace of the visitor either.
    assert Identity.objects.count() == 0
    assert "Your cart is empty." in client.get("/shop/cart/").content.decode()


def test_another_visitors_cart_is_not_checked_out(
    client: Client, tent: Product, visitor: str
) -> None:
    client.post("/shop/p/tent/add/")
    other = Client()
    other.get("/shop/")

    response = other.post("/shop/checkout/")

    assert response.status_code == 302
    assert Order.objects.count() == 0
    assert CartLine.objects.count() == 1


def test_two_orders_over_500_in_30_days_make_a_high_value_customer(
    client: Client,
    demo_data: None,
    django_capture_on_commit_callbacks: DjangoCaptureOnCommitCallbacks,
) -> None:
    anonymous_id = client.get("/").cookies["ajs_anonymous_id"].value

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/shop/p/trail-tent-2p/add/")
        client.post("/shop/checkout/")
    profile = Identity.objects.get(value=anonymous_id).profile
    after_one = set(
        Membership.objects.filter(profile=profile, exited_at__isnull=True).values_list(
            "segment__slug", flat=True
        )
    )
    assert "high-value-customers" not in after_one

    with django_capture_on_commit_callbacks(execute=True):
        client.post("/shop/p/down-sleeping-bag/add/")
        client.post("/shop/checkout/")

    assert list(Order.objects.order_by("total").values_list("total", flat=True)) == [
        Decimal("289.00"),
        Decimal("329.00"),
    ]
    membership = Membership.objects.get(
        profile=profile, segment__slug="high-value-customers", exited_at__isnull=True
    )
    assert [r["text"] for r in membership.entry_reason] == [
        "count of order_completed in the last 30d is 2; needs ≥ 2",
        "sum of revenue of order_completed in the last 30d is 618; needs > 500",
    ]
    api = client.get("/api/v1/blocks", {"slot": "hero"}).json()
    assert "high-value-customers" in api["segments"]
    assert api["slots"]["hero"][0]["key"] == "hero-vip"
