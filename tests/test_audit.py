"""`make lint`'s vulnerability audit: a known vulnerability fails unless accepted with a reason, and a
run that audited nothing says so instead of passing as audited."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "audit.py"
spec = importlib.util.spec_from_file_location("audit", SCRIPT)
audit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(audit)

CLEAN = {"name": "django", "version": "5.2.19", "vulns": []}
VULNERABLE = {"name": "pillow", "version": "1.0", "vulns": [{"id": "PYSEC-1", "fix_versions": ["1.1"]}]}
SKIPPED = {"name": "torch", "skip_reason": "Dependency not found on PyPI and could not be audited: torch (2.14.1)"}


def test_a_known_vulnerability_fails_unless_accepted_with_a_reason():
    code, lines = audit.verdict([CLEAN, VULNERABLE], {}, required=False)
    assert code == 1 and "pillow 1.0 PYSEC-1 (fixed in 1.1): NOT ACCEPTED" in lines[0]
    code, lines = audit.verdict([CLEAN, VULNERABLE], {"PYSEC-1": "not reachable: we never parse EPS"}, required=False)
    assert code == 0 and lines[0].endswith("accepted: not reachable: we never parse EPS")
    assert lines[-1] == "audit: 2 pins audited, 1 known vulnerabilities, 0 not accepted"


def test_nothing_audited_is_said_and_fails_when_required():
    code, lines = audit.verdict([SKIPPED], {}, required=False)
    assert code == 0 and lines[-1].startswith("audit: NOTHING AUDITED") and "torch (2.14.1)" in lines[-1]
    assert audit.verdict([SKIPPED], {}, required=True)[0] == 1
    code, lines = audit.verdict([CLEAN, SKIPPED], {}, required=False)
    assert code == 0 and "1 of 2 pins not audited: torch" in lines[0]
    assert audit.verdict([CLEAN, SKIPPED], {}, required=True)[0] == 1


def test_an_exception_without_a_reason_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(audit, "EXCEPTIONS", tmp_path / "audit-exceptions.txt")
    (tmp_path / "audit-exceptions.txt").write_text("# comment\nPYSEC-2  fixed upstream only in 3.x\nGHSA-x\n")
    with pytest.raises(SystemExit, match="GHSA-x has no reason"):
        audit.exceptions()
    (tmp_path / "audit-exceptions.txt").write_text("PYSEC-2  fixed upstream only in 3.x\n")
    assert audit.exceptions() == {"PYSEC-2": "fixed upstream only in 3.x"}
