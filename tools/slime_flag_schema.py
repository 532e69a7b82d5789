#!/usr/bin/env python3
"""Extract the flag schema of slime's train.py from the pinned sources.

slime's train.py builds one argparse parser per training backend:
  megatron: Megatron-LM's parse_args (allow_abbrev=False) + slime's arguments
            + sglang's ServerArgs, each prefixed --sglang-, as slime adds them;
  fsdp:     slime's FSDPArgs parser (argparse defaults: allow_abbrev=True)
            + the same slime and sglang arguments.
This tool builds both parsers with the real code (slime at the pinned commit,
Megatron-LM at the pinned commit with slime's megatron.patch, sglang from the
environment), on CPU, stops right before they parse, and writes every option:
its spellings, dest, action, type, nargs, choices, default, whether it is
required. The runner validates user overrides against this file
(runner/slime_args/data/slime_flags.json) without importing slime.

Kept unimported (GPU-only; neither changes any argument definition):
  transformer_engine, transformer_engine_torch: Megatron imports them inside
    try/except ImportError; the PyPI core wheel without its torch extension
    raises AssertionError instead, so they are made unimportable and Megatron
    takes its documented no-TE path (megatron/core/utils.py).
  slime/backends/fsdp_utils/__init__.py: imports the FSDP actor, hence
    ring_flash_attn and flash_attn (CUDA-only wheels). slime's own parse_args
    imports `slime.backends.fsdp_utils.arguments`; that file is loaded from
    its path without running the package's __init__.

usage:
  # from the pinned `git archive` tarballs (OWNER+REPO-REV.tar.gz, tools/upstream_sources.py;
  # default folder: $SLIME_UPSTREAM_SOURCES); extracts both and applies slime's patch:
  python tools/slime_flag_schema.py --sources DIR
  # from git clones (extracts the pinned commits, applies slime's patch):
  python tools/slime_flag_schema.py --slime-git SLIME_GIT_DIR --megatron-git MEGATRON_GIT_DIR
  # from trees already at the pins (Megatron-LM already patched; e.g. Nix store paths):
  python tools/slime_flag_schema.py --slime-dir DIR --megatron-dir DIR
  # add --check FILE to compare instead of writing (exit 1 and a diff when they differ)

Run it with a Python that has the stack (sglang, torch, transformers): the one
`tools/stack-env.sh` builds (it prints SLIME_STACK_PYTHON) or the flake's
environment; `--python` picks the interpreter for the extraction child
(default: this one).
"""

from __future__ import annotations

import argparse
import difflib
import enum
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import upstream_sources  # noqa: E402  (tools/ is not a package)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "runner" / "slime_args" / "data" / "slime_flags.json"
SCHEMA_VERSION = 1
HOW = ("python tools/slime_flag_schema.py --sources DIR (the pinned git-archive tarballs; default "
       "$SLIME_UPSTREAM_SOURCES), with a Python that has the stack (tools/stack-env.sh, or the flake's env); nix flake "
       "check runs it as checks.<system>.slime-flags")
GPU_ONLY_UNIMPORTED = {
    "transformer_engine": "Megatron imports it in try/except ImportError; without its CUDA torch extension the "
                          "PyPI wheel raises AssertionError, so it is made unimportable (Megatron's no-TE path)",
    "slime.backends.fsdp_utils (package __init__)": "imports the FSDP actor -> ring_flash_attn -> flash_attn (CUDA "
                                                    "only); arguments.py is loaded from its file instead",
}


# ---------------------------------------------------------------- extraction (child process)

def _type_name(action: argparse.Action, modules: dict) -> tuple[str, list | None]:
    """(type name, choices as the strings a user types or converted values)."""
    conv = action.type
    choices = list(action.choices) if action.choices is not None else None
    if choices is not None:
        # Only membership matters to argparse; some lists come from a set or a Rust
        # HashMap (sglang_router's tool-call parsers) whose order changes per run.
        choices = sorted(choices, key=str)
    if choices and all(isinstance(c, enum.Enum) for c in choices):
        # Megatron's enum arguments: the user types a member name.
        names = [c.name for c in choices]
        for c in choices:
            if conv(c.name) is not c:
                raise SystemExit(f"{action.option_strings}: enum converter does not map names to members")
        return "enum", names
    if conv is None or conv is str:
        return "str", choices
    if conv in (int, float, bool):
        return conv.__name__, choices
    if conv is json.loads:
        return "json", choices
    name = getattr(conv, "__name__", "")
    known = {
        "json_list_type": "json_list",       # sglang: json.loads, must give a list
        "nullable_str": "str",               # sglang: "None" -> None, else the string
        "moe_freq_type": "layer_pattern",    # Megatron: int, or a list expression of digits
        "la_freq_type": "layer_pattern",
        "no_rope_freq_type": "layer_pattern",
        "tuple_type": "int_tuple",           # Megatron: "1,2" or "(1,2)" -> tuple of ints
    }
    if name in known and conv is getattr(modules.get(conv.__module__), name, None):
        return known[name], choices
    if name == "<lambda>":
        # Megatron's enum lambdas (e.g. --cuda-graph-scope: CudaGraphScope[x] or "full"): find the enum
        # the lambda names and keep the member names (plus string constants) it accepts.
        accepted = []
        for ref in conv.__code__.co_names:
            obj = conv.__globals__.get(ref)
            if isinstance(obj, type) and issubclass(obj, enum.Enum):
                accepted += list(obj.__members__)
        accepted += [c for c in conv.__code__.co_consts if isinstance(c, str)]
        ok = []
        for value in accepted:
            try:
                conv(value)
            except Exception:
                continue
            ok.append(value)
        try:
            conv("no-such-value")
        except Exception:
            if ok:
                return "enum", sorted(set(ok), key=ok.index)
    raise SystemExit(f"{action.option_strings}: unknown type converter {conv!r}; teach tools/slime_flag_schema.py "
                     f"what values it accepts")


