import logging
from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

logger = logging.getLogger(__name__)


class PersonalizeConfig(AppConfig):
    name = "personalize"
    verbose_name = "Visitors, profiles and events"

    def ready(self) -> None:
        # The live channel subscribes to membership changes emitted by segments.
        from personalize import live

        live.connect()
        # Web processes keep our pages' write key (personalize.selectors): a saved or
        # deleted source bumps its stamp (update() and the bulk writes bump in SourceQuerySet).
        from config.stamps import bump_on_save_and_delete
        from personalize.models import SOURCES_STAMP, Source

        bump_on_save_and_delete(Source, SOURCES_STAMP)
        # Every deploy's migrate makes sure partitions exist ahead (PostgreSQL).
        post_migrate.connect(_create_event_partitions, sender=self)


def _create_event_partitions(using: str = "default", **kwargs: Any) -> None:
    from django.db import DatabaseError, connections

    from personalize import partitions

    if using != "default" or connections[using].vendor != "postgresql":
        return
    try:
        partitions.ensure_event_partitions()
    except DatabaseError:
        # The migrations are applied; the daily task creates the partitions later,
        # and meanwhile events land in the DEFAULT partition.
        logger.warning("could not create event partitions after migrate", exc_info=True)
