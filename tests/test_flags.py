import pytest

from runner.flags import Flag, FlagSet


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


def test_single_value_starting_with_a_dash_is_rendered_with_equals():
    # argparse would read a separate "-1e-6" as an option ("expected one argument").
    assert Flag("lr", ("-1e-6",)).argv() == ["--lr=-1e-6"]
    assert FlagSet.parse(Flag("lr", ("-1e-6",)).argv()).get("lr") == ("-1e-6",)
    assert Flag("x", ("-1", "2")).argv() == ["--x", "-1", "2"]


def test_typed_getters_name_the_flag():
    fs = FlagSet.parse(["--pipeline-model-parallel-size", "six"])
    with pytest.raises(ValueError, match="--pipeline-model-parallel-size must be an integer"):
        fs.int("pipeline-model-parallel-size", 1)