def _jsonable(value):
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return repr(value)


ACTIONS = {
    "_StoreAction": "store", "_StoreTrueAction": "store_true", "_StoreFalseAction": "store_false",
    "_StoreConstAction": "store_const", "_AppendAction": "append", "_AppendConstAction": "append_const",
    "_CountAction": "count", "_HelpAction": "help", "_VersionAction": "version",
    "BooleanOptionalAction": "boolean_optional",
}


def _describe(action: argparse.Action, modules: dict) -> dict:
    kind = ACTIONS.get(type(action).__name__)
    if kind is None:
        # A custom Action subclass (e.g. sglang's LoRAPathAction): it takes values like a store.
        kind = "store"
    typ, choices = ("none", None) if action.nargs == 0 else _type_name(action, modules)
    default = action.default if action.default is not argparse.SUPPRESS else "==SUPPRESS=="
    return {
        "flags": list(action.option_strings), "dest": action.dest, "action": kind, "type": typ,
        "nargs": action.nargs, "choices": _jsonable(choices), "default": _jsonable(default),
        "required": bool(action.required),
    }


def build_parsers() -> dict:
    """Both of train.py's parsers, built by slime's real code; runs in a prepared child."""
    sys.argv = ["train.py"]  # slime reads sys.argv once (parse_known_args) while building its parser
    for name in ("transformer_engine", "transformer_engine_torch"):
        sys.modules[name] = None  # import -> ImportError: Megatron's documented no-TE path
    import importlib.util
    import warnings

    warnings.simplefilter("ignore")
    import logging

    logging.disable(logging.CRITICAL)
    from megatron.training.arguments import parse_args as megatron_parse_args

    import slime
    from slime.utils.arguments import get_slime_extra_args_provider

    fsdp_file = Path(slime.__file__).parent / "backends" / "fsdp_utils" / "arguments.py"
    spec = importlib.util.spec_from_file_location("slime.backends.fsdp_utils.arguments", fsdp_file)
    fsdp_arguments = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fsdp_arguments)

    class Built(Exception):
        pass

    parsers: dict[str, argparse.ArgumentParser] = {}

    def capture(backend):
        def provider(parser):
            parsers[backend] = get_slime_extra_args_provider()(parser)
            raise Built  # stop before parse_args() reads sys.argv
        return provider

    # The same entry points slime's parse_args calls for each --train-backend.
    for backend, build in (("megatron", megatron_parse_args), ("fsdp", fsdp_arguments.load_fsdp_args)):
        try:
            build(extra_args_provider=capture(backend))
        except Built:
            pass
    return parsers


def parse_cases(cases: list[dict]) -> list[dict]:
    """Parse each {"backend", "argv", "dests"} with slime's parser: {"ok", "error", "values"}.

    For tests that compare the runner's checks with slime's own argparse.
    """
    import contextlib
    import io

    parsers = build_parsers()
    results = []
    for case in cases:
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                ns = parsers[case["backend"]].parse_args(case["argv"])
        except SystemExit:
            results.append({"ok": False, "error": err.getvalue().strip().splitlines()[-1], "values": {}})
            continue
        except Exception as exc:  # e.g. Megatron's enum lambdas raise KeyError: a traceback in slime
            results.append({"ok": False, "error": f"{type(exc).__name__}: {exc}", "values": {}})
            continue
        results.append({"ok": True, "error": "",
                        "values": {d: _jsonable(getattr(ns, d, None)) for d in case.get("dests", ())}})
    return results


