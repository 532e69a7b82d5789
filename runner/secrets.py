"""Secrets travel only through the environment and never appear in output."""

from __future__ import annotations

import json
import re
from typing import Iterable, Mapping

# Environment variables whose values are secrets. Anything matching
# SECRET_NAME_PATTERN is treated as one too.
KNOWN_SECRET_ENV = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "RAY_AUTH_TOKEN")
SECRET_NAME_PATTERN = re.compile(r"(TOKEN|API_KEY|SECRET|PASSWORD)$", re.IGNORECASE)
# slime flags that would put a secret on the command line.
SECRET_FLAGS = {"wandb-key": "WANDB_API_KEY", "hf-token": "HF_TOKEN"}
REDACTED = "<redacted>"


def is_secret_name(name: str) -> bool:
    return name in KNOWN_SECRET_ENV or bool(SECRET_NAME_PATTERN.search(name))


def secret_values(environ: Mapping[str, str]) -> list[str]:
    # Short values would redact ordinary words; real keys are long.
    return sorted({v for k, v in environ.items() if is_secret_name(k) and len(v) >= 8}, key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        text = text.replace(value, REDACTED)
    return text


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if is_secret_name(k) else v) for k, v in env.items()}


def secret_flag_error(flag_names: Iterable[str]) -> str | None:
    for name in flag_names:
        if name in SECRET_FLAGS:
            return (f"--{name} would put a secret on the command line (visible in ps and logs); "
                    f"export {SECRET_FLAGS[name]} instead")
    return None


def redact_json(data: dict, secrets: Iterable[str]) -> dict:
    """Replace secret values anywhere in a JSON-able structure (as JSON-escaped text)."""
    text = json.dumps(data)
    for value in sorted(set(secrets), key=len, reverse=True):
        if value:
            text = text.replace(json.dumps(value)[1:-1], REDACTED)
    return json.loads(text)
