"""Directions in the residual stream: decoder rows and MLP neuron outputs (private)."""

from __future__ import annotations

import torch
from torch import Tensor

from saekit.model import Model
from saekit.sae.base import SAE


def down_projection(model: Model, layer: int) -> torch.nn.Module:
    """The MLP down-projection module of ``layer`` (reads ``mlp_neurons.layer``)."""
    s = model.structure
    return model.hf.get_submodule(f"{s.layer_path(layer)}.{s.mlp}.{s.down}")


@torch.no_grad()
def through_down(model: Model, layer: int, x: Tensor) -> Tensor:
    """Linear part of the down-projection: ``[n, d_mlp] -> [n, d_model]`` (bias removed).

    Calls the module itself, so it is right whichever way its weight is stored.
    """
    down = down_projection(model, layer)
    x = x.to(model.device, model.dtype)
    return (down(x) - down(torch.zeros_like(x[:1]))).float()


def neuron_directions(model: Model, layer: int) -> Tensor:
    """``[d_mlp, d_model]``: what each MLP neuron of ``layer`` writes per unit activation."""
    eye = torch.eye(model.structure.d_mlp)
    return through_down(model, layer, eye).cpu()


def residual_directions(model: Model, sae: SAE, features: list[int]) -> Tensor:
    """``[n, d_model]`` decoder rows, mapped to the residual stream for ``mlp_neurons`` SAEs."""
    dirs = sae.W_dec.detach()[features]
    site = model.site(sae.cfg.site)
    if site.kind == "mlp_neurons":
        return through_down(model, site.layer, dirs).cpu()
    return dirs.float().cpu()