def extract() -> dict:
    """The schema's backends and the versions that produced it; runs in a prepared child."""
    parsers = build_parsers()
    modules = dict(sys.modules)
    backends = {}
    for backend, parser in parsers.items():
        options = [_describe(a, modules) for a in parser._actions if a.option_strings]
        positionals = [a.dest for a in parser._actions if not a.option_strings]
        if positionals:
            raise SystemExit(f"{backend}: unexpected positional arguments {positionals}")
        backends[backend] = {"allow_abbrev": parser.allow_abbrev, "prefix_chars": parser.prefix_chars,
                             "options": sorted(options, key=lambda o: o["flags"][0])}
    from importlib.metadata import version

    return {
        "backends": backends,
        "environment": {"python": ".".join(map(str, sys.version_info[:3])),
                        **{pkg: version(pkg) for pkg in ("sglang", "sglang-router", "torch", "transformers")}},
    }


# ---------------------------------------------------------------- driver

def _pins() -> dict:
    return json.loads((REPO / "nix" / "pins.json").read_text())


def _sglang_patch_options(slime_dir: Path) -> list[str]:
    """Options slime's sglang.patch adds to ServerArgs (the environment's sglang may be unpatched)."""
    patch = slime_dir / "docker" / "patch" / "latest" / "sglang.patch"
    out, in_server_args = [], False
    for line in patch.read_text().splitlines():
        if line.startswith("diff --git"):
            in_server_args = line.endswith("server_args.py")
        elif in_server_args and line.startswith("+") and '"--' in line:
            out.append(line.split('"')[1])
    return out


def prepare_from_git(slime_git: str, megatron_git: str, tmp: Path) -> tuple[Path, Path]:
    pins = _pins()["sources"]
    slime, megatron = tmp / "slime", tmp / "Megatron-LM"
    for git_dir, rev, dest in ((slime_git, pins["slime"]["rev"], slime),
                               (megatron_git, pins["megatron-lm"]["rev"], megatron)):
        dest.mkdir()
        archive = subprocess.run(["git", "-C", git_dir, "archive", rev], check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    _patch_megatron(slime, megatron)
    return slime, megatron


def prepare_from_archives(folder: Path, tmp: Path) -> tuple[Path, Path]:
    """slime and Megatron-LM from a folder of pinned `git archive` tarballs
    (OWNER+REPO-REV.tar.gz, the layout of tools/upstream_sources.py), into tmp."""
    pins = _pins()["sources"]
    slime, megatron = tmp / "slime", tmp / "Megatron-LM"
    for name, dest in (("slime", slime), ("megatron-lm", megatron)):
        pin = pins[name]
        archive = folder / upstream_sources.archive_name(f"{pin['owner']}/{pin['repo']}", pin["rev"])
        if not archive.is_file():
            raise FileNotFoundError(f"no {archive.name} in {folder}: give --sources a folder of the pinned "
                                    "tarballs (see tools/upstream_sources.py)")
        dest.mkdir()
        subprocess.run(["tar", "-xzf", str(archive), "-C", str(dest)], check=True)
    _patch_megatron(slime, megatron)
    return slime, megatron


def _patch_megatron(slime: Path, megatron: Path) -> None:
    for patch in _pins()["sources"]["megatron-lm"]["patches_from_slime"]:
        # GNU patch, as nix/packages/megatron-lm.nix: fails on any rejected hunk.
        with open(slime / patch, "rb") as f:
            subprocess.run(["patch", "-p1", "--forward", "--quiet", "--no-backup-if-mismatch"], stdin=f,
                           cwd=megatron, check=True)


def run_in_child(python: str, slime: Path, megatron: Path, call: str, payload=None):  # noqa: ANN001, ANN201
    """Run `slime_flag_schema.<call>` with the stack's Python and the given trees; return its JSON result."""
    env = {
        # A clean environment: Megatron and sglang read some defaults from variables
        # (WORLD_SIZE, LOCAL_RANK, SGLANG_*); none may leak into the schema.
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8", "PYTHONPATH": f"{megatron}:{slime}", "CUDA_VISIBLE_DEVICES": "",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0",
    }
    for key in ("TMPDIR", "HF_HOME", "TRITON_CACHE_DIR"):
        if key in os.environ:
            env[key] = os.environ[key]
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import slime_flag_schema as s; "
            f"args = json.loads(sys.stdin.read()); print('RESULT=' + json.dumps(s.{call}(*args)))")
    proc = subprocess.run([python, "-c", code], env=env, capture_output=True, text=True, cwd=str(slime.parent),
                          input=json.dumps([] if payload is None else [payload]))
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT=")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stderr[-6000:])
        raise SystemExit(f"{call} in {python} failed (exit {proc.returncode})")
    return json.loads(lines[-1][len("RESULT="):])


