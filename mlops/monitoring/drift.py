"""Data drift of a model's recent inputs and outputs against its training reference.

A DriftDetector is built once per model version from its reference table and then checks windows
of logged predictions, returning a DriftReport of plain values that the web side can store. The
statistics are Evidently's (through mlops.monitoring.evidently_adapter, imported only when a check
runs, because importing Evidently takes seconds); this module decides what is compared and how.

Test choice when none is configured (`method=None`) follows Evidently's own table but looks at the
smaller of the two samples, not only at the reference: Evidently switches to distances
(Wasserstein, Jensen-Shannon) once the reference exceeds 1000 rows, and a distance measured on a
100-row window is mostly noise (Wasserstein >= 0.1 on ~70% of unshifted columns), so a big
reference would flag nearly every small window. Columns with few distinct values (counts of boxes,
a constant image width) never get chi-square: Evidently's version returns p = 0 as soon as the
window holds one value the reference lacks (a sixth box), and normed Wasserstein divides by a
near-zero spread; they get K-S on small samples and Jensen-Shannon on large ones.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum

import pandas as pd

from mlops.exceptions import InvalidInput

logger = logging.getLogger(__name__)

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
# Evidently 0.7's drift tests and the column kinds each accepts (the adapter's test checks this
# copy against Evidently's registry, so settings can be validated without importing Evidently).
METHODS: dict[str, tuple[str, ...]] = {
    "anderson": (NUMERICAL,),
    "chisquare": (CATEGORICAL,),
    "cramer_von_mises": (NUMERICAL,),
    "ed": (NUMERICAL,),
    "es": (NUMERICAL,),
    "fisher_exact": (CATEGORICAL,),
    "g_test": (CATEGORICAL,),
    "hellinger": (CATEGORICAL, NUMERICAL),
    "jensenshannon": (CATEGORICAL, NUMERICAL),
    "kl_div": (CATEGORICAL, NUMERICAL),
    "ks": (NUMERICAL,),
    "mannw": (NUMERICAL,),
    "empirical_mmd": (NUMERICAL,),
    "psi": (CATEGORICAL, NUMERICAL),
    "t_test": (NUMERICAL,),
    "TVD": (CATEGORICAL,),
    "wasserstein": (NUMERICAL,),
    "z": (CATEGORICAL,),
}
LARGE_SAMPLE = 1000  # Evidently's switch from p-value tests to distances
FEW_VALUES = 20  # up to this many distinct reference values Evidently bins by value, not by range
NAMES_IN_MESSAGE = 10


class DriftStatus(StrEnum):
    OK = "ok"
    DRIFT = "drift"
    NOT_ENOUGH_DATA = "not_enough_data"


@dataclass(frozen=True)
class ColumnDrift:
    """One column's comparison: the test used, its score, the threshold and Evidently's verdict."""

    column: str
    kind: str  # "numerical" | "categorical"
    method: str
    score: float
    threshold: float
    drifted: bool

    def to_dict(self) -> dict:
        """JSON-safe: a non-finite score (a degenerate test) becomes None."""
        values = asdict(self)
        values["score"] = self.score if math.isfinite(self.score) else None
        return values


@dataclass(frozen=True)
class DriftReport:
    """The outcome of one check; `html` is Evidently's dashboard (empty without enough data)."""

    status: str
    columns: list[ColumnDrift]
    drifted_share: float
    dataset_drift: bool
    reference_size: int
    current_size: int
    duration_s: float
    html: str = ""
    message: str = ""

    @property
    def drifted_columns(self) -> list[str]:
        return [column.column for column in self.columns if column.drifted]

    def to_dict(self) -> dict:
        """Everything but the HTML, as JSON-ready values."""
        return {
            "status": str(self.status),
            "columns": [column.to_dict() for column in self.columns],
            "drifted_share": self.drifted_share,
            "dataset_drift": self.dataset_drift,
            "reference_size": self.reference_size,
            "current_size": self.current_size,
            "duration_s": self.duration_s,
            "message": self.message,
        }


