"""Check results shared by doctor, plan and smoke: one row of a report."""

from __future__ import annotations

from dataclasses import dataclass

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass(frozen=True)
class Check:
    """One preflight finding.

    status "fail" blocks the chosen recipe (non-zero exit); "warn" does not.
    `fix` tells the user what to do, in one line.
    """

    name: str
    status: str
    detail: str = ""
    fix: str = ""

    @property
    def blocking(self) -> bool:
        return self.status == FAIL

    def to_json(self) -> dict:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


def render_table(checks: list[Check]) -> str:
    """A plain fixed-width table; no colour so logs stay readable."""
    if not checks:
        return "(no checks)"
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        line = f"{c.status.upper():4}  {c.name:<{width}}  {c.detail}"
        if c.fix and c.status in (FAIL, WARN):
            line += f"\n{'':4}  {'':<{width}}  -> {c.fix}"
        lines.append(line)
    return "\n".join(lines)
