"""Cross-flag rules that slime, sglang and Megatron assert while parsing, checked before launch.

slime's parse_args (slime/utils/arguments.py at 3d7599aa) runs
slime_validate_args, then Megatron's validate_args (Megatron backend), then
sglang's validate_args; a violated assertion kills the job after Ray is up
and the weights are half loaded. The rules below need only the flags (no
GPU, no files), so the runner checks them on the final flags at plan time.
RULES lists them; docs/overrides.md lists them and what is left to slime.
VALUE_RULES is one table of value ranges (counts >= 1, rates > 0, fractions
in range) applied to every backend alike. Pure: flags in, one-line problems out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from runner.flags import FlagSet
from runner.slime_args.schema import BackendFlags, Option, backend_flags, convert


class Values:
    """Flag values as slime will see them: given on the command line, else argparse's default."""

    def __init__(self, flags: FlagSet, schema: BackendFlags) -> None:
        self.flags, self.schema = flags, schema

    def _option(self, name: str) -> Option:
        """By spelling, else by destination (--disable-rollout-global-dataset sets rollout_global_dataset)."""
        option = self.schema.get(name) or self.schema.by_dest(name.replace("-", "_"))
        if option is None:
            raise KeyError(f"{self.schema.backend} backend has no option {name}")
        return option

    def given(self, name: str) -> bool:
        return any(self.flags.has(s.removeprefix("--")) for s in self._option(name).flags)

    def __getitem__(self, name: str):  # noqa: ANN204
        option = self._option(name)
        value = option.default
        for spelling in option.flags:
            values = self.flags.get(spelling.removeprefix("--"))
            if values is None:
                continue
            if option.action == "store_true":
                value = True
            elif option.action == "store_false":
                value = False
            elif option.action == "boolean_optional":
                value = not spelling.startswith("--no-")
            elif option.takes_several:
                value = [convert(option.type, v)[0] for v in values]
            elif values:
                value = convert(option.type, values[0])[0]
        return value


@dataclass(frozen=True)
class Rule:
    source: str  # where upstream asserts it
    text: str  # the rule, for docs
    backends: tuple[str, ...]
    check: Callable[[Values, str], str | None]


def _batch_divides(v: Values, backend: str) -> str | None:
    rbs, n, gbs, steps = (v["rollout-batch-size"], v["n-samples-per-prompt"], v["global-batch-size"],
                          v["num-steps-per-rollout"])
    if None in (rbs, n):
        return None
    if steps is not None:
        if steps <= 0:
            return None  # VALUE_RULES says so
        derived = rbs * n // steps
        if gbs is not None and gbs != derived:
            return (f"--global-batch-size {gbs} != --rollout-batch-size {rbs} x --n-samples-per-prompt {n} // "
                    f"--num-steps-per-rollout {steps} = {derived} (slime asserts it): drop one of them")
        gbs = derived
    if gbs is None or gbs <= 0:
        return None  # VALUE_RULES says so
    if (rbs * n) % gbs:
        return (f"--rollout-batch-size {rbs} x --n-samples-per-prompt {n} = {rbs * n} is not a multiple of "
                f"--global-batch-size {gbs} (slime asserts it); use a divisor of {rbs * n}")
    return None


def _over_sampling(v: Values, backend: str) -> str | None:
    osb, rbs = v["over-sampling-batch-size"], v["rollout-batch-size"]
    if osb is not None and rbs is not None and osb < rbs:
        return f"--over-sampling-batch-size {osb} must be >= --rollout-batch-size {rbs}"
    return None


def _rollouts_or_epochs(v: Values, backend: str) -> str | None:
    if v["num-epoch"] is None and v["num-rollout"] is None:
        return "slime needs --num-rollout or --num-epoch: set one (e.g. --set num-rollout=100)"
    if v["num-epoch"] is not None and v["num-rollout"] is None and not v["rollout-global-dataset"]:
        return "--num-epoch needs the global dataset: remove --disable-rollout-global-dataset or set --num-rollout"
    return None


