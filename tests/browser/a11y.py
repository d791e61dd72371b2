"""An automated accessibility check of a page in the browser: axe-core (vendored in vendor/, MPL-2.0)
runs in the page and reports WCAG rule violations with their impact."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"

# Runs axe over the whole document and keeps what a failure message needs: rule, impact, elements.
RUN_AXE = """
async () => {
  const results = await axe.run(document, { resultTypes: ["violations"] });
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(" ")),
  }));
}
"""


@dataclass
class Violation:
    page: str
    id: str
    impact: str
    help: str
    targets: list[str]

    def __str__(self) -> str:
        return f"{self.impact} {self.id} on {self.page}: {self.help}; elements: {', '.join(self.targets)}"


@dataclass
class AccessibilityAudit:
    """The violations found on every page a journey visited; critical ones fail the journey at once."""

    fail_on: tuple[str, ...] = ("critical",)
    violations: list[Violation] = field(default_factory=list)

    def check(self, page, where: str = "") -> list[Violation]:
        if not page.evaluate("() => typeof window.axe === 'object'"):
            page.add_script_tag(path=str(AXE))
        name = where or page.url
        found = [Violation(page=name, **item) for item in page.evaluate(RUN_AXE)]
        self.violations.extend(found)
        failing = [v for v in found if v.impact in self.fail_on]
        assert not failing, "accessibility violations:\n" + "\n".join(str(v) for v in failing)
        return found

    def serious(self) -> list[Violation]:
        return [v for v in self.violations if v.impact == "serious"]
