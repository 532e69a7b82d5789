"""nixpkgs' `substituteInPlace FILE --replace-fail OLD NEW ...` for the audit's
phase scripts (stdenv's setup.sh is not here). --replace-fail fails when OLD
is absent, --replace-warn / --replace only warn, --replace-quiet says
nothing; every occurrence is replaced, in the order given."""

from __future__ import annotations

import sys
from pathlib import Path

MODES = {"--replace-fail": "fail", "--replace-warn": "warn", "--replace": "warn", "--replace-quiet": "quiet"}


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    text = path.read_text()
    i = 1
    while i < len(argv):
        mode = MODES.get(argv[i])
        if mode is None or i + 2 >= len(argv):
            print(f"substituteInPlace: unsupported or incomplete argument {argv[i]!r}", file=sys.stderr)
            return 2
        old, new = argv[i + 1], argv[i + 2]
        if old not in text:
            msg = f"substituteInPlace: pattern {old!r} doesn't match anything in file '{path}'"
            if mode == "fail":
                print(f"Error: {msg}", file=sys.stderr)
                return 1
            if mode == "warn":
                print(f"Warning: {msg}", file=sys.stderr)
        text = text.replace(old, new)
        i += 3
    path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
