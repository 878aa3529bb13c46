"""Profile lifecycle events other apps hook into.

``profile_merging`` is sent inside the merge transaction, before the merged-away
profile is deleted: receivers move their own rows (a shop's cart and orders)
from ``source_id`` to ``target_id``.
"""

from django.dispatch import Signal

profile_merging = Signal()
