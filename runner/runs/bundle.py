"""What a supervisor needs to run a planned launch, as JSON.

A detached run's supervisor gets it on its stdin (never on argv or disk: it
holds the Ray token and the runtime env's secrets), and runs it with the same
code as a foreground run (runner.launch.run.run_launch).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from runner.launch.cluster.spec import ClusterSpec
from runner.launch.plan import Process


@dataclass(frozen=True)
class LaunchBundle:
    files: dict[str, str]
    head: Process
    workers: list[Process]
    job: Process
    cluster: ClusterSpec
    # path -> names of the variables whose values go there (the supervisor reads them from its own
    # environment, which it inherits from `train`).
    secret_files: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def of(cls, tp) -> "LaunchBundle":  # noqa: ANN001 - a TrainPlan
        return cls(dict(tp.files), tp.head, list(tp.workers), tp.job, tp.cluster, dict(tp.secret_files))

    def to_json(self) -> dict:
        return {"files": self.files, "head": asdict(self.head), "workers": [asdict(w) for w in self.workers],
                "job": asdict(self.job), "cluster": asdict(self.cluster),
                "secret_files": {p: list(n) for p, n in self.secret_files.items()}}

    @classmethod
    def from_json(cls, data: dict) -> "LaunchBundle":
        def process(d: dict) -> Process:
            return Process(**{**d, "argv": tuple(d["argv"]), "unset_env": tuple(d.get("unset_env", ()))})

        names = {f.name for f in fields(ClusterSpec)}
        cluster = {k: v for k, v in data["cluster"].items() if k in names}
        cluster["workers"] = tuple(cluster.get("workers", ()))
        return cls(dict(data["files"]), process(data["head"]), [process(w) for w in data["workers"]],
                   process(data["job"]), ClusterSpec(**cluster),
                   {p: tuple(n) for p, n in (data.get("secret_files") or {}).items()})
