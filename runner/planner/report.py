"""The planner's result as data: memory terms per role, verdicts, and rendering."""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = float(1 << 30)

FITS, DOES_NOT_FIT, UNKNOWN = "fits", "does not fit", "not checked"


def gib(nbytes: float) -> float:
    return nbytes / GIB


@dataclass(frozen=True)
class Term:
    """One line of a memory table, in GiB, with where the number comes from."""

    name: str
    gib: float
    note: str = ""

    def to_json(self) -> dict:
        return {"name": self.name, "gib": round(self.gib, 3), "note": self.note}


@dataclass(frozen=True)
class Role:
    """Memory of one GPU (or one node's host memory) playing a role in the recipe.

    `capacity_gib` None means unknown (verdict "not checked"). `problems`
    are failures that the byte total alone does not show (for example sglang
    having no room left for its KV cache); any problem makes the verdict
    "does not fit".
    """

    name: str
    kind: str  # "gpu" or "host"
    count: int  # how many GPUs (or nodes) play this role
    terms: tuple[Term, ...]
    capacity_gib: float | None
    problems: tuple[str, ...] = ()
    info: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def total_gib(self) -> float:
        return sum(t.gib for t in self.terms)

    @property
    def headroom_gib(self) -> float | None:
        return None if self.capacity_gib is None else self.capacity_gib - self.total_gib

    @property
    def verdict(self) -> str:
        if self.problems:
            return DOES_NOT_FIT
        if self.capacity_gib is None:
            return UNKNOWN
        return FITS if self.total_gib <= self.capacity_gib else DOES_NOT_FIT

    @property
    def fits(self) -> bool:
        return self.verdict != DOES_NOT_FIT

    def reasons(self) -> list[str]:
        out = list(self.problems)
        if self.capacity_gib is not None and self.total_gib > self.capacity_gib:
            out.append(f"{self.name}: needs {self.total_gib:.1f} GiB of {self.capacity_gib:.1f} GiB "
                       f"(short by {self.total_gib - self.capacity_gib:.1f} GiB)")
        return out

    def to_json(self) -> dict:
        return {
            "name": self.name, "kind": self.kind, "count": self.count,
            "terms": [t.to_json() for t in self.terms],
            "total_gib": round(self.total_gib, 3),
            "capacity_gib": None if self.capacity_gib is None else round(self.capacity_gib, 3),
            "headroom_gib": None if self.headroom_gib is None else round(self.headroom_gib, 3),
            "verdict": self.verdict, "problems": list(self.problems), "info": dict(self.info),
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class PlanReport:
    recipe: str
    recipe_status: str  # "faithful" or "derived"
    backend: str
    gpu: str  # what the capacity is for, e.g. "h100 (79.6 GiB)"
    gpu_memory_gib: float
    host_memory_gib: float | None
    params: dict
    topology_problems: tuple[str, ...]
    roles: tuple[Role, ...]
    assumptions: tuple[str, ...]
    checkpoint: dict = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    # What --save receives (runner.planner.saved.SavePlan.to_json, plus its "summary").
    saves: dict = field(default_factory=dict)

    @property
    def fits(self) -> bool:
        return not self.topology_problems and all(r.fits for r in self.roles)

    def reasons(self) -> list[str]:
        out = list(self.topology_problems)
        for r in self.roles:
            out.extend(r.reasons())
        return out

    def to_json(self) -> dict:
        return {
            "recipe": self.recipe, "recipe_status": self.recipe_status, "backend": self.backend,
            "gpu": self.gpu, "gpu_memory_gib": round(self.gpu_memory_gib, 3),
            "host_memory_gib": None if self.host_memory_gib is None else round(self.host_memory_gib, 3),
            "fits": self.fits, "reasons": self.reasons(), "warnings": list(self.warnings),
            "params": self.params, "topology_problems": list(self.topology_problems),
            "roles": [r.to_json() for r in self.roles], "checkpoint": dict(self.checkpoint),
            "saves": dict(self.saves),
            "assumptions": list(self.assumptions),
        }


def _b(n: float) -> str:
    return f"{n / 1e9:.3f}B"


def render(report: PlanReport, *, assumptions: bool = True) -> str:
    p = report.params
    status = "" if report.recipe_status == "faithful" else \
        f" [{report.recipe_status}: our layout, not yet run at full scale]"
    lines = [f"plan: {report.recipe} ({report.backend}){status} on {report.gpu}"
             + (f", host {report.host_memory_gib:.0f} GiB/node" if report.host_memory_gib else ", host memory not given")]
    c = p["by_component"]
    lines.append(f"params: total {_b(p['total'])} (published 80B), active/token {_b(p['active'])} "
                 f"({_b(p['active_without_embeddings'])} without embedding+head; published 3B); "
                 f"MTP block in checkpoint {_b(p['mtp'])}")
    lines.append("  " + ", ".join(f"{k} {_b(v)}" for k, v in c.items() if v))
    if report.checkpoint:
        ck = report.checkpoint
        lines.append(f"checkpoint: {ck.get('summary', '')}")
    if report.saves:
        lines.append(f"saves: {report.saves['summary']}")
    if report.topology_problems:
        lines.append("topology: FAIL")
        lines.extend(f"  - {t}" for t in report.topology_problems)
    else:
        lines.append("topology: ok")
    for r in report.roles:
        lines.append("")
        head = f"{r.name} (x{r.count})"
        cap = "?" if r.capacity_gib is None else f"{r.capacity_gib:.1f}"
        room = "" if r.headroom_gib is None else f", headroom {r.headroom_gib:+.1f}"
        lines.append(f"{head}: {r.total_gib:.1f} / {cap} GiB{room} -> {r.verdict.upper()}")
        width = max((len(t.name) for t in r.terms), default=0)
        for t in r.terms:
            lines.append(f"  {t.name:<{width}}  {t.gib:8.2f}  {t.note}")
        for k, v in r.info.items():
            lines.append(f"  . {k}: {v}")
        for prob in r.problems:
            lines.append(f"  ! {prob}")
        for n in r.notes:
            lines.append(f"  * {n}")
    lines.append("")
    lines.append("verdict: " + ("FITS" if report.fits else "DOES NOT FIT"))
    for w in report.warnings:
        lines.append(f"  warning: {w}")
    if assumptions:
        lines.append("assumptions (docs/planner.md):")
        lines.extend(f"  - {a}" for a in report.assumptions)
    else:
        lines.append(f"({len(report.assumptions)} assumptions: --verbose lists them; docs/planner.md explains them)")
    return "\n".join(lines)
