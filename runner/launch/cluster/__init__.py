"""Ways to bring up the Ray cluster a training job runs on.

`head.py` plans the head node; worker launchers are one module each:
`ssh.py` (hostfile, as slime does) and `slurm.py` (srun inside an
allocation). Every process is started with `ray start --block`, so the
runner owns it: stopping that process stops exactly that Ray instance.
"""
