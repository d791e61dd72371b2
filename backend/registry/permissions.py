from rest_framework.permissions import BasePermission

from backend.registry.services import may_promote


class CanPromote(BasePermission):
    """Staff users holding the registry's promote permission (superusers hold every permission).

    The same rule as `services.may_promote`, which the registry's services apply again on every path.
    """

    message = "Promoting and rolling back model versions needs the 'promote' permission."

    def has_permission(self, request, view) -> bool:
        return may_promote(request.user)
