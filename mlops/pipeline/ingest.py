"""Stage `ingest`: bring each dataset named in params.yaml `data` into data/raw/<name>."""

from __future__ import annotations

from mlops.data.ingest import ingest
from mlops.pipeline.common import KINDS, exit_with, raw_dir, run_stage


def body(params: dict) -> None:
    for kind in KINDS:
        spec = params["data"][kind]
        ingest(spec["source"], raw_dir(params, kind), options=spec.get("options") or {}, kind=kind)


def main() -> int:
    return run_stage("ingest", body)


if __name__ == "__main__":
    exit_with(main())
