"""The typed shape of a training recipe.

A recipe is data: where its flags come from (slime script and commit), how
GPUs are laid out, how the model is parallelised, and the remaining slime
flags grouped as in the script. runner.slime_args.render turns it into train.py argv.
Values may contain the literal "${BASE_FOLDER}", exactly as slime's scripts
write them; the renderer substitutes the resolved folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runner.flags import Flag, FlagSet, flag

SLIME_REPO = "THUDM/slime"
# The slime commit whose scripts these recipes reproduce (FACTS.md: on main,
# same code as the seed doc's 60b1e4a35).
SLIME_COMMIT = "3d7599aa4d3a9b9114e4b68724b2591620684d50"


@dataclass(frozen=True)
class ScriptSource:
    file: str
    commit: str = SLIME_COMMIT
    repo: str = SLIME_REPO

    def __str__(self) -> str:
        return f"{self.repo}@{self.commit[:9]}:{self.file}"


@dataclass(frozen=True)
class Layout:
    """How a recipe uses nodes and GPUs (slime's --actor-* / --rollout-* / --colocate)."""

    nodes: int
    gpus_per_node: int
    actor_nodes: int
    actor_gpus_per_node: int
    # GPUs dedicated to sglang rollout; 0 when colocated with training.
    rollout_gpus: int
    gpus_per_engine: int
    colocate: bool = False

    @property
    def total_gpus(self) -> int:
        return self.nodes * self.gpus_per_node

    @property
    def training_gpus(self) -> int:
        return self.actor_nodes * self.actor_gpus_per_node

    @property
    def rollout_gpu_count(self) -> int:
        """GPUs that serve rollout: the dedicated ones, or all training GPUs when colocated."""
        return self.training_gpus if self.colocate else self.rollout_gpus

    def flags(self) -> list[Flag]:
        out = [flag("actor-num-nodes", self.actor_nodes), flag("actor-num-gpus-per-node", self.actor_gpus_per_node)]
        if self.colocate:
            out.append(flag("colocate"))
        out.append(flag("rollout-num-gpus-per-engine", self.gpus_per_engine))
        if not self.colocate:
            out.append(flag("rollout-num-gpus", self.rollout_gpus))
        return out

    @classmethod
    def from_flags(cls, flags: FlagSet, nodes: int, gpus_per_node: int) -> "Layout":
        colocate = flags.has("colocate")
        actor_nodes = flags.int("actor-num-nodes", 1)
        actor_gpus = flags.int("actor-num-gpus-per-node", 8)
        return cls(
            nodes=nodes,
            gpus_per_node=gpus_per_node,
            actor_nodes=actor_nodes,
            actor_gpus_per_node=actor_gpus,
            rollout_gpus=0 if colocate else flags.int("rollout-num-gpus", 0),
            gpus_per_engine=flags.int("rollout-num-gpus-per-engine", 1),
            colocate=colocate,
        )


@dataclass(frozen=True)
class Parallelism:
    """Megatron model parallelism of the training actor."""

    tp: int = 1
    pp: int = 1
    cp: int = 1
    ep: int = 1
    etp: int = 1
    sequence_parallel: bool = False

    def flags(self) -> list[Flag]:
        out = [flag("tensor-model-parallel-size", self.tp)]
        if self.sequence_parallel:
            out.append(flag("sequence-parallel"))
        out += [
            flag("pipeline-model-parallel-size", self.pp),
            flag("context-parallel-size", self.cp),
            flag("expert-model-parallel-size", self.ep),
            flag("expert-tensor-parallel-size", self.etp),
        ]
        return out

    @classmethod
    def from_flags(cls, flags: FlagSet) -> "Parallelism":
        return cls(
            tp=flags.int("tensor-model-parallel-size", 1),
            pp=flags.int("pipeline-model-parallel-size", 1),
            cp=flags.int("context-parallel-size", 1),
            ep=flags.int("expert-model-parallel-size", 1),
            etp=flags.int("expert-tensor-parallel-size", 1),
            sequence_parallel=flags.has("sequence-parallel"),
        )

    @property
    def model_parallel(self) -> int:
        return self.tp * self.pp * self.cp


@dataclass(frozen=True)
class TrainingShape:
    """The layout and model parallelism that the rendered flags describe.

    Derived once per planning trip and passed down, so every estimate sees
    the same reading of the flags.
    """

    layout: Layout
    parallel: Parallelism

    @classmethod
    def from_flags(cls, flags: FlagSet, *, backend: str, nodes: int, gpus_per_node: int) -> "TrainingShape":
        """Raises ValueError (naming the flag) when a size is not a number."""
        layout = Layout.from_flags(flags, nodes=nodes, gpus_per_node=gpus_per_node)
        # FSDP has no Megatron model parallelism: its flags are not read.
        parallel = Parallelism.from_flags(flags) if backend == "megatron" else Parallelism()
        return cls(layout, parallel)


@dataclass(frozen=True)
class FlagGroup:
    """A named group of flags, named after the script's bash array."""

    name: str
    flags: tuple[Flag, ...]


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    source: ScriptSource
    backend: str  # "megatron" or "fsdp"
    layout: Layout
    # None for FSDP, which has no Megatron model parallelism.
    parallel: Parallelism | None
    # The model's Megatron architecture flags (MODEL_ARGS); slime's FSDP script
    # never sources the model file, so FSDP passes none.
    with_model_args: bool
    groups: tuple[FlagGroup, ...]
    # Directories inside the slime checkout added to the job's PYTHONPATH
    # after Megatron-LM and slime itself (the FSDP script adds scripts/).
    pythonpath_in_slime: tuple[str, ...] = ()
    # "faithful": reproduces the source script flag for flag.
    # "derived": our own layout, not yet run at full scale.
    status: str = "faithful"
    # For a derived recipe: the faithful recipe whose flags it changes (tests
    # pin the exact difference; `train` names it when the original does not fit).
    derived_from: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
