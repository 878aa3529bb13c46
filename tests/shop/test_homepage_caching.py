"""The homepage keeps what is the same for everyone per process (the web source's write
key, the featured products) and shows the next page any change to them."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.conf import settings
from django.test import Client
from pytest_django import DjangoAssertNumQueries

from personalize.models import Identity, Source
from shop.models import Category, Product
from tests.factories import IdentityFactory, ProductFactory, ProfileFactory

WRITE_KEY = re.compile(r'p13n\.load\("([^"]+)"\)')


@pytest.fixture
def visitor_client(db: None) -> Client:
    """A returning visitor with a profile (their memberships are read per page)."""
    profile = ProfileFactory.create()
    IdentityFactory.create(profile=profile, kind=Identity.Kind.ANONYMOUS_ID, value="anon-1")
    client = Client()
    client.cookies["ajs_anonymous_id"] = "anon-1"
    return client


def _write_key(client: Client) -> str:
    match = WRITE_KEY.search(client.get("/").content.decode())
    assert match is not None
    return match.group(1)


def test_a_warm_homepage_reads_only_the_visitors_memberships(
    tent: Product, visitor_client: Client, django_assert_num_queries: DjangoAssertNumQueries
) -> None:
    # The first page creates the web source, which bumps the sources' stamp: the
    # second reads the key once more; from then on it is kept.
    visitor_client.get("/")
    visitor_client.get("/")

    with django_assert_num_queries(1):
        page = visitor_client.get("/")

    assert page.status_code == 200
    assert "Tent" in page.content.decode()
    assert page["Cache-Control"] == "private, no-cache"


def test_a_rotated_write_key_is_embedded_by_the_next_page(visitor_client: Client) -> None:
    first = _write_key(visitor_client)
    source = Source.objects.get(name=settings.P13N_WEB_SOURCE)
    assert first == source.write_key

    source.write_key = "rotated-by-save"
    source.save()
    after_save = _write_key(visitor_client)
    Source.objects.filter(pk=source.pk).update(write_key="rotated-by-update")
    after_update = _write_key(visitor_client)

    assert (after_save, after_update) == ("rotated-by-save", "rotated-by-update")


def test_a_deleted_web_source_is_created_again_with_a_new_key(visitor_client: Client) -> None:
    first = _write_key(visitor_client)

    Source.objects.filter(name=settings.P13N_WEB_SOURCE).delete()
    second = _write_key(visitor_client)

    assert second != first
    assert Source.objects.get(name=settings.P13N_WEB_SOURCE).write_key == second


def test_an_edited_product_or_category_is_shown_by_the_next_page(
    tent: Product, visitor_client: Client
) -> None:
    assert "Tent" in visitor_client.get("/").content.decode()

    tent.name = "Ultralight tent"
    tent.save()
    renamed = visitor_client.get("/").content.decode()
    Product.objects.filter(pk=tent.pk).update(price=Decimal("199.00"))
    repriced = visitor_client.get("/").content.decode()
    ProductFactory.create(slug="stove", name="Stove", category=Category.objects.get())
    added = visitor_client.get("/").content.decode()

    assert "Ultralight tent" in renamed
    assert "€199.00" in repriced
    assert "€289.00" not in repriced
    assert "Stove" in added
