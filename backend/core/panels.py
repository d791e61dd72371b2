"""Sections that apps add to pages of apps below them, without those apps importing them.

An app registers a function in its AppConfig.ready() for a place; the page of that place calls
`panels` and includes each template with its context:

- "monitoring" (the default): the monitoring pages; sources get `model` (a RegisteredModel on a
  model's dashboard, None on the list). Alerting adds the open alerts and their history.
- "promotion": the registry's promotion confirmation page; sources get `model` and `version`
  (the candidate ModelVersion). Monitoring adds the shadow-mode agreement of the candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Panel:
    template: str
    context: dict


PanelSource = Callable[..., Panel | None]
MONITORING = "monitoring"
PROMOTION = "promotion"
_sources: dict[str, list[PanelSource]] = {}


def register_panel(source: PanelSource, *, place: str = MONITORING) -> None:
    """source(**context) -> Panel or None, called with the context its place documents (above)."""
    sources = _sources.setdefault(place, [])
    if source not in sources:
        sources.append(source)


def panels(*, place: str = MONITORING, model=None, **context) -> list[Panel]:
    return [panel for source in _sources.get(place, []) if (panel := source(model=model, **context)) is not None]
