"""Plan a training launch: Ray head, workers, the job. Pure: inputs in, Plan out."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, replace

from runner.flags import FlagSet
from runner.launch.cluster import slurm, ssh
from runner.launch.cluster.head import head_process
from runner.launch.cluster.spec import ClusterSpec
from runner.launch.job_secrets import HOOK, SECRETS_FILE_ENV
from runner.launch.plan import Plan, Process
from runner.recipes.base import Recipe
from runner.runs.setup import RunSetup
from runner.runs.sinks import sink_env
from runner.slime_args.render import no_proxy_value, runtime_env_vars, train_entrypoint


@dataclass(frozen=True)
class TrainInputs:
    recipe: Recipe
    # train.py's flags: the recipe with every override layer applied (runner.checks.request).
    flags: FlagSet
    slime_dir: str | None
    megatron_dir: str | None
    cluster: ClusterSpec
    python: str
    # The run: its id (the Ray job's submission id), its directory (the job process appends the job's
    # log to its job.log and marks run.json "running" once Ray accepted the job) and its kernel caches.
    setup: RunSetup
    nccl_nvls_enable: str
    # Names of the secrets set in the caller's environment (runner.secrets.PASSED_SECRETS): their values
    # reach the job's processes through a private file (runner.launch.job_secrets), never the runtime env.
    secret_names: tuple[str, ...] = ()
    # Names of the runner's own secrets set in the caller's environment (runner.secrets.RUNNER_ONLY_SECRETS):
    # unset in every process started, never passed on.
    runner_only_secrets: tuple[str, ...] = ()
    # Where the job's Python finds this runner (the secrets hook), when it is not installed there.
    runner_path: str | None = None
    # Launch-path test: run this Python file in place of slime's train.py.
    test_entrypoint: str | None = None
    head_node: str = ""  # Slurm: the node this runner is on
    # False: Ray's start-up banners (head, workers) go to files in the temp dir, not the terminal.
    ray_banner: bool = False
    # How long the job process retries a transient submission error (--ready-timeout).
    submit_timeout: float = 300.0
    # False for a detached run: the log goes to job.log only.
    echo_job_log: bool = True
    # The runner's own -P (runner.interpreter), for its Python children: the job submitter, the driver's
    # secrets wrapper.
    python_flags: tuple[str, ...] = ()


@dataclass
class TrainPlan:
    plan: Plan
    flags: FlagSet
    head: Process
    workers: list[Process]
    job: Process
    runtime_env: dict
    runtime_env_path: str
    cluster: ClusterSpec
    inputs: TrainInputs | None = None
    # runner.runs.manifest.RunContext: what `train` knows about the run beyond its processes.
    run: object = None

    @property
    def files(self) -> dict[str, str]:
        return self.plan.files

    @property
    def secret_files(self) -> dict[str, tuple[str, ...]]:
        return self.plan.secret_files


def job_env(setup: RunSetup) -> dict[str, str]:
    """Added to the job's runtime env: the persistent kernel caches, and TensorBoard's dir in the run's."""
    return {**setup.kernel_cache.env, **sink_env(str(setup.paths.dir))}


