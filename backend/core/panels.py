"""Sections that apps above monitoring add to its pages, without monitoring importing them.

An app registers a function in its AppConfig.ready(); the monitoring pages call `panels` and
include each template with its context (alerting adds the open alerts and their history).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Panel:
    template: str
    context: dict


PanelSource = Callable[..., Panel | None]
_sources: list[PanelSource] = []


def register_panel(source: PanelSource) -> None:
    """source(model=None) -> Panel or None; `model` is a RegisteredModel on a model's dashboard."""
    if source not in _sources:
        _sources.append(source)


def panels(*, model=None) -> list[Panel]:
    return [panel for source in _sources if (panel := source(model=model)) is not None]
