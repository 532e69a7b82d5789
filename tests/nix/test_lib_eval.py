"""nix/lib.nix (builtins only) evaluated by real Nix."""

import pytest

from nixtools import NIX_DIR, PINS, REPO, nix_eval

LIB = f"(import {NIX_DIR / 'lib.nix'})"


def test_pins_read_by_nix_equal_json():
    assert nix_eval(f"{LIB}.pins") == PINS


def test_gencode_flags_are_exactly_the_pinned_capabilities():
    flags = nix_eval(f"with {LIB}; gencodeFlags pins.cuda.capabilities")
    assert flags == [
        "-gencode", "arch=compute_90,code=sm_90",
        "-gencode", "arch=compute_100,code=sm_100",
        "-gencode", "arch=compute_100,code=compute_100",
    ]  # fmt: skip


def test_gencode_python_list_is_a_python_literal():
    import ast

    text = nix_eval(f"with {LIB}; gencodePythonList pins.cuda.capabilities")
    assert ast.literal_eval(text) == nix_eval(f"with {LIB}; gencodeFlags pins.cuda.capabilities")


def test_arch_lists():
    assert nix_eval(f'{LIB}.torchArchList [ "9.0" "10.0" ]') == "9.0;10.0"
    assert nix_eval(f'{LIB}.digitArchList [ "9.0" "10.0" ]') == "90;100"


def test_cuda_packages_attr_follows_the_pin():
    assert nix_eval(f"with {LIB}; cudaPackagesAttr pins.cuda.version") == "cudaPackages_12_8"
    assert PINS["cuda"]["nixpkgs_attr"] == "cudaPackages_12_8"


def test_unfree_only_for_cuda_licences():
    f = f"{LIB}.allowUnfreeCuda"
    assert nix_eval(f'{f} {{ meta.license = {{ shortName = "CUDA EULA"; free = false; }}; }}')
    assert nix_eval(
        f'{f} {{ meta.license = [ {{ shortName = "cuDNN EULA"; free = false; }} {{ shortName = "mit"; free = true; }} ]; }}'
    )
    assert not nix_eval(f'{f} {{ meta.license = {{ shortName = "unfree"; free = false; }}; }}')
    assert not nix_eval(f"{f} {{ meta = {{ }}; }}")


def test_nixpkgs_config():
    cfg = nix_eval(f"builtins.removeAttrs {LIB}.nixpkgsConfig [ \"allowUnfreePredicate\" ]")
    assert cfg == {"cudaSupport": True, "cudaCapabilities": ["9.0", "10.0"], "cudaForwardCompat": False}


def test_cuda_version_match():
    assert nix_eval(f'{LIB}.cudaVersionMatches "12.8" "12.8.90"')
    assert nix_eval(f'{LIB}.cudaVersionMatches "12.8" "12.8"')
    assert not nix_eval(f'{LIB}.cudaVersionMatches "12.8" "12.9.1"')


def test_apps_call_the_runner_as_the_brief_says():
    assert nix_eval(f"{LIB}.appRunnerArgs") == {
        "train-8gpu": ["train", "--recipe", "megatron-8gpu"],
        "train-8gpu-80gb": ["train", "--recipe", "megatron-8gpu-80gb"],
        "train-multinode": ["train", "--recipe", "megatron-multinode"],
        "train-fsdp": ["train", "--recipe", "fsdp"],
        "train-fsdp-h200": ["train", "--recipe", "fsdp-h200"],
        "train-fsdp-80gb": ["train", "--recipe", "fsdp-80gb"],
        "convert": ["convert"],
        "doctor": ["doctor"],
        "smoke": ["smoke"],
        "download": ["download"],
        "plan": ["plan"],
        "runner": [],  # the whole CLI: nix run .#runner -- status RUN
    }
    assert nix_eval(f"{LIB}.defaultApp") == "train-8gpu"


def test_every_app_is_a_runner_subcommand_and_recipe():
    from runner.cli import build_parser
    from runner.recipes import RECIPES

    parser = build_parser()
    for app, args in nix_eval(f"{LIB}.appRunnerArgs").items():
        if not args:  # the whole CLI: every subcommand, given after `--`
            assert app == "runner"
            continue
        parsed = parser.parse_args(args)  # exits (fails the test) on an unknown subcommand or recipe
        assert parsed.command == args[0], app
        if "--recipe" in args:
            assert args[args.index("--recipe") + 1] in RECIPES, app


def test_every_app_has_a_description():
    """`nix flake check` forces meta.description of every app: an app added to
    appRunnerArgs without an appDescriptions entry must fail here (and the
    deep evaluation fails with the app's name, tests/nix/test_deep_eval.py)."""
    descriptions = nix_eval(f"{LIB}.appDescriptions")
    assert set(descriptions) == set(nix_eval(f"{LIB}.appRunnerArgs"))
    assert all(isinstance(d, str) and d.strip() for d in descriptions.values())


@pytest.mark.parametrize("doc", ["README.md", "docs/nix.md"])
def test_every_app_is_in_the_docs_command_lists(doc):
    """A user reads the apps off these lists: an app the flake has must be named there as `nix run .#APP`."""
    text = (REPO / doc).read_text()
    missing = [app for app in nix_eval(f"{LIB}.appRunnerArgs") if f"nix run .#{app} " not in text]
    assert not missing, f"{doc} does not show: {missing}"

def test_wheel_library_table_has_a_reason_for_every_ignore():
    table = nix_eval(f"{LIB}.wheelLibraries")
    assert set(table["driver_libraries"]) == {"libcuda.so.1", "libnvidia-ml.so.1"}
    modes = {"all", "dependencies", "none"}
    for name, spec in table["wheels"].items():
        assert spec.get("nvidia_lib_dirs", "none") in modes, name
        for soname, reason in spec.get("ignore", {}).items():
            assert isinstance(reason, str) and len(reason) > 20, f"{name}: {soname} needs its reason"