@dataclass(frozen=True)
class DriftConfig:
    """How a model's checks run; `from_mapping` validates per-model JSON settings into one.

    `method` names the test of every column it accepts and `threshold` that test's threshold; with
    no method each column gets one chosen for it (see the module docstring) at its default
    threshold (0.05 for p-values, 0.1 for distances), and a threshold alone is refused, since
    p-values drift below it and distances above. `column_methods`/`column_thresholds` override
    them per column. The dataset drifts
    when at least `drift_share` of the compared columns drift. Both tables are sampled down to
    `max_rows` rows (deterministically, with `seed`); `columns` restricts the comparison.
    """

    min_samples: int = 100
    method: str | None = None
    threshold: float | None = None
    column_methods: dict[str, str] = field(default_factory=dict)
    column_thresholds: dict[str, float] = field(default_factory=dict)
    drift_share: float = 0.5
    max_rows: int = 5000
    seed: int = 0
    columns: tuple[str, ...] | None = None

    def __post_init__(self):
        _check_range("min_samples", self.min_samples >= 1, "at least 1")
        _check_range("max_rows", self.max_rows >= self.min_samples, f"at least min_samples ({self.min_samples})")
        _check_range("seed", 0 <= self.seed < 2**32, "between 0 and 2**32 - 1")
        _check_range("drift_share", 0 < self.drift_share <= 1, "in (0, 1]")
        if self.method is not None:
            _check_method("method", self.method)
        if self.threshold is not None:
            _check_range("threshold", math.isfinite(self.threshold) and self.threshold > 0, "a positive number")
        for column, method in self.column_methods.items():
            _check_method(f"column_methods.{column}", method)
        for column, value in self.column_thresholds.items():
            _check_range(f"column_thresholds.{column}", math.isfinite(value) and value > 0, "a positive number")
        self._check_thresholds_have_methods()
        if self.columns is not None and not self.columns:
            raise _invalid("columns", "columns must name at least one column (or be null for all)")

    def _check_thresholds_have_methods(self) -> None:
        """A threshold only means something for a named test: p-values drift below it, distances above."""
        if self.threshold is not None and self.method is None:
            raise _invalid("threshold", "drift setting 'threshold' needs 'method': the automatic choice mixes tests")
        for column in self.column_thresholds:
            if self.method is None and column not in self.column_methods:
                raise _invalid(
                    f"column_thresholds.{column}",
                    f"drift setting 'column_thresholds.{column}' needs a test (column_methods or method)",
                )

    @classmethod
    def from_mapping(cls, mapping: Mapping | None) -> DriftConfig:
        """A config from JSON-like settings; unknown keys, wrong types and bad values raise InvalidInput."""
        if mapping is None:
            return cls()
        if not isinstance(mapping, Mapping):
            raise _invalid("", f"drift settings must be an object, not {type(mapping).__name__}")
        known = {item.name for item in fields(cls)}
        unknown = sorted(str(key) for key in mapping if key not in known)
        if unknown:
            raise _invalid(unknown[0], f"unknown drift setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
        return cls(**{key: _PARSERS[key](key, value) for key, value in mapping.items()})

    def to_dict(self) -> dict:
        values = asdict(self)
        values["columns"] = list(self.columns) if self.columns is not None else None
        return values


class DriftDetector:
    """Drift checks of one model version against its reference, prepared once and reused.

    The reference keeps the usable columns only: numbers (text that parses as numbers included),
    and the `categorical` ones as text; ids, file names and other strings are dropped, and so are
    columns with no value at all. Constant columns stay (a fixed training image width is exactly
    what a new camera would change) and are compared with a test that copes with them.
    """

    def __init__(self, reference: pd.DataFrame, *, categorical: Iterable[str] = (), config: DriftConfig | None = None):
        self.config = config or DriftConfig()
        self.categorical = frozenset(categorical)
        table = _restrict(reference, self.config.columns)
        kinds = _usable_kinds(table, self.categorical)
        prepared = _coerced(table, kinds)
        self.kinds = {column: kind for column, kind in kinds.items() if prepared[column].notna().any()}
        dropped = [str(name) for name in table.columns if name not in self.kinds]
        logger.debug("monitoring.reference_columns_dropped columns=%s", ",".join(dropped))
        if table.empty or not self.kinds:
            raise InvalidInput("the drift reference has no rows or no usable column", code="drift_reference_unusable")
        self._check_column_methods()
        self.reference = _sample(prepared[list(self.kinds)], self.config)
        self.distinct = {column: int(self.reference[column].nunique()) for column in self.kinds}
        logger.debug("monitoring.reference_ready columns=%s rows=%s", len(self.kinds), len(self.reference))

    @property
    def columns(self) -> list[str]:
        return list(self.kinds)

    def check(self, current: pd.DataFrame, *, html: bool = True) -> DriftReport:
        """Compare `current` (the columns it shares with the reference) with the reference."""
        started = time.perf_counter()
        if len(current) < self.config.min_samples:
            return self._not_enough(len(current), started)
        kinds = {column: kind for column, kind in self.kinds.items() if column in current.columns}
        window = _sample(_coerced(current[list(kinds)], kinds), self.config)
        kinds = self._comparable(kinds, window)
        result = self._run(window, kinds, html)
        by_name = {item["column"]: item for item in result["columns"]}
        columns = [ColumnDrift(**by_name[column]) for column in kinds]
        report = DriftReport(
            status=DriftStatus.DRIFT if result["dataset_drift"] else DriftStatus.OK,
            columns=columns,
            drifted_share=result["drifted_share"],
            dataset_drift=result["dataset_drift"],
            reference_size=len(self.reference),
            current_size=len(window),
            duration_s=time.perf_counter() - started,
            html=result["html"],
            message=_summary(columns),
        )
        logger.info(
            "monitoring.drift_checked status=%s drifted=%s/%s reference=%s current=%s duration=%.2fs",
            report.status, len(report.drifted_columns), len(columns), report.reference_size,
            report.current_size, report.duration_s,
        )  # fmt: skip
        return report

    def methods(self, current_rows: int) -> dict[str, str]:
        """The test each column gets against a window of `current_rows` rows."""
        size = min(len(self.reference), current_rows)
        return {column: self._method(column, kind, size) for column, kind in self.kinds.items()}

    def _run(self, window: pd.DataFrame, kinds: dict[str, str], html: bool) -> dict:
        from mlops.monitoring.evidently_adapter import run_data_drift

        methods = self.methods(len(window))
        thresholds = {column: self._threshold(column, methods[column]) for column in kinds}
        return run_data_drift(
            self.reference[list(kinds)],
            window,
            numerical=[column for column, kind in kinds.items() if kind == NUMERICAL],
            categorical=[column for column, kind in kinds.items() if kind == CATEGORICAL],
            column_methods={column: methods[column] for column in kinds},
            column_thresholds={column: value for column, value in thresholds.items() if value is not None},
            drift_share=self.config.drift_share,
            html=html,
        )

    def _method(self, column: str, kind: str, size: int) -> str:
        config = self.config
        if column in config.column_methods:
            return config.column_methods[column]
        if config.method is not None and kind in METHODS[config.method]:
            return config.method
        return auto_method(kind, self.distinct[column], size)

    def _threshold(self, column: str, method: str) -> float | None:
        """The configured threshold of the column's test; None keeps the test's default."""
        config = self.config
        if column in config.column_thresholds:
            return config.column_thresholds[column]
        return config.threshold if method == config.method and column not in config.column_methods else None

    def _comparable(self, kinds: dict[str, str], window: pd.DataFrame) -> dict[str, str]:
        """The shared columns the window has values in (Evidently refuses an empty column)."""
        empty = [column for column in kinds if window[column].isna().all()]
        if empty:
            logger.warning("monitoring.empty_columns_skipped columns=%s", ",".join(empty))
        kinds = {column: kind for column, kind in kinds.items() if column not in empty}
        if not kinds:
            raise InvalidInput(
                "the predictions share no column with values with the drift reference",
                code="drift_no_common_columns",
                details={"reference_columns": self.columns, "current_columns": [str(c) for c in window.columns]},
            )
        return kinds

    def _check_column_methods(self) -> None:
        for column, method in self.config.column_methods.items():
            kind = self.kinds.get(column)
            if kind is not None and kind not in METHODS[method]:
                raise _invalid(f"column_methods.{column}", f"{method!r} cannot test the {kind} column {column!r}")

    def _not_enough(self, rows: int, started: float) -> DriftReport:
        noun = "prediction" if rows == 1 else "predictions"
        return DriftReport(
            status=DriftStatus.NOT_ENOUGH_DATA,
            columns=[],
            drifted_share=0.0,
            dataset_drift=False,
            reference_size=len(self.reference),
            current_size=rows,
            duration_s=time.perf_counter() - started,
            message=f"{rows} {noun}, fewer than the {self.config.min_samples} needed",
        )


def auto_method(kind: str, distinct: int, size: int) -> str:
    """The test for a column of `kind` with `distinct` reference values, the smaller sample having `size` rows."""
    large = size > LARGE_SAMPLE
    if kind == CATEGORICAL:
        return "jensenshannon" if large else ("chisquare" if distinct > 2 else "z")
    if not large:
        return "ks"
    return "jensenshannon" if distinct <= FEW_VALUES else "wasserstein"


def _restrict(reference: pd.DataFrame, columns: tuple[str, ...] | None) -> pd.DataFrame:
    if columns is None:
        return reference
    missing = [column for column in columns if column not in reference.columns]
    if missing:
        logger.info("monitoring.columns_not_in_reference columns=%s", ",".join(missing))
    return reference[[column for column in columns if column in reference.columns]]


def _usable_kinds(table: pd.DataFrame, categorical: frozenset[str]) -> dict[str, str]:
    """Column name -> kind for the columns drift can compare, in table order."""
    kinds = {}
    for name in table.columns:
        if not isinstance(name, str):
            continue
        if name in categorical:
            kinds[name] = CATEGORICAL
        elif _is_numeric(table[name]):
            kinds[name] = NUMERICAL
    return kinds


def _is_numeric(column: pd.Series) -> bool:
    """Numbers, booleans, or text whose every value parses as a number; never dates."""
    if pd.api.types.is_datetime64_any_dtype(column) or pd.api.types.is_timedelta64_dtype(column):
        return False
    if pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
        return True
    parsed = pd.to_numeric(column, errors="coerce")
    return parsed.notna().sum() == column.notna().sum()


def _coerced(table: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """Numbers as float64 (what cannot be read, and infinities, as missing), categories as text."""
    out = {}
    for column, kind in kinds.items():
        values = table[column]
        if kind == CATEGORICAL:
            out[column] = values.astype("string").astype(object).where(values.notna(), None)
        else:
            numbers = pd.to_numeric(values, errors="coerce").astype("float64")
            out[column] = numbers.replace([math.inf, -math.inf], math.nan)
    return pd.DataFrame(out, index=table.index)


def _sample(table: pd.DataFrame, config: DriftConfig) -> pd.DataFrame:
    """At most config.max_rows rows, the same ones for the same table and seed."""
    if len(table) <= config.max_rows:
        return table.reset_index(drop=True)
    return table.sample(n=config.max_rows, random_state=config.seed).reset_index(drop=True)


def _summary(columns: list[ColumnDrift]) -> str:
    drifted = [column.column for column in columns if column.drifted]
    text = f"{len(drifted)} of {len(columns)} columns drifted"
    if not drifted:
        return text
    names = ", ".join(drifted[:NAMES_IN_MESSAGE])
    more = f" and {len(drifted) - NAMES_IN_MESSAGE} more" if len(drifted) > NAMES_IN_MESSAGE else ""
    return f"{text} ({names}{more})"


def _invalid(key: str, message: str) -> InvalidInput:
    return InvalidInput(message, code="invalid_drift_setting", details={"key": key})


def _check_range(key: str, ok: bool, expected: str) -> None:
    if not ok:
        raise _invalid(key, f"drift setting {key!r} must be {expected}")


def _check_method(key: str, method: str) -> None:
    if method not in METHODS:
        raise _invalid(key, f"drift setting {key!r}: unknown test {method!r} (known: {', '.join(sorted(METHODS))})")


# -- parsing of JSON settings: each key's type, checked before the ranges in __post_init__ ----------


def _integer(key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(key, f"drift setting {key!r} must be an integer, not {value!r}")
    return value


def _number(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _invalid(key, f"drift setting {key!r} must be a number, not {value!r}")
    return float(value)


def _optional(parse):
    return lambda key, value: None if value is None else parse(key, value)


def _text(key: str, value) -> str:
    if not isinstance(value, str) or not value:
        raise _invalid(key, f"drift setting {key!r} must be a non-empty string, not {value!r}")
    return value


def _mapping_of(parse):
    def parse_mapping(key: str, value) -> dict:
        if not isinstance(value, Mapping):
            raise _invalid(key, f"drift setting {key!r} must be an object of column -> value, not {value!r}")
        return {_text(key, column): parse(f"{key}.{column}", item) for column, item in value.items()}

    return parse_mapping


def _column_names(key: str, value) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise _invalid(key, f"drift setting {key!r} must be a list of column names, not {value!r}")
    return tuple(_text(key, item) for item in value)


_PARSERS = {
    "min_samples": _integer,
    "method": _optional(_text),
    "threshold": _optional(_number),
    "column_methods": _mapping_of(_text),
    "column_thresholds": _mapping_of(_number),
    "drift_share": _number,
    "max_rows": _integer,
    "seed": _integer,
    "columns": _optional(_column_names),
}
