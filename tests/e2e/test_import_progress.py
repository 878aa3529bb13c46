"""An admin uploads an export in Chromium; the Celery worker imports it and the
job page's progress bar follows it to the end, on the production stack."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser, Response, expect

from tests.e2e.conftest import Server

pytestmark = [pytest.mark.stack, pytest.mark.browser]

ROWS = 1200
CREATE_ADMIN = (
    "from django.contrib.auth.models import User; "
    "User.objects.filter(username='importer').exists() or "
    "User.objects.create_superuser('importer', 'importer@example.com', 'importer-pw-123')"
)


def test_the_progress_bar_follows_the_worker_until_the_import_is_done(
    stack: Server, chromium: Browser, artifacts: Path, tmp_path: Path
) -> None:
    stack.manage("shell", "-c", CREATE_ADMIN)
    export = tmp_path / "campaign-events.csv"
    export.write_text(
        "type,user_id,event,timestamp,campaign,send_id\n"
        + "".join(
            f"track,crm-{n % 300},email_opened,2026-10-01T08:{n % 60:02d}:00Z,autumn,{n}\n"
            for n in range(ROWS)
        )
        + "track,,email_opened,2026-10-01T08:00:00Z,autumn,0\n"
    )
    polls: list[dict[str, object]] = []

    def record(response: Response) -> None:
        if response.url.endswith("/progress/") and response.status == 200:
            polls.append(response.json())

    context = chromium.new_context(base_url=stack.base_url)
    try:
        page = context.new_page()
        page.on("response", record)
        page.goto("/admin/login/?next=/admin/personalize/importjob/add/")
        page.fill("#id_username", "importer")
        page.fill("#id_password", "importer-pw-123")
        page.click("input[type=submit]")
        page.set_input_files("#id_file", str(export))
        page.select_option("#id_source", label="web")
        page.click("input[name=_save]")

        expect(page.locator("progress")).to_be_visible()
        # The page reloads itself when the worker is done; then it says so.
        expect(page.locator(".field-status .readonly")).to_have_text("Done", timeout=180_000)
        page.screenshot(path=artifacts / "admin-import-done.png", full_page=True)
        summary = page.locator("[data-progress-text]").inner_text()
        bar_value = page.locator("progress").get_attribute("value")
        rejects_link = page.locator(".field-rejects a").get_attribute("href")
    finally:
        context.close()

    assert summary == f"{ROWS + 1} of {ROWS + 1} rows: {ROWS} stored, 0 already there, 1 rejected"
    assert bar_value == str(ROWS + 1)
    assert rejects_link is not None
    assert rejects_link.startswith("/admin/personalize/rejectedevent/?source__id__exact=")
    # The page opened on a running job, polled while it ran, then reloaded when
    # the worker was done (the last poll's body can be cut off by that reload).
    assert polls, "the page never polled the job's progress"
    assert polls[0]["finished"] is False
    processed = [int(str(poll["processed"])) for poll in polls]
    assert processed == sorted(processed)
    assert max(processed) <= ROWS + 1
    stored = stack.query(
        "SELECT count(*) FROM personalize_event WHERE user_id LIKE %s AND name = %s",
        "crm-%",
        "email_opened",
    )
    assert stored == [(ROWS,)]
