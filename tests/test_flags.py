import pytest

from runner.flags import Flag, FlagSet, parse_set_option


def test_last_flag_wins_like_argparse():
    fs = FlagSet.parse(["--a", "1", "--sw", "--a", "2", "--multi", "x", "y"])
    assert fs.get("a") == ("2",)
    assert fs.get("sw") == ()
    assert fs.get("multi") == ("x", "y")
    assert fs.argv() == ["--a", "2", "--sw", "--multi", "x", "y"]


def test_equals_form_and_order_insensitive_equality():
    assert FlagSet.parse(["--lr=1e-6", "--x"]) == FlagSet.parse(["--x", "--lr", "1e-6"])
    assert FlagSet.parse(["--lr", "1e-6"]) != FlagSet.parse(["--lr", "2e-6"])


def test_value_without_flag_is_rejected():
    with pytest.raises(ValueError, match="does not follow a --flag"):
        FlagSet.parse(["oops", "--a"])


def test_set_option_parsing():
    assert parse_set_option("lr=2e-6") == Flag("lr", ("2e-6",))
    assert parse_set_option("--sglang-cuda-graph-bs=1 2 4") == Flag("sglang-cuda-graph-bs", ("1", "2", "4"))
    assert parse_set_option("use-wandb") == Flag("use-wandb")
    with pytest.raises(ValueError):
        parse_set_option("lr=")
    with pytest.raises(ValueError):
        parse_set_option("=3")


def test_typed_getters_name_the_flag():
    fs = FlagSet.parse(["--pipeline-model-parallel-size", "six"])
    with pytest.raises(ValueError, match="--pipeline-model-parallel-size must be an integer"):
        fs.int("pipeline-model-parallel-size", 1)
