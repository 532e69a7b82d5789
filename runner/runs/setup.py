"""What `train` decides about a run before anything starts.

Its id and directory, the recipe and the override layers (a resumed run
replays the layers recorded in its run.json, then this invocation's), its
checkpoint folder and the kernel caches. Reads only: a resumed run's
run.json and checkpoint trackers. `train` turns the result into flags
(runner.checks.request, which checks a resumed run's recorded layers again) and
processes (runner.launch.train_plan); nothing here writes (the runs dir probe
creates and removes one empty directory: it leaves nothing).

Checkpoint folder, as flag layers applied in this order:
  fresh run     recipe -> load/save = <run dir>/checkpoints -> your overrides
  --resume RUN  recipe -> RUN's recorded overrides -> load/save = the folder RUN
                saved into -> your overrides (a change needs --accept-changes)
  --resume DIR  recipe -> load/save = DIR (a checkpoint folder no run wrote,
                e.g. one from slime's own scripts) -> your overrides
A resume loads the latest COMPLETE checkpoint (runner.runs.checkpoints.
latest_complete): when the tracker names one that is not, the checkpoint layer
gains slime's --ckpt-step N (resolve_resume_point), and a note says why.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from runner.flags import Flag, FlagSet
from runner.kernel_cache import KernelCache, resolve_kernel_cache
from runner.locations import Setting
from runner.runs import identity
from runner.runs.checkpoints import ResumePoint, latest_complete, latest_iteration
from runner.runs.layout import RunNotFound, RunPaths, find_run, new_run_id, resolve_runs_dir
from runner.runs.record import ACTIVE, BadRecord, load_record
from runner.slime_args.render import Overrides


class SetupError(ValueError):
    """Bad input found before planning: one line, exit 2, even for a dry-run."""


@dataclass(frozen=True)
class RunSetup:
    run_id: str
    paths: RunPaths
    runs_dir: Setting
    recipe: str
    # What run.json records as the recipe and overrides: {"recipe": NAME, "overrides": [LAYER, ...]},
    # each LAYER in command-line form; a resume replays them in order.
    request: dict
    # A resumed run's recorded layers, replayed before this invocation's overrides.
    replay: tuple[dict, ...]
    checkpoint_dir: str
    kernel_cache: KernelCache
    resumed_from: dict | None = None
    changes: tuple[str, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)
    # The run directory and its queued run.json exist already: `train --slurm` made them
    # (runner.runs.slurm_run.adopt).
    prepared: bool = False
    warnings: tuple[str, ...] = field(default_factory=tuple)
    # Where the resume continues (resolve_resume_point; None until then, and for a fresh run).
    resume_point: ResumePoint | None = None
    # The runner's own options for a long run, recorded in run.json's "long_run"; --resume carries
    # them unless given again: {"keep_checkpoints": K or None, "notify_cmd": CMD or None}.
    long_run: dict = field(default_factory=dict)


def layer_is_empty(layer: dict) -> bool:
    return not (layer.get("set") or layer.get("unset") or layer.get("low_memory") or layer.get("extra_argv"))


def describe_layer(layer: dict) -> list[str]:
    out = [f"--set {s}" for s in layer.get("set", [])] + [f"--unset {u}" for u in layer.get("unset", [])]
    if layer.get("low_memory"):
        out.append("--low-memory")
    if layer.get("extra_argv"):
        out.append("-- " + " ".join(layer["extra_argv"]))
    return out


def checkpoint_layer(folder: str) -> Overrides:
    return Overrides(set_flags=(Flag("load", (folder,)), Flag("save", (folder,))))


@dataclass(frozen=True)
class RunRequest:
    """What the user asked of the run: `train`'s options about it, typed (runner.commands.train reads them)."""

    recipe: str | None  # --recipe
    layer: dict  # this invocation's overrides in command-line form (how run.json records them)
    resume: str | None = None  # --resume RUN (an id, a run directory, or a checkpoint folder)
    accept_changes: bool = False
    runs_dir: str | None = None  # --runs-dir
    base_folder: str | None = None  # --base-folder
    kernel_cache: str | None = None  # --kernel-cache
    keep_checkpoints: int | None = None  # --keep-checkpoints K (None: the resumed run's, else keep all)
    notify_cmd: str | None = None  # --notify-cmd CMD (None: the resumed run's, else none)


