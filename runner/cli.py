"""Command line: `python -m runner SUBCOMMAND ...` (console script: slime-qwen3-next)."""

from __future__ import annotations

import argparse
import difflib
import sys

DESCRIPTION = """\
Run slime's Qwen3-Next-80B-A3B RL recipes reproducibly.

Typical first run on a new node:
  python -m runner doctor --recipe megatron-8gpu      # is this machine ready?
  python -m runner smoke                              # tiny Qwen3-Next trains on the pinned kernels
  python -m runner download                           # weights + datasets into BASE_FOLDER
  python -m runner convert                            # HF -> Megatron torch_dist
  python -m runner plan --recipe megatron-8gpu        # will it fit in GPU memory?
  python -m runner train --recipe megatron-8gpu       # Ray up, job submitted, logs streamed
  python -m runner train --recipe megatron-8gpu --detach   # the same, outliving the terminal
  python -m runner status | logs -f RUN | stop RUN    # a detached run; runs, show RUN: what ran
  python -m runner metrics RUN | report RUN           # its curves: a table, or one HTML file

Every subcommand takes --dry-run: print what would run (argv, env, cwd) and touch
nothing; add --json for one JSON object. BASE_FOLDER, SLIME_DIR, MEGATRON_DIR
and MASTER_ADDR come from flags, else the environment. Secrets (WANDB_API_KEY,
HF_TOKEN) are read from the environment only and redacted in all output.
"""


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dry-run", action="store_true",
                   help="print what would run and touch nothing; problems found are listed and the exit code "
                        "stays 0 (`doctor` and a real run are the gates)")
    p.add_argument("--json", action="store_true", help="machine-readable output (one JSON object on stdout)")
    p.add_argument("--verbose", action="store_true", help="more output (Ray's start-up banner, plan's assumptions)")


# name -> (module under runner.commands, one line of help)
COMMANDS = {
    "doctor": ("doctor", "preflight report: GPUs, driver, packages vs pins, kernels, checkpoints, data"),
    "download": ("download", "download the model and datasets into BASE_FOLDER (resumable)"),
    "convert": ("convert", "convert the HF checkpoint to Megatron torch_dist with torchrun"),
    "plan": ("plan_cmd", "estimate per-GPU memory and check the topology of a recipe"),
    "train": ("train", "start Ray, run a recipe's training job, stream logs, clean up"),
    "smoke": ("smoke_cmd", "train a tiny Qwen3-Next on this machine's GPUs with the pinned kernels"),
    # Runs (runner.runs): a directory per train, which outlives the terminal.
    "runs": ("runs_cmd", "list runs: id, recipe, state, progress, start, duration"),
    "show": ("show", "print a run's run.json readably: recipe, overrides, software, hosts, GPUs"),
    "status": ("status", "is a run alive, where is it: phase, rollout i of N, ETA, checkpoint"),
    "logs": ("logs", "print a run's job log; -f follows it"),
    "stop": ("stop", "stop a run's job, then the Ray processes that run started"),
    "metrics": ("metrics", "a run's metrics as slime printed them: per rollout, --json or --csv"),
    "report": ("report", "one self-contained HTML file: a run's curves, progress and provenance"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole CLI; with `only`, the options of that subcommand alone are built (the others get their
    name and help): `runs` and `status` must answer fast, and need none of train's or doctor's imports."""
    import importlib

    # allow_abbrev=False everywhere: `--forc` must not silently mean `--force`.
    parser = argparse.ArgumentParser(prog="python -m runner", description=DESCRIPTION, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from runner import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", required=True)
    parser.subcommand_parsers = {}
    for name, (module_name, help_text) in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(f"runner.commands.{module_name}")
        # "resolve": a subcommand may redefine --json with its own help text.
        p = sub.add_parser(name, help=help_text, description=(module.__doc__ or help_text).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter, conflict_handler="resolve",
                           allow_abbrev=False)
        parser.subcommand_parsers[name] = p
        _common(p)
        module.add_arguments(p)
        # own_options: so a runner option given after `--` is named as such (runner.slime_args.overrides).
        p.set_defaults(handler=module.run, own_options=tuple(p._option_string_actions))
    return parser


def unrecognized(p: argparse.ArgumentParser, unknown: list[str]) -> str:
    """'unrecognized arguments: --forc (did you mean --force?)'."""
    options = sorted(o for o in p._option_string_actions if o.startswith("--"))
    hints = []
    for token in unknown:
        if not token.startswith("--"):
            continue
        name = token.split("=", 1)[0]
        slime_hint = _slime_flag_hint(p, token)
        if slime_hint:
            hints.append(f"{name}: {slime_hint}")
            continue
        longer = [o for o in options if o.startswith(name)]
        close = longer if len(longer) == 1 else difflib.get_close_matches(name, options, n=1, cutoff=0.6)
        if close:
            hints.append(f"{name}: did you mean {close[0]}?")
    text = f"unrecognized arguments: {' '.join(unknown)}"
    if len(hints) == 1 and len(unknown) == 1 and not hints[0].split(": ", 1)[1].startswith("did you mean"):
        text += f" ({hints[0].split(': ', 1)[1]})"
    elif len(hints) == 1 and len(unknown) == 1:
        text += f" ({hints[0].split(': ', 1)[1]} options cannot be abbreviated)"
    elif hints:
        text += f" ({'; '.join(hints)})"
    return text


def _slime_flag_hint(p: argparse.ArgumentParser, token: str) -> str | None:
    """For a subcommand that takes slime flags (train, plan): a slime flag given as the runner's own."""
    if "--set" not in p._option_string_actions:
        return None
    from runner.slime_args.schema import backend_flags

    name, sep, value = token[2:].partition("=")
    option = backend_flags("megatron").get(name) or backend_flags("fsdp").get(name)
    if option is None:
        return None
    setting = name if option.is_switch else f"{name}={value if sep else 'VALUE'}"
    return f"--{name} is a slime flag: slime flags go after `--`, or use --set {setting}"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((t for t in argv if not t.startswith("-")), None)
    parser = build_parser(only=command if command in COMMANDS else None)
    # A misspelt option gets the subcommand's usage and a "did you mean", before
    # argparse's own errors (which would blame the top-level parser, or only say
    # that --recipe is missing when --recip was typed).
    sub = parser.subcommand_parsers.get(command or "")
    if sub is not None:
        rest = argv[argv.index(command) + 1:]
        rest = rest[:rest.index("--")] if "--" in rest else rest
        unknown = [t for t in rest if t.startswith("--") and t.split("=", 1)[0] not in sub._option_string_actions]
        if unknown:
            sub.error(unrecognized(sub, unknown))
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        sub = parser.subcommand_parsers[args.command]
        sub.error(unrecognized(sub, unknown))
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
