"""The Results page in admin and the block_results command."""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from content.charts import Bar, bar_chart
from content.measurement_report import InvalidPeriod, parse_period
from content.models import Block
from segments.models import Segment
from tests.factories import (
    BlockFactory,
    BlockImpressionFactory,
    ConversionFactory,
    MembershipFactory,
    ProfileFactory,
    SegmentFactory,
)


@pytest.fixture
def hero_with_results(db: None) -> Block:
    """A hero with variants a and b and a holdout: 120 visitors each, b converts best."""
    block: Block = BlockFactory.create(key="hero-test", slot="hero", title="Hero <test>")
    campers: Segment = SegmentFactory.create(slug="campers", name="Campers")
    seen = timezone.now() - timedelta(days=2)
    for arm, holdout, buyers in (("a", False, 12), ("b", False, 30), ("", True, 10)):
        for index in range(120):
            profile = ProfileFactory.create()
            BlockImpressionFactory.create(
                block=block, profile=profile, variant=arm, holdout=holdout, timestamp=seen
            )
            if index < buyers:
                ConversionFactory.create(
                    profile=profile, revenue=50.0, timestamp=seen + timedelta(hours=1)
                )
            if index % 2 == 0:
                MembershipFactory.create(
                    profile=profile, segment=campers, entered_at=seen - timedelta(days=1)
                )
    return block


def test_staff_see_a_blocks_results_with_tables_charts_and_verdicts(
    admin_client: Client, hero_with_results: Block
) -> None:
    response = admin_client.get(f"/admin/content/block/{hero_with_results.pk}/results/")

    assert response.status_code == 200
    html = response.content.decode()
    assert "Results: Hero &lt;test&gt;" in html
    assert "variant b converts better: +16.7 points (95% CI +7.3 to +25.9)" in html
    assert "not yet significant: +1.7 points (95% CI -5.9 to +9.3)" in html
    assert html.count('<svg class="p13n-chart"') == 5
    assert "Campers · b" in html
    assert '<td class="num">360</td>' in html  # visitors of all arms
    assert "ssr: 360" in html


def test_the_results_page_is_linked_from_the_block_list_and_change_page(
    admin_client: Client, hero_with_results: Block
) -> None:
    link = f'href="/admin/content/block/{hero_with_results.pk}/results/"'

    listing = admin_client.get("/admin/content/block/").content.decode()
    change = admin_client.get(
        f"/admin/content/block/{hero_with_results.pk}/change/"
    ).content.decode()

    assert link in listing
    assert link in change


def test_visitors_and_staff_without_permission_cannot_see_results(hero_with_results: Block) -> None:
    url = f"/admin/content/block/{hero_with_results.pk}/results/"
    visitor = Client()
    customer = Client()
    customer.force_login(User.objects.create_user("customer", password="x"))
    clerk = Client()
    clerk.force_login(User.objects.create_user("clerk", password="x", is_staff=True))
    editor = Client()
    editor_user = User.objects.create_user("editor", password="x", is_staff=True)
    editor_user.user_permissions.add(Permission.objects.get(codename="view_block"))
    editor.force_login(editor_user)

    assert visitor.get(url).status_code == 302
    assert customer.get(url).status_code == 302
    assert clerk.get(url).status_code == 403
    assert editor.get(url).status_code == 200


def test_a_bad_period_is_a_400_naming_since(admin_client: Client, hero_with_results: Block) -> None:
    response = admin_client.get(
        f"/admin/content/block/{hero_with_results.pk}/results/?since=forever"
    )

    assert response.status_code == 400
    assert response.content.decode() == "since: 'forever' is not a period like 30d, 12h or 2w"


def test_an_unknown_block_is_404(admin_client: Client, db: None) -> None:
    assert admin_client.get("/admin/content/block/999/results/").status_code == 404


def test_block_results_command_prints_the_same_figures(hero_with_results: Block) -> None:
    out = StringIO()

    call_command("block_results", "--block", "hero-test", "--since", "7d", stdout=out)

    text = out.getvalue()
    assert text.startswith("hero-test: Hero <test>\n")
    assert "conversion rate, b vs holdout (25.0% vs 8.3%): variant b converts better" in text
    assert "holdout (control)" in text
    assert "impressions by channel: ssr 360" in text


def test_block_results_command_names_the_bad_option(db: None) -> None:
    with pytest.raises(CommandError, match="--block: no block has the key 'nope'"):
        call_command("block_results", "--block", "nope")
    with pytest.raises(CommandError, match="--since: '3x' is not a period"):
        call_command("block_results", "--since", "3x")


@pytest.mark.parametrize(
    ("text", "period"),
    [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)), ("2w", timedelta(weeks=2))],
)
def test_periods_are_read_in_hours_days_or_weeks(text: str, period: timedelta) -> None:
    assert parse_period(text) == period


@pytest.mark.parametrize("text", ["0d", "400d", "30", "d", "-3d", "3 days"])
def test_periods_outside_a_year_or_malformed_are_refused(text: str) -> None:
    with pytest.raises(InvalidPeriod):
        parse_period(text)


def test_chart_labels_are_escaped_and_bars_scale_to_the_largest_value() -> None:
    svg = str(
        bar_chart([Bar("<script>x</script>", 0.5, "50.0%"), Bar("b", 0.25, "25.0%")], title="T & U")
    )

    assert "<script>" not in svg
    assert "&lt;script&gt;x&lt;/script&gt;" in svg
    assert "<title>T &amp; U</title>" in svg
    widths = re.findall(r'<rect x="\d+" y="\d+" width="([\d.]+)"', svg)
    assert float(widths[0]) == 2 * float(widths[1])
