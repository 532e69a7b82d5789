"""Is a unified diff applied to a source tree? Read-only, no `patch` or `git`.

Each hunk is judged on its own: applied when its post-image (context and
added lines, in order) appears as consecutive lines of the file, not applied
when its pre-image (context and removed lines) does. Line numbers are ignored,
so a hunk that moved (the tree is at another commit) is still recognised.
This is `patch --dry-run -R` without the tool: the doctor also runs where
neither GNU patch nor git is installed, and `git apply` inside another work
tree can silently do nothing (FACTS.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

APPLIED, NOT_APPLIED, UNKNOWN = "applied", "not applied", "unknown"


@dataclass(frozen=True)
class Hunk:
    path: str  # relative to the tree root (the diff's b/ side)
    before: tuple[str, ...]
    after: tuple[str, ...]


# "@@ -OLD_START[,OLD_COUNT] +NEW_START[,NEW_COUNT] @@"; a missing count is 1.
_HUNK_HEADER = re.compile(r"^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@")


def parse_unified_diff(text: str) -> list[Hunk]:
    """The hunks of a (git) unified diff. Hunk bodies are read by the line
    counts of their headers, so a removed line that itself starts with "--"
    cannot be mistaken for a file header."""
    hunks: list[Hunk] = []
    path = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("+++ "):
            target = line[4:].split("\t")[0]
            path = target[2:] if target.startswith("b/") else target
            continue
        header = _HUNK_HEADER.match(line)
        if header is None or path is None:
            continue
        old_left = int(header.group(1)) if header.group(1) is not None else 1
        new_left = int(header.group(2)) if header.group(2) is not None else 1
        before: list[str] = []
        after: list[str] = []
        while (old_left > 0 or new_left > 0) and i < len(lines):
            body_line = lines[i]
            i += 1
            if body_line.startswith("\\"):  # "\ No newline at end of file"
                continue
            tag, body = body_line[:1], body_line[1:]
            if tag == "-":
                before.append(body)
                old_left -= 1
            elif tag == "+":
                after.append(body)
                new_left -= 1
            else:  # context (" ", or an empty line whose space was stripped)
                before.append(body)
                after.append(body)
                old_left -= 1
                new_left -= 1
        hunks.append(Hunk(path, tuple(before), tuple(after)))
    return hunks


def _contains(lines: list[str], block: tuple[str, ...]) -> bool:
    if not block:
        return True
    n = len(block)
    first = block[0]
    return any(lines[i] == first and tuple(lines[i:i + n]) == block for i in range(len(lines) - n + 1))


def hunk_state(tree: Path, hunk: Hunk) -> str:
    try:
        lines = (tree / hunk.path).read_text(errors="replace").splitlines()
    except OSError:
        return UNKNOWN
    if _contains(lines, hunk.after):
        return APPLIED
    if _contains(lines, hunk.before):
        return NOT_APPLIED
    return UNKNOWN


@dataclass(frozen=True)
class PatchState:
    hunks: int
    applied: int
    missing_files: tuple[str, ...]  # files with a hunk not applied (or not recognisable)
    pristine: bool  # every hunk's pre-image is there: the tree is simply unpatched

    @property
    def complete(self) -> bool:
        return self.hunks > 0 and self.applied == self.hunks


def patch_state(tree: Path, diff_text: str) -> PatchState:
    hunks = parse_unified_diff(diff_text)
    states = [hunk_state(tree, h) for h in hunks]
    missing = tuple(dict.fromkeys(h.path for h, s in zip(hunks, states) if s != APPLIED))
    return PatchState(hunks=len(hunks), applied=states.count(APPLIED), missing_files=missing,
                      pristine=bool(hunks) and all(s == NOT_APPLIED for s in states))
