"""Launch: the plan of what would run (processes, cluster), and the thin layer that starts and stops it.

Imports nothing: job_secrets runs inside Ray's worker processes, with the standard library only."""
