#!/bin/bash
# Run ${run_id}
# Written by `python -m runner train --slurm` into the run directory and
# submitted with sbatch. Slurm starts this script on the first node of the
# allocation, which becomes the Ray head; the runner there starts a Ray worker
# on every other node with srun, runs the job and, when it ends, stops the Ray
# processes it started. `python -m runner status|logs|stop RUN` follow it from
# the login node (squeue, this job's output file, scancel).
${sbatch_options}

set -euo pipefail
# The head's address is this node's, as Slurm reaches it (NodeAddr), never the
# submitting shell's MASTER_ADDR, which sbatch passes on.
unset MASTER_ADDR
${environment}
exec ${command}
