"""Signals the registry sends after commit; receivers only enqueue work or bump a counter."""

from django.dispatch import Signal

# Sent when a version became production (promotion or rollback): version, previous, deployment.
version_promoted = Signal()
# Sent when a version became the staging version: version.
version_staged = Signal()
# Sent when a version was registered (trained or registered from files): version.
version_registered = Signal()
# Sent when a staff user asked for a version's promotion (approval on): request.
promotion_requested = Signal()
