"""The layering contracts in .importlinter catch the imports they forbid.

`make lint` checks the tree itself; these tests add one forbidden import to a copy of the tree and
check that lint-imports then fails, naming the contract.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=tree, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("tree")
    ignore = shutil.ignore_patterns("__pycache__", "tests", "migrations", "templates", "static")
    for package in ("backend", "mlops"):
        shutil.copytree(ROOT / package, copy / package, ignore=ignore)
    shutil.copy(ROOT / ".importlinter", copy / ".importlinter")
    return copy


def test_the_copied_tree_keeps_every_contract(tree):
    result = lint(tree)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "statement", "contract"),
    [
        ("mlops/inference/images.py", "import django.conf", "mlops never imports the backend, Django"),
        ("mlops/inference/images.py", "import backend.registry.models", "mlops never imports the backend, Django"),
        (
            "backend/detection/services/detect.py",
            "import backend.scoring.models",
            "detection, scoring and classification",
        ),
        (
            "backend/classification/services/classify.py",
            "import backend.detection.models",
            "detection, scoring and classification",
        ),
        ("backend/registry/models.py", "import backend.serving.generation", "Apps depend downwards only"),
        # pictures imports rendering: rendering importing pictures closes a cycle.
        ("backend/detection/services/rendering.py", "import backend.detection.services.pictures", "No import cycles"),
        ("backend/scoring/services.py", "import backend.scoring.api", "Inside each app"),
        ("backend/serving/services.py", "import backend.config.settings", "never from backend.config"),
        ("mlops/monitoring/drift.py", "import evidently", "Evidently is imported by mlops.monitoring"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(tree, module, statement, contract):
    path = tree / module
    original = path.read_text()
    path.write_text(f"{original}\n{statement}  # added by the test\n")
    try:
        result = lint(tree)
    finally:
        path.write_text(original)
    assert result.returncode != 0, f"lint-imports accepted `{statement}` in {module}"
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout
