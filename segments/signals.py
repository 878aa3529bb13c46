"""Membership change events that other parts subscribe to (the live push, later webhooks).

Sent once per profile after the transaction that changed its memberships commits.
Receivers get ``profile_id``, ``entered`` and ``exited`` (lists of segment slugs)
and ``segments`` (all current slugs).
"""

from django.dispatch import Signal

memberships_changed = Signal()
