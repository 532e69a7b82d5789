"""The batch script of a Slurm run, rendered from a template. Pure.

templates/sbatch.sh.tmpl holds the script's shape; this module fills in the
#SBATCH options (from the recipe's nodes and GPUs per node, and the user's
partition, account, time and QOS), the pinned environment and the runner's
own command, each quoted for its reader (sbatch's option parser, bash).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from string import Template

from runner.launch.cluster.slurm_request import SlurmRequest

TEMPLATE = Path(__file__).parent / "templates" / "sbatch.sh.tmpl"
# The runner gets SIGTERM this long before the time limit: it stops the job,
# then its Ray, and records the run as stopped, before Slurm kills what is left.
STOP_BEFORE_LIMIT_S = 120


@dataclass(frozen=True)
class Environment:
    """How the batch script gets the pinned software stack on the node it runs on."""

    # A script that sets up the environment (the flake app's, a store path); sourced.
    script: str | None = None
    # PYTHONPATH to export (the current Python's run without the flake), if any.
    pythonpath: str | None = None

    def lines(self) -> list[str]:
        if self.script:
            return ["# The flake app's environment (store paths; it finds this node's libcuda).",
                    f"source {shlex.quote(self.script)}"]
        if self.pythonpath:
            return ["# The Python that submitted the run, with its PYTHONPATH.",
                    f"export PYTHONPATH={shlex.quote(self.pythonpath)}"]
        return ["# The Python that submitted the run (its own environment)."]


@dataclass(frozen=True)
class BatchScript:
    run_id: str
    request: SlurmRequest
    output: str  # Slurm's output file, %j = the job id
    chdir: str
    environment: Environment
    command: tuple[str, ...]


class UnsafeValue(ValueError):
    pass


def _sbatch_value(name: str, value: str) -> str:
    # sbatch reads #SBATCH lines itself (not bash): a line break would end the
    # option, and a double quote would need escaping that sbatch does not do.
    if any(c in value for c in '\n\r"') or not value.isprintable():
        raise UnsafeValue(f"{name} {value!r}: a line break, a double quote or a control character cannot go on "
                          f"an #SBATCH line; choose a value without them")
    return f'"{value}"' if any(c.isspace() for c in value) else value


def sbatch_options(script: BatchScript) -> list[tuple[str, str | None]]:
    req = script.request
    options: list[tuple[str, str | None]] = [
        ("--job-name", script.run_id),
        ("--nodes", str(req.nodes)),
        # One task per node: the batch script on the first, srun's Ray worker on each other.
        ("--ntasks-per-node", "1"),
        ("--exclusive", None),
    ]
    if req.gpus_per_node:
        options.append(("--gres", f"gpu:{req.gpus_per_node}"))
    for name, value in (("--partition", req.partition), ("--account", req.account),
                        ("--time", req.time_limit), ("--qos", req.qos)):
        if value:
            options.append((name, value))
    options += [
        ("--output", script.output),
        ("--chdir", script.chdir),
        ("--signal", f"B:TERM@{STOP_BEFORE_LIMIT_S}"),
        # A requeued job would run this script again into a run that already started.
        ("--no-requeue", None),
    ]
    return options


def render(script: BatchScript) -> str:
    lines = [f"#SBATCH {name}" if value is None else f"#SBATCH {name}={_sbatch_value(name, value)}"
             for name, value in sbatch_options(script)]
    return Template(TEMPLATE.read_text()).substitute(
        run_id=script.run_id,
        sbatch_options="\n".join(lines),
        environment="\n".join(script.environment.lines()),
        command=shlex.join(script.command),
    )