def prepare_run(req: RunRequest, environ: Mapping[str, str], *, now: float, suffix: str,
                cwd: str | None = None) -> RunSetup:
    """Raises SetupError for input that cannot be planned at all; other problems are listed."""
    cwd = cwd or os.getcwd()
    runs_dir = resolve_runs_dir(req.runs_dir, req.base_folder, environ, cwd)
    caches = resolve_kernel_cache(req.kernel_cache, environ, cwd)
    if not req.resume:
        if not req.recipe:
            raise SetupError("train needs --recipe NAME (or --resume RUN to continue a run)")
        run_id, paths = _mint(req.recipe, runs_dir, now, suffix)
        folder = str(paths.checkpoints)
        return RunSetup(run_id, paths, runs_dir, req.recipe, _request(req.recipe, [], req.layer), (), folder, caches,
                        long_run=long_run_options(req, {}))
    setup = _resume(req, runs_dir, caches, now=now, suffix=suffix, cwd=cwd)
    recorded = {}
    if setup.resumed_from and setup.resumed_from.get("dir"):
        try:
            recorded = load_record(RunPaths(Path(setup.resumed_from["dir"]))).get("long_run") or {}
        except BadRecord:
            recorded = {}
    return replace(setup, long_run=long_run_options(req, recorded))


def _mint(recipe: str, runs_dir: Setting, now: float, suffix: str) -> tuple[str, RunPaths]:
    """A new run's id and its directory under the runs dir (each run, resumed or not, gets its own)."""
    run_id = new_run_id(recipe, now, suffix)
    return run_id, RunPaths(Path(runs_dir.value) / run_id)


LONG_RUN_OPTIONS = ("keep_checkpoints", "notify_cmd")


def long_run_options(req: RunRequest, recorded: dict) -> dict:
    """This invocation's --keep-checkpoints / --notify-cmd, else the resumed run's recorded ones."""
    out = {}
    for name in LONG_RUN_OPTIONS:
        given = getattr(req, name)
        out[name] = given if given is not None else recorded.get(name)
    return out


def _request(recipe: str, recorded_layers: list[dict], given_layer: dict) -> dict:
    layers = list(recorded_layers) + ([] if layer_is_empty(given_layer) else [given_layer])
    return {"recipe": recipe, "overrides": layers}


def _resume(req: RunRequest, runs_dir: Setting, caches: KernelCache, *, now: float, suffix: str,
            cwd: str) -> RunSetup:
    ref, recipe, given_layer = req.resume, req.recipe, req.layer
    problems: list[str] = []
    try:
        previous = find_run(Path(runs_dir.value), ref)
    except RunNotFound as exc:
        folder = os.path.normpath(os.path.join(cwd, os.path.expanduser(ref)))
        if not Path(folder).is_dir():
            raise SetupError(f"--resume {ref}: {exc}") from None
        return _resume_folder(ref, folder, recipe, runs_dir, given_layer, caches, now=now, suffix=suffix)
    try:
        record = load_record(previous)
    except BadRecord as exc:
        raise SetupError(f"--resume {ref}: {exc}") from None
    request = record.get("request") or {}
    recorded_recipe = request.get("recipe")
    recorded_layers = list(request.get("overrides") or [])
    if not recorded_recipe:
        raise SetupError(f"--resume {ref}: {previous.record} records no recipe")
    changes = []
    if recipe and recipe != recorded_recipe:
        changes.append(f"--recipe {recipe} (recorded: {recorded_recipe})")
    changes += describe_layer(given_layer)
    if changes and not req.accept_changes:
        problems.append(f"--resume {previous.id} replays its recorded recipe and overrides; changing them "
                        f"({'; '.join(changes)}) needs --accept-changes (the change is recorded in the new run's "
                        f"run.json; --force only starts despite the memory plan)")
    folder = (record.get("checkpoint") or {}).get("save") or (record.get("checkpoint") or {}).get("folder")
    iteration = latest_iteration(folder)
    if not folder:
        problems.append(f"--resume {previous.id}: its run.json records no checkpoint folder")
    elif iteration is None:
        problems.append(f"--resume {previous.id}: {folder} holds no checkpoint yet (slime saves every "
                        f"--save-interval rollouts); start a fresh run instead")
    if record.get("state") in ACTIVE and identity.alive(record.get("supervisor")) is not False:
        problems.append(f"--resume {previous.id}: that run is still {record['state']}; stop it first "
                        f"(`python -m runner stop {previous.dir}`)")
    new_recipe = recipe or recorded_recipe
    warnings = [w for w in [_backend_change_warning(previous.id, recorded_recipe, new_recipe, folder)] if w]
    run_id, paths = _mint(new_recipe, runs_dir, now, suffix)
    return RunSetup(
        run_id, paths, runs_dir, new_recipe, _request(new_recipe, recorded_layers, given_layer),
        tuple(recorded_layers), folder or "", caches,
        resumed_from={"run": previous.id, "dir": str(previous.dir), "checkpoint": folder, "iteration": iteration},
        changes=tuple(changes), problems=tuple(problems), warnings=tuple(warnings))


