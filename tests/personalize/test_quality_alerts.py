from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.core import mail

from personalize import quality
from personalize.models import QualityAlert, Source
from personalize.tasks import check_data_quality
from tests.factories import QualityCountFactory

NOW = datetime(2025, 6, 10, 12, 5, tzinfo=UTC)
# The last complete hour before NOW.
WINDOW = datetime(2025, 6, 10, 11, 0, tzinfo=UTC)


class _Recorder(BaseHTTPRequestHandler):
    received: list[dict[str, Any]]

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self.server.received.append(json.loads(self.rfile.read(length)))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP server on 127.0.0.1 recording the JSON bodies posted to it."""
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    server.received = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/alerts", server.received  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def alerting(settings: Any, webhook: tuple[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.P13N_QUALITY_ALERT_EMAILS = ["ops@example.com"]
    settings.P13N_QUALITY_ALERT_WEBHOOK_URL = webhook[0]
    return webhook[1]


def _history(
    source: Source, *, received: list[int], rejected: int = 0, window: datetime = WINDOW
) -> None:
    """The same hour on each previous day, most recent first."""
    for day, count in enumerate(received, start=1):
        QualityCountFactory(
            source=source, hour=window - timedelta(days=day), received=count, rejected=rejected
        )


def _now_window(source: Source, *, received: int, rejected: int = 0, at: datetime = WINDOW) -> None:
    QualityCountFactory(source=source, hour=at, received=received, rejected=rejected)


USUAL = [1000, 980, 1020, 990, 1010, 1000, 1000]


@pytest.mark.django_db
def test_volume_drop_alerts_once_by_email_and_webhook_until_it_recovers(
    alerting: list[dict[str, Any]],
) -> None:
    source = Source.objects.create(name="web")
    _history(source, received=USUAL)
    _now_window(source, received=120)

    assert quality.check_alerts(now=NOW) == 1

    alert = QualityAlert.objects.get()
    assert (alert.kind, alert.observed, alert.expected, alert.resolved_at) == (
        "volume_drop",
        120.0,
        1000.0,
        None,
    )
    assert (alert.window_start, alert.window_end) == (WINDOW, WINDOW + timedelta(hours=1))
    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject == "[p13n] Volume drop on source web"
    assert mail.outbox[0].to == ["ops@example.com"]
    assert alerting == [
        {
            "source": "web",
            "kind": "volume_drop",
            "message": alert.message,
            "observed": 120.0,
            "expected": 1000.0,
            "window_start": "2025-06-10T11:00:00+00:00",
            "window_end": "2025-06-10T12:00:00+00:00",
            "opened_at": "2025-06-10T12:05:00+00:00",
        }
    ]
    assert alert.notification_errors == ""

    # Still low a quarter of an hour later: the same condition is not alerted again.
    assert quality.check_alerts(now=NOW + timedelta(minutes=15)) == 0
    assert (len(mail.outbox), len(alerting), QualityAlert.objects.count()) == (1, 1, 1)

    # The next hour is back to normal: the alert resolves.
    next_hour = WINDOW + timedelta(hours=1)
    _history(source, received=USUAL, window=next_hour)
    _now_window(source, received=1005, at=next_hour)
    assert quality.check_alerts(now=NOW + timedelta(hours=1)) == 0
    alert.refresh_from_db()
    assert alert.resolved_at == NOW + timedelta(hours=1)

    # A new drop after recovery alerts again.
    later = WINDOW + timedelta(hours=2)
    _history(source, received=USUAL, window=later)
    _now_window(source, received=10, at=later)
    assert quality.check_alerts(now=NOW + timedelta(hours=2)) == 1
    assert QualityAlert.objects.filter(resolved_at__isnull=True).count() == 1
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_volume_spike_alerts(alerting: list[dict[str, Any]]) -> None:
    source = Source.objects.create(name="web")
    _history(source, received=USUAL)
    _now_window(source, received=5000)

    assert quality.check_alerts(now=NOW) == 1

    assert QualityAlert.objects.get().kind == "volume_spike"
    assert [a["kind"] for a in alerting] == ["volume_spike"]


@pytest.mark.django_db
def test_normal_variation_does_not_alert(alerting: list[dict[str, Any]]) -> None:
    source = Source.objects.create(name="web")
    _history(source, received=[1000, 600, 1400, 800, 1200, 700, 1300], rejected=20)
    _now_window(source, received=650, rejected=15)

    assert quality.check_alerts(now=NOW) == 0

    assert QualityAlert.objects.count() == 0
    assert (mail.outbox, alerting) == ([], [])


@pytest.mark.django_db
def test_reject_rate_rise_alerts(alerting: list[dict[str, Any]]) -> None:
    source = Source.objects.create(name="web")
    _history(source, received=USUAL, rejected=10)  # about 1% usually
    _now_window(source, received=1000, rejected=150)

    assert quality.check_alerts(now=NOW) == 1

    alert = QualityAlert.objects.get()
    assert alert.kind == "reject_rate"
    assert alert.observed == 0.15
    assert round(alert.expected, 4) == 0.01
    assert "15.0% of 1000 messages rejected" in alert.message


@pytest.mark.django_db
def test_small_sources_and_sources_without_history_do_not_alert(
    alerting: list[dict[str, Any]],
) -> None:
    tiny = Source.objects.create(name="tiny")
    _history(tiny, received=[40, 50, 45, 60, 50, 55, 50], rejected=0)
    _now_window(tiny, received=2, rejected=2)
    new = Source.objects.create(name="new")
    _history(new, received=[0, 0, 0, 0, 0, 0, 900])
    _now_window(new, received=3000)

    assert quality.check_alerts(now=NOW) == 0

    assert QualityAlert.objects.count() == 0
    assert alerting == []


@pytest.mark.django_db
def test_a_disabled_source_is_not_evaluated(alerting: list[dict[str, Any]]) -> None:
    source = Source.objects.create(name="web", enabled=False)
    _history(source, received=USUAL)
    _now_window(source, received=0)

    assert quality.check_alerts(now=NOW) == 0


@pytest.mark.django_db
def test_an_unreachable_webhook_is_recorded_on_the_alert_and_email_still_goes(
    settings: Any,
) -> None:
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.P13N_QUALITY_ALERT_EMAILS = ["ops@example.com"]
    # A port nothing listens on: bind one, then close it.
    server = HTTPServer(("127.0.0.1", 0), _Recorder)
    port = server.server_port
    server.server_close()
    settings.P13N_QUALITY_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{port}/alerts"
    source = Source.objects.create(name="web")
    _history(source, received=USUAL)
    _now_window(source, received=0)

    assert quality.check_alerts(now=NOW) == 1

    alert = QualityAlert.objects.get()
    assert alert.notified_at == NOW
    assert alert.notification_errors.startswith("webhook: ")
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_an_alert_is_notified_only_once(alerting: list[dict[str, Any]]) -> None:
    source = Source.objects.create(name="web")
    _history(source, received=USUAL)
    _now_window(source, received=0)
    quality.check_alerts(now=NOW)
    alert = QualityAlert.objects.get()

    assert quality.notify_alert(alert_id=alert.pk, now=NOW) is False

    assert len(mail.outbox) == 1
    assert len(alerting) == 1


@pytest.mark.django_db
def test_the_periodic_task_is_scheduled_on_the_default_queue(settings: Any) -> None:
    entry = settings.CELERY_BEAT_SCHEDULE["check-data-quality"]

    assert entry["task"] == check_data_quality.name == "personalize.tasks.check_data_quality"
    assert entry["options"]["queue"] == "default"
    assert check_data_quality.delay().get() == 0
