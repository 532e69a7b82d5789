"""Runs: one directory per `train`, which outlives the terminal and says what ran.

    <runs dir>/<run id>/          runs dir: --runs-dir, $SLIME_RUNS_DIR, else $BASE_FOLDER/runs
      run.json                    provenance and state, rewritten atomically as the run moves on
      job.log                     the job's full log (what `logs` prints)
      runner.log                  detached runs: the supervisor's own output (Ray head, progress)
      checkpoints/                the actor's --load/--save, unless the user names another folder
      metrics.jsonl, progress.json  slime's metric lines and the run's progress, kept by its owner

Modules: layout (paths, ids, finding a run), record (run.json I/O), identity
(is the process that owns a run still alive?), machine_lock (one active run
per machine), checkpoints (fresh start vs resume), provenance (software
facts), setup (what `train` decides about a run), supervisor and detach (the
process that owns Ray), ray_job (submits the job and streams its log), stop.
Watching a run: slime_log and literal (slime's
log lines), collector (the job log into metrics.jsonl and progress.json),
progress (phase, rollout i of N, ETA), listing and progress_text (`runs`,
`status`), watching (reading it back), svg_chart and html_report (`report`),
sinks (TensorBoard's and wandb's files in the run directory).
"""
