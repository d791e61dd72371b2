"""Stage `prepare`: split each validated dataset into data/processed/<name> with its manifest."""

from __future__ import annotations

from mlops.data.prepare import SplitSpec, prepare_dataset
from mlops.pipeline.common import KINDS, exit_with, processed_dir, raw_dir, report_path, run_stage


def body(params: dict) -> None:
    spec = SplitSpec.from_mapping(params.get("prepare"))
    for kind in KINDS:
        prepare_dataset(
            raw_dir(params, kind), processed_dir(params, kind), spec, validation_report=report_path(params, kind)
        )


def main() -> int:
    return run_stage("prepare", body)


if __name__ == "__main__":
    exit_with(main())
