"""Known vulnerabilities in requirements.txt, as `make lint` checks them: pip-audit, plus what it leaves unsaid.

    python scripts/audit.py [--required]

Fails on any known vulnerability of a pinned version that `audit-exceptions.txt` does not list with
a written reason (one `ID  reason` per line). pip-audit says "No known vulnerabilities found" even
when its vulnerability service knew none of the pins and audited nothing; this script says which
pins were not audited, and when none was, says so loudly instead of passing as audited (with
`--required`, or AUDIT_REQUIRED=1, that fails too).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXCEPTIONS = ROOT / "audit-exceptions.txt"


def exceptions() -> dict[str, str]:
    """Vulnerability ids accepted on purpose, each with its reason; a line without a reason is an error."""
    accepted = {}
    if not EXCEPTIONS.exists():
        return accepted
    for number, line in enumerate(EXCEPTIONS.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        vuln_id, _, reason = line.partition(" ")
        if not reason.strip():
            sys.exit(f"{EXCEPTIONS.name}:{number}: {vuln_id} has no reason; say why it is accepted")
        accepted[vuln_id] = reason.strip()
    return accepted


def run_pip_audit() -> list[dict]:
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "audit.json"
        command = [
            sys.executable, "-m", "pip_audit", "--requirement", str(ROOT / "requirements.txt"), "--no-deps",
            "--disable-pip", "--progress-spinner", "off", "--format", "json", "--output", str(report),
        ]  # fmt: skip
        finished = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if not report.exists():
            sys.exit(f"pip-audit did not run:\n{finished.stderr[-2000:]}")
        return json.loads(report.read_text())["dependencies"]


def verdict(dependencies: list[dict], accepted: dict[str, str], *, required: bool) -> tuple[int, list[str]]:
    """The exit code and the lines to print for pip-audit's `dependencies` (its JSON report)."""
    skipped = [dep for dep in dependencies if "skip_reason" in dep]
    found = [(dep, vuln) for dep in dependencies for vuln in dep.get("vulns", [])]
    unexplained = [(dep, vuln) for dep, vuln in found if vuln["id"] not in accepted]
    lines = []
    for dep, vuln in found:
        said = f"accepted: {accepted[vuln['id']]}" if vuln["id"] in accepted else "NOT ACCEPTED"
        fixed = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
        lines.append(f"audit: {dep['name']} {dep['version']} {vuln['id']} (fixed in {fixed}): {said}")
    audited = len(dependencies) - len(skipped)
    if audited == 0:
        reason = skipped[0]["skip_reason"] if skipped else "requirements.txt names nothing"
        lines.append(
            f"audit: NOTHING AUDITED: the vulnerability service knows none of the {len(dependencies)} pinned "
            f"versions (first: {reason}). Run `make audit` where PyPI's JSON API or OSV answers."
        )
        return (1 if required else 0), lines
    if skipped:
        names = ", ".join(dep["name"] for dep in skipped)
        lines.append(f"audit: {len(skipped)} of {len(dependencies)} pins not audited: {names}")
    lines.append(f"audit: {audited} pins audited, {len(found)} known vulnerabilities, {len(unexplained)} not accepted")
    return (1 if unexplained or (required and skipped) else 0), lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--required", action="store_true", default=os.environ.get("AUDIT_REQUIRED") == "1")
    args = parser.parse_args(argv)
    code, lines = verdict(run_pip_audit(), exceptions(), required=args.required)
    print("\n".join(lines))
    return code


if __name__ == "__main__":
    sys.exit(main())
