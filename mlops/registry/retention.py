"""Which old versions' artifacts may be deleted: a pure policy, applied by the registry app."""

from __future__ import annotations

from collections.abc import Iterable


def select_for_deletion(versions: Iterable[int], *, protected: set[int], keep_latest: int) -> list[int]:
    """Versions (oldest first in, oldest first out) whose artifacts can go.

    Keeps the `keep_latest` newest and every protected one (production, the version before it,
    staging, anything awaiting approval); everything older is eligible.
    """
    ordered = list(versions)
    newest = set(ordered[-keep_latest:]) if keep_latest > 0 else set()
    return [version for version in ordered if version not in protected and version not in newest]
