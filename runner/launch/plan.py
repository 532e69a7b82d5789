"""The inspectable result of planning: what would run, and what is wrong.

A `Plan` is plain data. Subcommands build one without side effects; the
executor (runner.launch.processes) runs it; `--dry-run` prints it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Process:
    """One process the runner would start.

    env holds only the variables the runner sets on top of the caller's
    environment (secrets are redacted when rendered for humans or JSON).
    """

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "."
    # What this process is for, shown in dry-run and progress output.
    purpose: str = ""
    # Name of an env var in `env` whose value is written to the process's
    # stdin (how a secret reaches a remote host without touching argv).
    stdin_secret: str | None = None
    # A file that takes the process's stdout and stderr (e.g. Ray's start-up
    # banner without --verbose); None: the terminal.
    output: str | None = None
    # Variables removed from the inherited environment (secrets that this
    # process has no use for, so that they do not spread with it).
    unset_env: tuple[str, ...] = ()
    # A file (written by the runner first) whose contents go to stdin.
    stdin_file: str | None = None
    # Run to completion before the next process starts; a non-zero exit stops the launch.
    wait: bool = False

    def to_json(self) -> dict:
        out = {"argv": list(self.argv), "env": dict(self.env), "cwd": self.cwd, "purpose": self.purpose}
        if self.output:
            out["output"] = self.output
        if self.unset_env:
            out["unset_env"] = list(self.unset_env)
        if self.stdin_file:
            out["stdin_file"] = self.stdin_file
        if self.wait:
            out["wait"] = True
        return out


@dataclass(frozen=True)
class Problem:
    """Something that blocks (severity "error") or deserves attention ("warning")."""

    message: str
    severity: str = "error"

    def to_json(self) -> dict:
        return {"severity": self.severity, "message": self.message}


@dataclass
class Plan:
    processes: list[Process] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    # Human-readable facts about the decisions taken (locations, defaults used).
    notes: list[str] = field(default_factory=list)
    # Files the runner writes before starting the processes: path -> content.
    files: dict[str, str] = field(default_factory=dict)
    # Files of secrets: path -> the names of the environment variables whose
    # values the runner writes there at launch (mode 0600) and removes at the
    # end. The plan holds names only, so no output of it can show a value.
    secret_files: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def error(self, message: str) -> None:
        self.problems.append(Problem(message, "error"))

    def warn(self, message: str) -> None:
        self.problems.append(Problem(message, "warning"))

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def to_json(self) -> dict:
        return {
            "processes": [p.to_json() for p in self.processes],
            "problems": [p.to_json() for p in self.problems],
            "notes": list(self.notes),
            "files": dict(self.files),
            "secret_files": {path: list(names) for path, names in self.secret_files.items()},
        }

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2)