def _requires(flag: str, needed: str, fix: str) -> Callable[[Values, str], str | None]:
    def check(v: Values, backend: str) -> str | None:
        if v[flag] and v[needed] is None:
            return f"--{flag} needs --{needed}: {fix}"
        return None
    return check


def _excludes(a: str, b: str) -> Callable[[Values, str], str | None]:
    def check(v: Values, backend: str) -> str | None:
        if v[a] and v[b]:
            return f"--{a} and --{b} cannot be used together (slime asserts it): drop one"
        return None
    return check


def _eval_data(v: Values, backend: str) -> str | None:
    data = v["eval-prompt-data"]
    if data and len(data) > 1 and len(data) % 2:
        return (f"--eval-prompt-data takes NAME PATH pairs, got {len(data)} words: "
                f"e.g. --set 'eval-prompt-data=aime /data/aime-2024.jsonl'")
    if v["eval-interval"] is not None and not data and v["eval-config"] is None:
        return "--eval-interval needs evaluation data: set --eval-prompt-data NAME PATH (or --eval-config)"
    return None


def _kl(v: Values, backend: str) -> str | None:
    if v["kl-coef"] and v["kl-loss-coef"]:
        return (f"--kl-coef {v['kl-coef']} and --kl-loss-coef {v['kl-loss-coef']}: slime allows only one of them "
                f"to be non-zero")
    return None


def _reinforce(v: Values, backend: str) -> str | None:
    if v["advantage-estimator"] in ("reinforce_plus_plus", "reinforce_plus_plus_baseline") and \
            not v["normalize-advantages"]:
        return f"--advantage-estimator {v['advantage-estimator']} needs --normalize-advantages (--set normalize-advantages)"
    return None


def _debug_modes(v: Values, backend: str) -> str | None:
    train_only = v["debug-train-only"] or v["load-debug-rollout-data"] is not None
    if v["debug-rollout-only"] and train_only:
        return "--debug-rollout-only and --debug-train-only (or --load-debug-rollout-data) exclude each other"
    return None


def _prompt_len(v: Values, backend: str) -> str | None:
    ctx, prompt = v["rollout-max-context-len"], v["rollout-max-prompt-len"]
    if ctx is not None and prompt is not None and prompt > ctx - 1:
        return (f"--rollout-max-prompt-len {prompt} must be <= --rollout-max-context-len {ctx} - 1 "
                f"(at least one generated token)")
    return None


def _sglang_dp(v: Values, backend: str) -> str | None:
    dp = v["sglang-data-parallel-size"]
    if dp is not None and dp > 1 and not v["sglang-enable-dp-attention"]:
        return f"--sglang-dp-size {dp} > 1 needs --sglang-enable-dp-attention (slime asserts it)"
    return None


def _backend(v: Values, backend: str) -> str | None:
    chosen = v["train-backend"]
    if chosen != backend:
        return (f"--train-backend {chosen}: this recipe runs the {backend} backend; pick a recipe of the other "
                f"backend with --recipe instead")
    return None


def _min_lr(v: Values, backend: str) -> str | None:
    if v["lr"] is not None and v["lr"] <= 0:
        return None  # VALUE_RULES says so
    if v["lr"] is not None and v["min-lr"] is not None and v["min-lr"] > v["lr"]:
        return f"--min-lr {v['min-lr']} is above --lr {v['lr']} (Megatron asserts min_lr <= lr)"
    return None


def _save_intervals(v: Values, backend: str) -> str | None:
    save, interval = v["save"], v["save-interval"]
    if interval is not None and save is None:
        return "--save-interval needs --save DIR (slime asserts it): set --save or --unset save-interval"
    if backend == "megatron" and save is not None:
        retain = v["save-retain-interval"]
        if interval is None:
            return f"--save {save} needs a positive --save-interval (Megatron asserts it)"
        if interval <= 0:
            return None  # VALUE_RULES says so
        if retain is not None and (retain <= 0 or retain % interval):
            return f"--save-retain-interval {retain} must be a positive multiple of --save-interval {interval}"
    return None


