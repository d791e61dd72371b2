"""Server-side SVG charts for the dashboards: nothing from a CDN, nothing to run in the browser.

Each function returns the markup of one `<svg role="img">` with a `<title>`, so a screen reader
gets the chart's name and the page works without scripts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM = 52, 12, 26, 28


@dataclass(frozen=True)
class Series:
    """One line: (time, value) points; a None value breaks the line."""

    name: str
    points: Sequence[tuple[datetime, float | None]]


@dataclass(frozen=True)
class Marker:
    """A vertical line at a moment, e.g. a promotion or a rollback."""

    at: datetime
    label: str
    colour: str = "#6b7280"


@dataclass
class _Frame:
    width: int
    height: int
    x0: float
    x1: float
    y0: float
    y1: float
    parts: list[str] = field(default_factory=list)

    def x(self, value: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return PAD_LEFT + (value - self.x0) / span * (self.width - PAD_LEFT - PAD_RIGHT)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        return self.height - PAD_BOTTOM - (value - self.y0) / span * (self.height - PAD_TOP - PAD_BOTTOM)


def _svg(title: str, frame: _Frame) -> SafeString:
    body = "".join(frame.parts)
    return mark_safe(
        f'<svg class="chart" role="img" viewBox="0 0 {frame.width} {frame.height}" '
        f'width="100%" preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>"
        f'<text x="{PAD_LEFT}" y="16" class="chart-title">{escape(title)}</text>{body}</svg>'
    )


def _empty(title: str, width: int, height: int, message: str) -> SafeString:
    frame = _Frame(width, height, 0, 1, 0, 1)
    frame.parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" class="chart-empty">')
    frame.parts.append(f"{escape(message)}</text>")
    return _svg(title, frame)


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value / 1000:.1f}k"
    return f"{value:.3g}"


def _y_axis(frame: _Frame, unit: str) -> None:
    for step in range(5):
        value = frame.y0 + (frame.y1 - frame.y0) * step / 4
        y = frame.y(value)
        frame.parts.append(
            f'<line x1="{PAD_LEFT}" x2="{frame.width - PAD_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        frame.parts.append(f'<text x="{PAD_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_fmt(value))}</text>')
    if unit:
        frame.parts.append(f'<text x="6" y="{PAD_TOP - 8}" class="unit">{escape(unit)}</text>')


def _time_axis(frame: _Frame) -> None:
    spans_days = frame.x1 - frame.x0 > 36 * 3600
    for step in range(5):
        moment = datetime.fromtimestamp(frame.x0 + (frame.x1 - frame.x0) * step / 4).astimezone()
        label = moment.strftime("%d %b" if spans_days else "%H:%M")
        x = frame.x(moment.timestamp())
        frame.parts.append(f'<text x="{x:.1f}" y="{frame.height - 8}" text-anchor="middle">{escape(label)}</text>')


def line_chart(
    title: str,
    series: Sequence[Series],
    *,
    unit: str = "",
    markers: Sequence[Marker] = (),
    y_min: float | None = 0.0,
    y_max: float | None = None,
    period: tuple[datetime, datetime] | None = None,
    width: int = 640,
    height: int = 220,
) -> SafeString:
    """Lines over time, one colour per series, with a legend and optional vertical markers.

    `period` fixes the time axis (the page's span), so a few points sit where they happened.
    """
    times = [at.timestamp() for s in series for at, value in s.points if value is not None]
    values = [value for s in series for _, value in s.points if value is not None]
    if not values:
        return _empty(title, width, height, "no data in this period")
    low = min(values) if y_min is None else y_min
    high = max(values) if y_max is None else y_max
    start, end = (period[0].timestamp(), period[1].timestamp()) if period else (min(times), max(times))
    frame = _Frame(width, height, start, end, low, high if high > low else low + 1)
    _y_axis(frame, unit)
    _time_axis(frame)
    for marker in markers:
        if frame.x0 <= marker.at.timestamp() <= frame.x1:
            x = frame.x(marker.at.timestamp())
            frame.parts.append(
                f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{PAD_TOP}" y2="{height - PAD_BOTTOM}" '
                f'stroke="{marker.colour}" class="marker"><title>{escape(marker.label)}</title></line>'
            )
    for index, line in enumerate(series):
        colour = COLOURS[index % len(COLOURS)]
        frame.parts.append(_path(frame, line.points, colour))
        legend_x = width - PAD_RIGHT - 110 * (len(series) - index)
        frame.parts.append(f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{colour}"/>')
        frame.parts.append(f'<text x="{legend_x + 14}" y="17">{escape(line.name)}</text>')
    return _svg(title, frame)


def _path(frame: _Frame, points: Sequence[tuple[datetime, float | None]], colour: str) -> str:
    commands, pen_down = [], False
    for at, value in points:
        if value is None:
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{frame.x(at.timestamp()):.1f},{frame.y(value):.1f}")
        pen_down = True
    dots = "".join(
        f'<circle cx="{frame.x(at.timestamp()):.1f}" cy="{frame.y(value):.1f}" r="2" fill="{colour}"/>'
        for at, value in points
        if value is not None and len(points) <= 60
    )
    return f'<path d="{" ".join(commands)}" fill="none" stroke="{colour}" stroke-width="2"/>{dots}'


def bar_chart(
    title: str, bars: Sequence[tuple[str, float]], *, unit: str = "", width: int = 640, height: int = 220
) -> SafeString:
    """Labelled bars, e.g. a confidence histogram or the class mix."""
    if not bars or not any(value for _, value in bars):
        return _empty(title, width, height, "no data in this period")
    frame = _Frame(width, height, 0, len(bars), 0, max(value for _, value in bars))
    _y_axis(frame, unit)
    slot = (width - PAD_LEFT - PAD_RIGHT) / len(bars)
    for index, (label, value) in enumerate(bars):
        x, top = PAD_LEFT + index * slot, frame.y(value)
        frame.parts.append(
            f'<rect x="{x + slot * 0.1:.1f}" y="{top:.1f}" width="{slot * 0.8:.1f}" '
            f'height="{frame.y(0) - top:.1f}" fill="{COLOURS[0]}">'
            f"<title>{escape(label)}: {escape(_fmt(value))}</title></rect>"
        )
        frame.parts.append(
            f'<text x="{x + slot / 2:.1f}" y="{height - 8}" text-anchor="middle">{escape(label[:14])}</text>'
        )
    return _svg(title, frame)
