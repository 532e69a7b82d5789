"""Checks before anything starts: the user's inputs, the machine, the installed stack, GPU kernels,
checkpoints, datasets, patches; and the check rows doctor, plan and smoke report them in."""
