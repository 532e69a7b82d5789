"""Whether a resumed job continues where its checkpoint ends (issue 17 item 2). Pure.

slime 3d7599aa sets the start rollout id to 0 after parsing, whatever the
checkpoint says (slime_validate_args; fixed upstream in c1fd2bac1, carried
here as patches/slime/). A resumed job then trains from rollout 0 again and
overwrites the run's checkpoints as it goes. The runner reads the first
rollout id the job logs (progress.json's first_rollout, from the collector)
and compares it with what the checkpoint implies; the monitor stops the run on
a mismatch, before the first save could overwrite anything.

Where a checkpoint continues (runner.runs.checkpoints): Megatron's iter_N
holds rollout N, so the job continues at N + 1; FSDP's iter_N holds rollout
N - 1 (slime saves rollout r as iter_{r+1}), so it continues at N. An explicit
--start-rollout-id S is kept by a fixed slime (upstream b91f59e2): then S.
"""

from __future__ import annotations

from runner.flags import FlagSet

PREFIX = "resume misalignment:"


def expected_first_rollout(resumed_iteration: int | None, *, backend: str = "megatron",
                           start_rollout_id: int | None = None) -> int | None:
    if start_rollout_id is not None:
        return start_rollout_id
    if resumed_iteration is None:
        return None
    return resumed_iteration if backend == "fsdp" else resumed_iteration + 1


def misalignment(resumed_iteration: int | None, first_rollout: int | None, *, backend: str = "megatron",
                 start_rollout_id: int | None = None) -> str | None:
    """None when the job continues where it should, or when that is not known yet (not a resume,
    or no rollout logged); else one line starting "resume misalignment:" saying what to do.
    resumed_iteration: the checkpoint loaded (run.json's resumed_from.iteration, which is the
    --ckpt-step one on a fallback)."""
    if isinstance(resumed_iteration, str):  # run.json records it as text
        resumed_iteration = int(resumed_iteration) if resumed_iteration.isdigit() else None
    expected = expected_first_rollout(resumed_iteration, backend=backend, start_rollout_id=start_rollout_id)
    if expected is None or first_rollout is None or first_rollout == expected:
        return None
    source = (f"--start-rollout-id {start_rollout_id}" if start_rollout_id is not None
              else f"checkpoint iteration {resumed_iteration} ({backend})")
    if first_rollout < expected:
        what = (f"the job started at rollout {first_rollout} but {source} continues at rollout {expected}: it "
                f"would train rollouts again and overwrite the checkpoints saved after {first_rollout}. The slime "
                f"in SLIME_DIR sets the start rollout id itself (slime 3d7599aa's bug, fixed upstream in "
                f"c1fd2bac1): use the patched slime (the flake's, or tools/without-nix.sh), check it with "
                f"`python -m runner doctor`, then resume again")
    else:
        what = (f"the job started at rollout {first_rollout} but {source} continues at rollout {expected}: "
                f"rollouts {expected}..{first_rollout - 1} would never be trained. Check SLIME_DIR's slime and "
                f"any --start-rollout-id, then resume again")
    return f"{PREFIX} {what}"


def run_misalignment(record: dict, progress: dict) -> str | None:
    """misalignment() for a run: its run.json (resumed_from, the job's argv) and progress.json."""
    resumed = record.get("resumed_from") or {}
    text = str(resumed.get("iteration") or "")
    if not resumed or not text.isdigit():
        return None
    argv = list(((record.get("job") or {}).get("entrypoint")) or [])
    start = next((i for i, t in enumerate(argv) if t.startswith("--")), len(argv))
    try:
        flags = FlagSet.parse(argv[start:])
        given = flags.value("start-rollout-id")
        start_id = int(given) if given is not None else None
    except ValueError:
        flags, start_id = FlagSet(), None
    return misalignment(int(text), progress.get("first_rollout"), backend=flags.value("train-backend") or "megatron",
                        start_rollout_id=start_id)
