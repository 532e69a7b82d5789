"""Secrets travel only through the environment and never appear in output.

Redaction is by name first, whatever the value: environment variables named
like secrets (WANDB_API_KEY, HF_TOKEN, *_TOKEN, *_API_KEY, ...), the values of
slime flags that take a secret (--wandb-key, --sglang-api-key, ...) and
secret-named keys of --train-env-vars. Then, as a second net, the secret values
of the caller's environment wherever they still occur, in every form they take
in output: as typed, JSON-escaped (a newline, a quote, a backslash, non-ASCII)
and shell-quoted.
"""

from __future__ import annotations

import json
import re
import shlex
from typing import Iterable, Mapping, Sequence

# Environment variables whose values are secrets. Anything matching
# SECRET_NAME_PATTERN is treated as one too.
KNOWN_SECRET_ENV = ("WANDB_API_KEY", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "RAY_AUTH_TOKEN", "SLIME_NOTIFY_WEBHOOK")
# Secrets only the runner itself uses (the notification webhook's URL, runner.runs.notify): unset in
# every process it starts (Ray's head and workers, the job), so no Ray process or runtime env holds them.
RUNNER_ONLY_SECRETS = ("SLIME_NOTIFY_WEBHOOK",)
SECRET_NAME_PATTERN = re.compile(r"(TOKEN|API_KEY|SECRET|PASSWORD)$", re.IGNORECASE)
# The secrets a run passes on to the job's processes (runner.launch.job_secrets), from the caller's environment.
PASSED_SECRETS = ("WANDB_API_KEY", "HF_TOKEN")
# slime flags that would put a secret on the command line, and the variable to export instead.
SECRET_FLAGS = {"wandb-key": "WANDB_API_KEY", "hf-token": "HF_TOKEN"}
# slime flags whose value is a secret (redacted by name), beyond SECRET_FLAGS.
_SECRET_FLAG_PATTERN = re.compile(r"(^|-)(api-key|password|secret|wandb-key|hf-token)$")
TRAIN_ENV_VARS = "train-env-vars"
REDACTED = "<redacted>"


def is_secret_name(name: str) -> bool:
    return name in KNOWN_SECRET_ENV or bool(SECRET_NAME_PATTERN.search(name))


def is_secret_flag(name: str) -> bool:
    """A slime flag (without --) whose value is a secret."""
    return name in SECRET_FLAGS or bool(_SECRET_FLAG_PATTERN.search(name))


def secret_values(environ: Mapping[str, str]) -> list[str]:
    # Short values would redact ordinary words; real keys are long.
    return sorted({v for k, v in environ.items() if is_secret_name(k) and len(v) >= 8}, key=len, reverse=True)


def _forms(value: str) -> list[str]:
    """How `value` can appear in output: as is, JSON-escaped (ASCII or not), shell-quoted."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], shlex.quote(value)}
    return sorted((f for f in forms if f), key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str]) -> str:
    for value in sorted(set(secrets), key=len, reverse=True):
        for form in _forms(value):
            text = text.replace(form, REDACTED)
    return text


def redact_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if is_secret_name(k) else v) for k, v in env.items()}


def redact_env_json(text: str) -> str:
    """--train-env-vars' JSON with the values of secret-named keys redacted (text that is not a JSON
    object is returned as is: the flag check refuses it)."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if not isinstance(value, dict) or not any(is_secret_name(str(k)) for k in value):
        return text
    return json.dumps({k: (REDACTED if is_secret_name(str(k)) else v) for k, v in value.items()})


def redact_argv(argv: Sequence[str]) -> list[str]:
    """argv with the values of secret flags and secret --train-env-vars keys redacted, by name."""
    out = list(argv)
    for i, token in enumerate(out):
        if not token.startswith("--"):
            continue
        name, eq, value = token[2:].partition("=")
        if eq:
            if is_secret_flag(name):
                out[i] = f"--{name}={REDACTED}"
            elif name == TRAIN_ENV_VARS:
                out[i] = f"--{name}={redact_env_json(value)}"
            continue
        if i + 1 < len(out) and not out[i + 1].startswith("--"):
            if is_secret_flag(name):
                out[i + 1] = REDACTED
            elif name == TRAIN_ENV_VARS:
                out[i + 1] = redact_env_json(out[i + 1])
    return out


def secret_flag_error(flag_names: Iterable[str]) -> str | None:
    for name in flag_names:
        if name in SECRET_FLAGS:
            return (f"--{name} would put a secret on the command line (visible in ps and logs); "
                    f"export {SECRET_FLAGS[name]} instead")
    return None


def secret_env_vars_problem(names: Iterable[str]) -> str | None:
    """--train-env-vars may not carry secrets: slime puts its JSON on train.py's command line (visible to
    every local user in ps) and the runner records it in run.json."""
    secret = [n for n in names if is_secret_name(str(n))]
    if not secret:
        return None
    passed = [n for n in secret if n in PASSED_SECRETS]
    fix = (f"export {' and '.join(passed)} in the environment instead (the runner hands "
           f"{', '.join(PASSED_SECRETS)} to every Ray worker through a private file)" if passed else
           f"only {', '.join(PASSED_SECRETS)} reach the job's workers, exported in the environment")
    return f"sets {', '.join(secret)}, a secret, on the command line of train.py and in run.json: {fix}"


def redact_json(data, secrets: Iterable[str]):  # noqa: ANN001, ANN201
    """Replace secret values anywhere in a JSON-able structure (every string, keys included)."""
    values = sorted({v for v in secrets if v}, key=len, reverse=True)
    if not values:
        return data

    def walk(node):  # noqa: ANN001, ANN202
        if isinstance(node, str):
            return redact_text(node, values)
        if isinstance(node, dict):
            return {walk(k): walk(v) for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(v) for v in node]
        return node

    return walk(data)
