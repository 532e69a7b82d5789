"""Runner for slime's Qwen3-Next-80B-A3B RL recipes.

Plan first, then execute: every subcommand builds a `Plan` (processes with
argv, env and cwd, plus the problems found) from pure functions, and a thin
executor runs it. `--dry-run` is simply stopping after planning.
"""

__version__ = "0.1.0"
