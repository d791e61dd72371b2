"""Who may call what, the same for every prediction API. Predictions are open to anonymous callers by
design (throttled); lists of past predictions need a login; a single prediction or batch is
reachable by whoever holds its id (a random UUID returned only to its creator, like an unlisted link)."""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission


class CreateOpenListSignedIn(BasePermission):
    """POST (make a prediction) is open to anyone; reading the list needs a signed-in user."""

    message = "Listing past predictions needs a signed-in user."

    def has_permission(self, request, view) -> bool:
        if request.method not in SAFE_METHODS:
            return True
        return bool(request.user and request.user.is_authenticated)
