"""Secrets reach the job's processes from a private file, never through Ray's runtime env.

Ray writes a job's runtime env, env_vars included, to its logs
(runtime_env_agent.log, readable by any local user once the temp dir is) and
serves it to whoever asks its job API (/api/jobs/: runtime_env.env_vars). So
the runner keeps WANDB_API_KEY and HF_TOKEN out of it. Instead it writes them
to a file of mode 0600 in the run's private directory (mode 0700; on every
node: ssh workers get a copy through ssh's stdin) and puts only that file's
path in the runtime env (SECRETS_FILE_ENV), with this module as the job's
`worker_process_setup_hook`:

- Ray runs the hook in every worker process of the job before any task or
  actor code: `ray.init` in the driver turns the runtime env's
  `worker_process_setup_hook` string into the variable
  __RAY_WORKER_PROCESS_SETUP_HOOK_ENV_VAR of the job's env_vars, and
  ray/_private/workers/default_worker.py imports and calls it (Ray 2.53, the
  lock's, and 2.60 alike). The job's env_vars reach every actor of the job:
  an actor's own runtime_env, as slime's RayTrainGroup and engines pass one,
  is merged with the job's, variable by variable.
- The driver (train.py) is no Ray worker: the job's entrypoint runs it
  through `python -m runner.launch.job_secrets -- python train.py ...`, which loads
  the same file and execs.

Variables already set in a process win: under Slurm, srun hands the
environment (and so the secrets) to the worker nodes' Ray, and no file is
copied there. Standard library only: it runs inside Ray workers.
"""

from __future__ import annotations

import json
import os
import sys

SECRETS_FILE_ENV = "SLIME_RUNNER_SECRETS_FILE"
HOOK = "runner.launch.job_secrets.load"


def read(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path} holds no JSON object")
    return {str(k): str(v) for k, v in data.items()}


def load() -> None:
    """The Ray worker_process_setup_hook: the run's secrets into this process's environment."""
    path = os.environ.get(SECRETS_FILE_ENV)
    if not path:
        return
    try:
        secrets = read(path)
    except (OSError, ValueError) as exc:
        # Not fatal (the hook failing would kill the worker): wandb or the hub say what is missing.
        print(f"[runner] the run's secrets file is not readable on this node ({exc}); WANDB_API_KEY and "
              f"HF_TOKEN stay as this process's environment has them", file=sys.stderr, flush=True)
        return
    for name, value in secrets.items():
        os.environ.setdefault(name, value)


def main(argv: list[str] | None = None) -> int:
    """`python -m runner.launch.job_secrets -- COMMAND ...`: load the secrets, then exec COMMAND."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: python -m runner.launch.job_secrets -- COMMAND [ARG ...]", file=sys.stderr)
        return 2
    load()
    os.execvp(argv[0], argv)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main())