def _deprecated(v: Values, backend: str) -> str | None:
    for flag, instead in (("batch-size", "--micro-batch-size"), ("warmup", "--lr-warmup-fraction"),
                          ("model-parallel-size", "--tensor-model-parallel-size")):
        if v.given(flag):
            return f"--{flag} is no longer valid in Megatron (it asserts so): use {instead}"
    if v["checkpoint-activations"]:
        return ("--checkpoint-activations makes Megatron print a notice and exit: use --recompute-activations, or "
                "--recompute-granularity with --recompute-method")
    return None


def _virtual_pipeline(v: Values, backend: str) -> str | None:
    given = [f for f in ("num-layers-per-virtual-pipeline-stage", "num-virtual-stages-per-pipeline-rank",
                         "pipeline-model-parallel-layout") if v[f] is not None]
    if len(given) > 1:
        return f"{' and '.join('--' + f for f in given)}: Megatron takes at most one of them"
    return None


def _hidden_heads(v: Values, backend: str) -> str | None:
    hidden, heads = v["hidden-size"], v["num-attention-heads"]
    # Megatron asserts it only when --kv-channels is not given (it derives kv_channels from it).
    if hidden and heads and hidden % heads and v["kv-channels"] is None:
        return f"--hidden-size {hidden} is not divisible by --num-attention-heads {heads} (Megatron asserts it)"
    return None


def _layer_pattern(name: str, *, length_asserted: bool, zero_means_off: bool = False):
    """Megatron's layer patterns (int N, or a list with one entry per layer): the layer specs divide by
    N (i % N), and assert a list's length where `length_asserted`; --no-rope-freq N must divide the layers."""
    def check(v: Values, backend: str) -> str | None:
        value, layers = v[name], v["num-layers"]
        if value is None or not v.given(name):
            return None
        if isinstance(value, list):
            if length_asserted and layers and len(value) != layers:
                return (f"--{name} lists {len(value)} layers but --num-layers is {layers} (Megatron asserts the "
                        f"lengths match); give {layers} entries")
            return None
        if zero_means_off and value == 0:
            return None
        if value < 1:
            return f"--{name} {value} must be an integer >= 1 (one in every N layers) or a list of {layers} entries"
        if zero_means_off and layers and layers % value:
            return f"--{name} {value} does not divide --num-layers {layers} (Megatron asserts it)"
        return None
    return check


def _overlap_param_gather(v: Values, backend: str) -> str | None:
    if v["overlap-param-gather"] and not v["overlap-grad-reduce"]:
        return "--overlap-param-gather needs --overlap-grad-reduce (Megatron asserts it)"
    return None


def _tp_comm_overlap(v: Values, backend: str) -> str | None:
    # Megatron turns --sequence-parallel off at TP1 before this assertion.
    sp = v["sequence-parallel"] and (v["tensor-model-parallel-size"] or 1) > 1
    if v["tp-comm-overlap"] and not sp:
        return "--tp-comm-overlap needs --sequence-parallel with --tensor-model-parallel-size > 1 (Megatron asserts it)"
    return None


def _selective_recompute(v: Values, backend: str) -> str | None:
    if v["recompute-granularity"] == "selective" and v["recompute-method"] is not None:
        return "--recompute-method does not apply to --recompute-granularity selective (Megatron asserts it): drop one"
    return None