def _backend_change_warning(run: str, recorded: str, recipe: str, folder: str | None) -> str | None:
    """A resume on the other backend cannot continue the training: the two save different checkpoints."""
    from runner.recipes import RECIPES

    old, new = RECIPES.get(recorded), RECIPES.get(recipe)
    if old is None or new is None or old.backend == new.backend:
        return None
    if new.backend == "fsdp":
        what = (f"slime's FSDP backend loads iter_N/model/ (slime/backends/fsdp_utils/checkpoint.py), which a "
                f"Megatron checkpoint has not: it skips the load and trains from the HF weights, saving into "
                f"{folder}")
    else:
        what = "Megatron does not read the FSDP backend's checkpoints (iter_N/model/): loading them fails"
    return (f"--recipe {recipe} resumes {run}, a {recorded} run: the {new.backend} backend cannot continue its "
            f"{old.backend} checkpoints; {what}. To train {recipe}, start a fresh run instead")


def _resume_folder(ref: str, folder: str, recipe: str | None, runs_dir: Setting,
                   given_layer: dict, caches: KernelCache, *, now: float, suffix: str) -> RunSetup:
    iteration = latest_iteration(folder)
    if iteration is None:
        raise SetupError(f"--resume {ref}: neither a run (none under {runs_dir.value}) nor a checkpoint folder "
                         f"(no latest_checkpointed_iteration.txt in {folder})")
    if not recipe:
        raise SetupError(f"--resume {ref} is a checkpoint folder that no run recorded: name its recipe with --recipe")
    run_id, paths = _mint(recipe, runs_dir, now, suffix)
    return RunSetup(run_id, paths, runs_dir, recipe, _request(recipe, [], given_layer), (), folder, caches,
                    resumed_from={"run": None, "dir": None, "checkpoint": folder, "iteration": iteration})


def resolve_resume_point(setup: RunSetup, flags: FlagSet) -> tuple[RunSetup, tuple[Overrides, ...], list[str]]:
    """A resumed run's latest complete checkpoint: (the setup recording it, the layer that asks slime
    for it when the tracker names another (--ckpt-step), problems). flags: the run's flags without
    that layer (they say whether slime keeps a data state: --disable-rollout-global-dataset).
    An explicit --ckpt-step of the user's is theirs: kept, and no layer is added. The backend whose
    content counts is the one that wrote the folders (a resume on the other backend only warns:
    _backend_change_warning)."""
    folder = flags.value("load") or setup.checkpoint_dir  # what slime loads (a --set load=... of yours wins)
    if not setup.resumed_from or not folder:
        return setup, (), []
    point = latest_complete(folder, global_dataset=not flags.has("disable-rollout-global-dataset"))
    problem = point.problem(folder)
    resumed = dict(setup.resumed_from)
    if point.iteration is not None:
        resumed["iteration"] = str(point.iteration)
    if point.ckpt_step_args():
        resumed.update(tracker=str(point.tracker), skipped=[[n, why] for n, why in point.skipped])
    setup = replace(setup, resumed_from=resumed, resume_point=point)
    if flags.has("ckpt-step") or not point.ckpt_step_args() or problem:
        return setup, (), [problem] if problem else []
    step = point.ckpt_step_args()
    return setup, (Overrides(set_flags=(Flag(step[0].lstrip("-"), step[1:]),)),), []


