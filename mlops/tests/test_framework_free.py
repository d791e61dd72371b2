"""mlops is plain Python: importing every module of it loads no web or queue framework."""

import subprocess
import sys

PROBE = """
import importlib, pkgutil, sys
import mlops
for info in pkgutil.walk_packages(mlops.__path__, "mlops."):
    if ".tests" in info.name:
        continue
    importlib.import_module(info.name)
leaked = sorted(m for m in ("django", "rest_framework", "celery") if m in sys.modules)
print(",".join(leaked))
"""


def test_importing_mlops_loads_no_framework():
    result = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "", f"mlops imported {result.stdout.strip()}"
