"""The recipe registry: name -> Recipe."""

from __future__ import annotations

from runner.recipes.base import Recipe
from runner.recipes.fsdp import RECIPE as FSDP
from runner.recipes.fsdp_80gb import RECIPE as FSDP_80GB
from runner.recipes.fsdp_h200 import RECIPE as FSDP_H200
from runner.recipes.megatron_8gpu import RECIPE as MEGATRON_8GPU
from runner.recipes.megatron_8gpu_80gb import RECIPE as MEGATRON_8GPU_80GB
from runner.recipes.megatron_multinode import RECIPE as MEGATRON_MULTINODE

RECIPES: dict[str, Recipe] = {r.name: r for r in (MEGATRON_8GPU, MEGATRON_8GPU_80GB, MEGATRON_MULTINODE, FSDP,
                                                  FSDP_H200, FSDP_80GB)}


def get_recipe(name: str) -> Recipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise KeyError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPES)}") from None