def run_problems(setup: RunSetup, flags: FlagSet) -> list[str]:
    """What stops this run from starting: the setup's own, a fresh start over an
    existing checkpoint, its directory. Reads only. (Another active run on this
    machine: runner.runs.machine_lock.active_run_problem.)"""
    from runner.runs.checkpoints import fresh_start_problem

    problems = list(setup.problems)
    if setup.resumed_from is None:
        problem = fresh_start_problem(flags.value("load"), flags.value("save"), setup.recipe)
        if problem:
            problems.append(problem)
    if setup.paths.dir.exists() and not setup.prepared:
        problems.append(f"run directory {setup.paths.dir} already exists; start again (a new id is drawn)")
    problems += filter(None, [runs_dir_problem(setup.runs_dir)])
    return problems


def runs_dir_problem(runs_dir: Setting) -> str | None:
    """Whether a run directory can be made under the runs dir (which may not exist yet).

    Probed by making and removing an empty directory in the runs dir, or in
    its nearest existing ancestor: access() cannot tell (root passes it, yet
    /proc and read-only mounts refuse mkdir)."""
    import tempfile

    path = Path(runs_dir.value)
    if runs_dir.source in ("--base-folder", "$BASE_FOLDER", "default") and path.parent.is_file():
        return None  # BASE_FOLDER is a file: its own problem says so (inputs.base_folder_problem)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a directory")
        os.rmdir(tempfile.mkdtemp(prefix=".slime-runner-probe-", dir=existing))
    except OSError as exc:
        why = exc.strerror or str(exc)
        if existing != path:
            why = f"cannot create it under {existing}: {why}"
        return (f"runs dir {path} (from {runs_dir.source}) is not writable ({why}); choose one with "
                f"--runs-dir DIR or $SLIME_RUNS_DIR")
    return None


def run_dir_contents(setup: RunSetup, detach: bool) -> str:
    """What the run's directory will hold: a resumed run saves into the folder it continues, so it has
    no checkpoints/ of its own."""
    files = ["run.json", "job.log"] + (["runner.log"] if detach else [])
    return ", ".join(files + ([] if setup.resumed_from else ["checkpoints/"]))


def run_notes(setup: RunSetup, flags: FlagSet, detach: bool) -> list[str]:
    notes = [f"run {setup.run_id}: {setup.paths.dir} ({run_dir_contents(setup, detach)}); runs dir from "
             f"{setup.runs_dir.source}",
             f"checkpoints: --load {flags.value('load')} --save {flags.value('save')}"]
    if setup.resumed_from:
        what = setup.resumed_from.get("run") or setup.resumed_from.get("checkpoint")
        iteration = setup.resumed_from.get("iteration")
        notes.append(f"resumes {what} from " + (f"iteration {iteration}" if iteration is not None else
                                                "its latest checkpoint (none yet: see the problems)"))
        point = setup.resume_point
        if point is not None and point.note():
            given = flags.value("ckpt-step")
            if given is not None and point.ckpt_step_args() and given != str(point.iteration):
                notes.append(f"{point.note()}; but your --ckpt-step {given} is kept")
            else:
                notes.append(point.note())
    if setup.changes:
        notes.append("changed on resume (--accept-changes; recorded): " + "; ".join(setup.changes))
    notes += [f"kernel cache: {line}" for line in setup.kernel_cache.describe()]
    if detach:
        notes.append("detached: a supervisor (python -m runner.runs.supervisor, its own session) owns Ray and the "
                     "job; train returns once the job runs")
    return notes