def build_schema(python: str, slime: Path, megatron: Path) -> dict:
    pins = _pins()
    extracted = run_in_child(python, slime, megatron, "extract")
    sources = pins["sources"]
    patch_options = _sglang_patch_options(slime)
    for backend in extracted["backends"].values():
        names = {f for o in backend["options"] for f in o["flags"]}
        leaked = [o for o in patch_options if f"--sglang-{o[2:]}" in names]
        if leaked:
            raise SystemExit(f"slime's sglang.patch adds {leaked}, which slime does not skip: the schema needs the "
                             f"patched sglang")
    return {
        "schema_version": SCHEMA_VERSION,
        "what": "every option of slime's train.py per --train-backend, as argparse defines it at the pins",
        "provenance": {
            "slime": {"repo": "THUDM/slime", "commit": sources["slime"]["rev"]},
            "megatron_lm": {"repo": "NVIDIA/Megatron-LM", "commit": sources["megatron-lm"]["rev"],
                            "patches_from_slime": sources["megatron-lm"]["patches_from_slime"]},
            "sglang": pins["python_packages"]["sglang"],
            "sglang_patch": ("slime's docker/patch/latest/sglang.patch adds " + ", ".join(patch_options)
                             + " to ServerArgs; slime skips it (skipped_args), so patched and unpatched sglang "
                               "give the same options"),
            "unimported_gpu_only_modules": GPU_ONLY_UNIMPORTED,
            "how": HOW,
        },
        "generated_with": extracted["environment"],
        "backends": extracted["backends"],
    }


def dumps(schema: dict) -> str:
    """JSON with one option per line: readable diffs, a few hundred KB."""
    head = {k: v for k, v in schema.items() if k != "backends"}
    text = json.dumps(head, indent=1)[:-2] + ',\n "backends": {\n'
    blocks = []
    for name, backend in schema["backends"].items():
        meta = {k: v for k, v in backend.items() if k != "options"}
        opts = ",\n".join("   " + json.dumps(o, sort_keys=True) for o in backend["options"])
        blocks.append(f'  {json.dumps(name)}: {json.dumps(meta)[:-1]}, "options": [\n{opts}\n  ]}}')
    return text + ",\n".join(blocks) + "\n }\n}\n"


# The parts a regeneration must reproduce exactly; generated_with (the Python and
# package versions of the machine that ran it) may differ between here and Nix.
COMPARED = ("schema_version", "provenance", "backends")


def compare(expected_path: Path, schema: dict) -> int:
    committed = json.loads(expected_path.read_text())
    if {k: committed.get(k) for k in COMPARED} == {k: schema[k] for k in COMPARED}:
        print(f"{expected_path}: matches the pinned sources "
              f"({sum(len(b['options']) for b in schema['backends'].values())} options)")
        return 0
    diff = difflib.unified_diff(dumps({**committed, "generated_with": {}}).splitlines(),
                                dumps({**schema, "generated_with": {}}).splitlines(),
                                "committed", "regenerated", lineterm="", n=0)
    print("\n".join(list(diff)[:200]))
    print(f"{expected_path} differs from the schema of the pinned sources; regenerate it with: {HOW}",
          file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_argument_group("sources (--sources, or one pair)")
    src.add_argument("--sources", type=Path, default=os.environ.get("SLIME_UPSTREAM_SOURCES") or None,
                     help="folder of the pinned `git archive` tarballs, OWNER+REPO-REV.tar.gz (default: "
                          "$SLIME_UPSTREAM_SOURCES); used when no pair below is given")
    src.add_argument("--slime-git", help="slime git dir (bare or not); the pinned commit is extracted")
    src.add_argument("--megatron-git", help="Megatron-LM git dir; the pinned commit is extracted and patched")
    src.add_argument("--slime-dir", type=Path, help="a slime tree at the pinned commit")
    src.add_argument("--megatron-dir", type=Path, help="a Megatron-LM tree at the pinned commit, already patched")
    ap.add_argument("--python", default=sys.executable, help="interpreter with the stack (default: this one)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write (default %(default)s)")
    ap.add_argument("--check", type=Path, metavar="FILE", help="compare with FILE instead of writing")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="slime-schema-") as tmp:
        if args.slime_git and args.megatron_git:
            slime, megatron = prepare_from_git(args.slime_git, args.megatron_git, Path(tmp))
        elif args.slime_dir and args.megatron_dir:
            slime, megatron = args.slime_dir.resolve(), args.megatron_dir.resolve()
        elif args.sources:
            try:
                slime, megatron = prepare_from_archives(args.sources, Path(tmp))
            except FileNotFoundError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
        else:
            ap.error("give --sources (or set SLIME_UPSTREAM_SOURCES), --slime-git and --megatron-git, or --slime-dir "
                     "and --megatron-dir")
        schema = build_schema(args.python, slime, megatron)
    if args.check:
        return compare(args.check, schema)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(dumps(schema))
    print(f"wrote {args.out}: " + ", ".join(f"{k} {len(b['options'])} options" for k, b in schema["backends"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
