from rest_framework.permissions import BasePermission

PROMOTE_PERMISSION = "registry.promote_modelversion"


class CanPromote(BasePermission):
    """Staff users holding the registry's promote permission (superusers hold every permission)."""

    message = "Promoting and rolling back model versions needs the 'promote' permission."

    def has_permission(self, request, view) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_staff and user.has_perm(PROMOTE_PERMISSION))
