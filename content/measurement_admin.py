"""The admin's Results page of a block (linked from its change page and the block list)."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from content.measurement import measurement_config
from content.measurement_report import COLUMNS, InvalidPeriod, parse_period, results_page
from content.measurement_selectors import block_results
from content.models import Block

PERIODS = ("7d", "30d", "90d")


def block_results_view(
    model_admin: admin.ModelAdmin[Block], request: HttpRequest, object_id: int
) -> HttpResponse:
    block = Block.objects.filter(pk=object_id).first()
    if block is None:
        raise Http404("no such block")
    if not model_admin.has_view_permission(request, block):
        raise PermissionDenied
    since_text = request.GET.get("since", "30d")
    try:
        period = parse_period(since_text)
    except InvalidPeriod as exc:
        return HttpResponseBadRequest(f"since: {exc}", content_type="text/plain")
    now = timezone.now()
    config = measurement_config()
    results = block_results(block=block, since=now - period, until=now, config=config)
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": Block._meta,
        "title": f"Results: {block.title}",
        "content_block": block,  # not "block": templates use that name for blocks
        "results": results,
        "page": results_page(results),
        "columns": COLUMNS,
        "since": since_text,
        "periods": PERIODS,
        "window_hours": int(config.window.total_seconds() // 3600),
        "conversion_events": ", ".join(config.conversion_events),
        "min_visitors": config.min_visitors,
    }
    return TemplateResponse(request, "admin/content/block/results.html", context)