SLIME = "slime/utils/arguments.py slime_validate_args"
MEGATRON = "megatron/training/arguments.py validate_args"
BOTH = ("megatron", "fsdp")
RULES: tuple[Rule, ...] = (
    Rule(SLIME, "--train-backend is the recipe's backend", BOTH, _backend),
    Rule(SLIME, "rollout_batch_size x n_samples_per_prompt % global_batch_size == 0 (global batch derived from "
                "--num-steps-per-rollout when given, and equal to it if both are given)", BOTH, _batch_divides),
    Rule(SLIME, "over_sampling_batch_size >= rollout_batch_size", BOTH, _over_sampling),
    Rule(SLIME, "--num-rollout or --num-epoch; --num-epoch alone needs the global dataset", BOTH, _rollouts_or_epochs),
    Rule(SLIME, "--save-interval needs --save (Megatron: --save needs a positive --save-interval; "
                "--save-retain-interval a positive multiple of it)", BOTH, _save_intervals),
    Rule(SLIME, "--eval-prompt-data NAME PATH pairs; --eval-interval needs evaluation data", BOTH, _eval_data),
    Rule(SLIME, "only one of --kl-coef and --kl-loss-coef non-zero", BOTH, _kl),
    Rule(SLIME, "reinforce_plus_plus(_baseline) needs --normalize-advantages", BOTH, _reinforce),
    Rule(SLIME, "--use-rollout-logprobs excludes --use-tis", BOTH, _excludes("use-rollout-logprobs", "use-tis")),
    Rule(SLIME, "--get-mismatch-metrics needs --custom-tis-function-path", BOTH,
         _requires("get-mismatch-metrics", "custom-tis-function-path", "set the path of the TIS function")),
    Rule(SLIME, "--use-dynamic-batch-size needs --max-tokens-per-gpu", BOTH,
         _requires("use-dynamic-batch-size", "max-tokens-per-gpu", "e.g. --set max-tokens-per-gpu=8192")),
    Rule(SLIME, "--debug-rollout-only excludes --debug-train-only / --load-debug-rollout-data", BOTH, _debug_modes),
    Rule(SLIME, "--enable-mtp-training needs --mtp-num-layers", BOTH,
         _requires("enable-mtp-training", "mtp-num-layers", "e.g. --set mtp-num-layers=1")),
    Rule(SLIME, "rollout_max_prompt_len <= rollout_max_context_len - 1", BOTH, _prompt_len),
    Rule(SLIME, "--prefill-num-servers excludes --rollout-external", BOTH,
         _excludes("prefill-num-servers", "rollout-external")),
    Rule("slime/backends/sglang_utils/arguments.py validate_args",
         "sglang data parallel size > 1 needs --sglang-enable-dp-attention", BOTH, _sglang_dp),
    Rule(MEGATRON, "min_lr <= lr", ("megatron",), _min_lr),
    Rule(MEGATRON, "deprecated --batch-size, --warmup, --model-parallel-size, --checkpoint-activations",
         ("megatron",), _deprecated),
    Rule(MEGATRON, "at most one of the virtual-pipeline options", ("megatron",), _virtual_pipeline),
    Rule(MEGATRON, "hidden_size % num_attention_heads == 0 unless --kv-channels is given", ("megatron",),
         _hidden_heads),
    Rule("megatron/core/models/gpt/gpt_layer_specs.py", "--moe-layer-freq: N >= 1, or a list of --num-layers entries",
         ("megatron",), _layer_pattern("moe-layer-freq", length_asserted=True)),
    Rule("megatron/core/models/gpt/gpt_layer_specs.py",
         "--linear-attention-freq: N >= 1, or a list of --num-layers entries", ("megatron",),
         _layer_pattern("linear-attention-freq", length_asserted=True)),
    Rule("megatron/core/transformer/transformer_config.py",
         "--no-rope-freq: 0, N dividing --num-layers, or a list of --num-layers entries", ("megatron",),
         _layer_pattern("no-rope-freq", length_asserted=True, zero_means_off=True)),
    Rule("megatron/core/transformer/utils.py", "--window-attn-skip-freq: N >= 1, or a list", ("megatron",),
         _layer_pattern("window-attn-skip-freq", length_asserted=False)),
    Rule(MEGATRON, "--overlap-param-gather needs --overlap-grad-reduce", ("megatron",), _overlap_param_gather),
    Rule(MEGATRON, "--tp-comm-overlap needs sequence parallelism (TP > 1)", ("megatron",), _tp_comm_overlap),
    Rule(MEGATRON, "selective recompute takes no --recompute-method", ("megatron",), _selective_recompute),
)


