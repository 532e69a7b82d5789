"""Validate prompt datasets: JSON lines that carry the recipe's input and label keys."""

from __future__ import annotations

import json
from pathlib import Path


class DatasetError(Exception):
    pass


def validate_jsonl(path: Path, required_keys: tuple[str, ...], max_lines: int | None = None) -> int:
    """Return the number of records; raise DatasetError naming the first bad line."""
    if not path.is_file():
        raise DatasetError(f"dataset {path} does not exist; run `python -m runner download` or set BASE_FOLDER")
    count = 0
    try:
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
                if not isinstance(record, dict):
                    raise DatasetError(f"{path}:{lineno}: expected a JSON object per line")
                absent = [k for k in required_keys if k not in record]
                if absent:
                    have = ", ".join(sorted(record)) or "none"
                    raise DatasetError(f"{path}:{lineno}: missing key {absent[0]!r} (keys present: {have}); "
                                       f"fix the data or pass --set input-key=... / --set label-key=...")
                count += 1
                if max_lines is not None and count >= max_lines:
                    break
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not UTF-8 text") from None
    if count == 0:
        raise DatasetError(f"dataset {path} is empty")
    return count
