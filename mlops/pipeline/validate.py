"""Stage `validate`: check each raw dataset; the reports land in data/reports, errors stop DVC."""

from __future__ import annotations

from mlops.data.validate import ValidationPolicy, validate_dataset
from mlops.exceptions import DataValidationError
from mlops.pipeline.common import KINDS, exit_with, raw_dir, report_path, run_stage


def body(params: dict) -> None:
    policy = ValidationPolicy.from_mapping(params.get("validate"))
    failures = []
    for kind in KINDS:
        try:
            validate_dataset(raw_dir(params, kind), policy=policy, report_path=report_path(params, kind))
        except DataValidationError as exc:
            failures.append(exc)
    if failures:
        # Every dataset was checked and reported; the first error names its report.
        raise failures[0]


def main() -> int:
    return run_stage("validate", body)


if __name__ == "__main__":
    exit_with(main())