@dataclass(frozen=True)
class ValueRule:
    """A flag's value must lie in a range, on every backend (argparse takes any int or float; a count of
    0 or a negative rate runs, then divides by zero, loops over nothing or trains backwards)."""

    flag: str
    low: float
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False
    what: str = ""

    def problem(self, value) -> str | None:  # noqa: ANN001
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        below = value <= self.low if self.low_open else value < self.low
        above = self.high is not None and (value >= self.high if self.high_open else value > self.high)
        if not (below or above):
            return None
        if self.high is None:
            bound = f"> {self.low:g}" if self.low_open else f">= {self.low:g}"
        else:
            bound = (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                     f"{')' if self.high_open else ']'}")
        return f"--{self.flag} {value:g} must be {bound} ({self.what})"


# One table, for every backend and recipe (a flag a backend lacks is skipped).
VALUE_RULES: tuple[ValueRule, ...] = (
    ValueRule("micro-batch-size", 1, what="samples per micro-batch"),
    ValueRule("global-batch-size", 1, what="samples per optimizer step"),
    ValueRule("rollout-batch-size", 1, what="prompts per rollout"),
    ValueRule("n-samples-per-prompt", 1, what="responses per prompt"),
    ValueRule("over-sampling-batch-size", 1, what="prompts sampled per rollout"),
    ValueRule("num-steps-per-rollout", 1, what="optimizer steps per rollout"),
    ValueRule("num-rollout", 1, what="rollouts to run"),
    ValueRule("num-epoch", 1, what="passes over the dataset"),
    ValueRule("save-interval", 1, what="rollouts between checkpoints; slime computes rollout % interval"),
    ValueRule("eval-interval", 1, what="rollouts between evaluations; slime computes rollout % interval"),
    ValueRule("n-samples-per-eval-prompt", 1, what="responses per evaluation prompt"),
    ValueRule("rollout-max-response-len", 1, what="tokens"),
    ValueRule("eval-max-response-len", 1, what="tokens"),
    ValueRule("max-tokens-per-gpu", 1, what="tokens per GPU in a dynamic batch"),
    ValueRule("log-probs-max-tokens-per-gpu", 1, what="tokens per GPU"),
    ValueRule("lr", 0, low_open=True, what="the learning rate; 0 or below trains nothing, or backwards"),
    ValueRule("min-lr", 0, what="the learning rate's floor"),
    ValueRule("weight-decay", 0, what="a decay coefficient"),
    ValueRule("clip-grad", 0, what="a gradient-norm bound; 0 turns clipping off"),
    ValueRule("rollout-temperature", 0, what="a sampling temperature"),
    ValueRule("rollout-top-p", 0, 1, low_open=True, what="a probability mass"),
    ValueRule("eval-top-p", 0, 1, low_open=True, what="a probability mass"),
    ValueRule("sglang-mem-fraction-static", 0, 1, low_open=True, high_open=True,
              what="the fraction of GPU memory sglang takes"),
)


def value_problems(values: Values) -> list[str]:
    problems = []
    for rule in VALUE_RULES:
        try:
            problem = rule.problem(values[rule.flag])
        except KeyError:  # this backend has no such flag
            continue
        except TypeError:  # a value the schema check already refused
            continue
        if problem:
            problems.append(problem)
    return problems


def cross_flag_problems(flags: FlagSet, backend: str) -> list[str]:
    """VALUE_RULES, then every rule of RULES for `backend` that the final flags break, as one-line problems."""
    values = Values(flags, backend_flags(backend))
    problems = value_problems(values)
    for rule in RULES:
        if backend in rule.backends:
            try:
                problem = rule.check(values, backend)
            except TypeError:
                # A value the schema check already refused (left in by a caller that did not check).
                continue
            if problem:
                problems.append(problem)
    return problems
