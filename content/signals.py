"""Cache invalidation only: any write to what the published catalog is built from
bumps its version (``content.catalog``). Connected in ``ContentConfig.ready``."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import m2m_changed, post_delete, post_save

from content.catalog import catalog_changed
from content.models import Block, BlockVariant, Slot
from segments.models import Segment


def _changed(sender: Any, **kwargs: Any) -> None:
    catalog_changed()


def _targeting_changed(sender: Any, action: str, **kwargs: Any) -> None:
    if action in {"post_add", "post_remove", "post_clear"}:
        catalog_changed()


def connect() -> None:
    # Segments: their slugs and names are in the catalog (slugs of the visitor's
    # segments, reasons), and deleting one drops its block targeting rows.
    for model in (Block, BlockVariant, Slot, Segment):
        post_save.connect(_changed, sender=model, dispatch_uid=f"catalog-save-{model.__name__}")
        post_delete.connect(_changed, sender=model, dispatch_uid=f"catalog-delete-{model.__name__}")
    for through in (Block.segments.through, Block.excluded_segments.through):
        m2m_changed.connect(
            _targeting_changed, sender=through, dispatch_uid=f"catalog-m2m-{through.__name__}"
        )
