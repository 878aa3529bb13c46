from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class PersonalizeConfig(AppConfig):
    name = "personalize"
    verbose_name = "Visitors, profiles and events"

    def ready(self) -> None:
        # The live channel subscribes to membership changes emitted by segments.
        from personalize import live

        live.connect()
        # Every deploy's migrate makes sure partitions exist ahead (PostgreSQL).
        post_migrate.connect(_create_event_partitions, sender=self)


def _create_event_partitions(using: str = "default", **kwargs: Any) -> None:
    from django.db import connections

    from personalize import partitions

    if using == "default" and connections[using].vendor == "postgresql":
        partitions.ensure_event_partitions()
