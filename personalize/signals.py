"""Profile lifecycle events other apps hook into.

``profile_merging`` is sent inside the merge transaction, before the merged-away
profile is deleted: receivers move their own rows (a shop's cart and orders)
from ``source_id`` to ``target_id``.

``profile_exporting`` asks receivers to add what they hold about ``profile_id``
to the ``into`` dict of a data export; ``profile_erasing`` (inside the erase
transaction) asks them to delete it.
"""

from django.dispatch import Signal

profile_merging = Signal()
profile_exporting = Signal()
profile_erasing = Signal()