def build_train_plan(inputs: TrainInputs) -> TrainPlan:
    plan = Plan()
    recipe, spec = inputs.recipe, inputs.cluster
    flags = inputs.flags
    slime_dir = inputs.slime_dir or "<SLIME_DIR unset>"
    megatron_dir = inputs.megatron_dir or "<MEGATRON_DIR unset>"

    env_vars = runtime_env_vars(recipe, megatron_dir=megatron_dir, slime_dir=slime_dir,
                                master_addr=spec.master_addr, nccl_nvls_enable=inputs.nccl_nvls_enable,
                                extra=job_env(inputs.setup))
    secrets = tuple(inputs.secret_names)
    if inputs.test_entrypoint:
        # The launch test needs neither slime nor Megatron on the path.
        env_vars.pop("PYTHONPATH")
    if secrets and inputs.runner_path:
        paths = [p for p in (env_vars.get("PYTHONPATH"), inputs.runner_path) if p]
        env_vars["PYTHONPATH"] = ":".join(paths)
    runtime_env: dict = {"env_vars": env_vars}
    if secrets:
        # Only the file's path travels in the runtime env, which Ray logs and serves (runner.launch.job_secrets).
        env_vars[SECRETS_FILE_ENV] = spec.secrets_path
        runtime_env["worker_process_setup_hook"] = HOOK
        plan.secret_files = {spec.secrets_path: secrets}
    runtime_env_path = os.path.join(spec.temp_dir, "runtime_env.json")

    no_proxy = no_proxy_value(spec.master_addr)
    # Ray's system processes (GCS, raylet, dashboard) have no use for the secrets: not inherited.
    unset = secrets + tuple(n for n in inputs.runner_only_secrets if n not in secrets)
    head = replace(head_process(spec, no_proxy), unset_env=unset)
    output_dir = None if inputs.ray_banner else spec.temp_dir
    if spec.worker_launcher == "ssh":
        workers = ssh.worker_processes(spec, with_secrets=bool(secrets), output_dir=output_dir)
    elif spec.worker_launcher == "slurm":
        workers = slurm.worker_processes(spec, inputs.head_node)
        if output_dir:
            workers = [replace(w, output=f"{output_dir}/ray-worker-{i}.out") for i, w in enumerate(workers, 1)]
    else:
        workers = []
    if inputs.runner_only_secrets:  # srun hands its environment to the tasks: not these
        workers = [replace(w, unset_env=tuple(dict.fromkeys(w.unset_env + inputs.runner_only_secrets)))
                   for w in workers]
    if output_dir:
        head = replace(head, output=f"{output_dir}/ray-head.out")

    entrypoint = train_entrypoint(inputs.python, slime_dir, flags, inputs.test_entrypoint)
    if secrets:
        # The driver is no Ray worker: it loads the secrets file itself, then execs train.py.
        entrypoint = [inputs.python, *inputs.python_flags, "-m", "runner.launch.job_secrets", "--", *entrypoint]
    job_argv = (inputs.python, *inputs.python_flags, "-m", "runner.runs.ray_job", "--address", spec.dashboard_url,
                "--submission-id", inputs.setup.run_id, "--runtime-env-file", runtime_env_path,
                "--submit-timeout", f"{inputs.submit_timeout:g}")
    run_dir = str(inputs.setup.paths.dir)
    job_argv += ("--run-dir", run_dir, "--log-file", os.path.join(run_dir, "job.log"))
    if not inputs.echo_job_log:
        job_argv += ("--quiet",)
    job_argv += ("--", *entrypoint)
    job = Process(job_argv, {"no_proxy": no_proxy, **spec.auth_env()}, unset_env=unset,
                  purpose=f"submit {'the launch test' if inputs.test_entrypoint else 'slime train.py'} as Ray job "
                          f"{inputs.setup.run_id} and stream its logs")

    if secrets:
        plan.notes.append(f"secrets {', '.join(secrets)}: from this environment into {spec.secrets_path} (mode "
                          f"0600) for the job's processes (Ray worker_process_setup_hook {HOOK}), removed at the end; "
                          f"never in the runtime env, which Ray logs and serves")
    plan.processes = [head, *workers, job]
    plan.files = {runtime_env_path: json.dumps(runtime_env, indent=2)}
    plan.notes += [
        f"recipe {recipe.name}: {recipe.summary} [{recipe.status}; flags from {recipe.source}]",
        f"Ray: head {spec.gcs_address}, dashboard/job API on {spec.dashboard_host}:{spec.dashboard_port}, "
        f"token auth {'on' if spec.token_auth else 'off'}, private dir {spec.temp_dir} (mode 0700; the head's "
        f"Ray temp dir: {spec.head_temp_dir})",
        f"waits for {spec.nodes} node(s) and {spec.expected_gpus} GPU(s) to register",
    ]
    return TrainPlan(plan, flags, head, workers, job, runtime_env, runtime_env_path, spec, inputs)
