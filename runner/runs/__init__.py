"""Runs: one directory per `train`, which outlives the terminal and says what ran.

    <runs dir>/<run id>/          runs dir: --runs-dir, $SLIME_RUNS_DIR, else $BASE_FOLDER/runs
      run.json                    provenance and state, rewritten atomically as the run moves on
      job.log                     the job's full log (what `logs` prints)
      runner.log                  detached runs: the supervisor's own output (Ray head, progress)
      checkpoints/                the actor's --load/--save, unless the user names another folder

Modules: layout (paths, ids, finding a run), record (run.json I/O), identity
(is the process that owns a run still alive?), machine_lock (one active run
per machine), checkpoints (fresh start vs resume), provenance (software
facts), setup (what `train` decides about a run), supervisor and detach (the
process that owns Ray), stop.
"""
