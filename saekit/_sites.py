"""Site names resolved from a model's module structure.

A site is ``"<kind>.<layer>"`` with kind one of :data:`SITE_KINDS`. The decoder stack
is found as the ``ModuleList`` holding most of the parameters; in each layer the
attention and MLP blocks are the children whose names say so; the MLP's
down-projection is its last weight-bearing submodule. No table of model names.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from saekit.errors import SiteError

#: Site kinds in the order the forward pass reaches them inside a layer.
SITE_KINDS: tuple[str, ...] = ("resid_pre", "attn_out", "mlp_neurons", "mlp_out", "resid_post")
_ATTN_WORDS = ("attn", "attention")
_MLP_WORDS = ("mlp", "feed_forward", "ffn")


@dataclass(frozen=True, order=True)
class Site:
    """A parsed site: layer index and kind. Orders by forward-pass position."""

    layer: int
    rank: int
    kind: str

    @property
    def name(self) -> str:
        return f"{self.kind}.{self.layer}"


@dataclass(frozen=True)
class Structure:
    """Module paths of the parts saekit reads, dotted from the HF model's root."""

    layers: str  # "model.layers"
    n_layers: int
    attn: str  # child name inside a layer, e.g. "self_attn"
    mlp: str  # "mlp"
    down: str  # path inside the MLP, e.g. "down_proj"
    d_model: int
    d_mlp: int
    final_norm: str  # e.g. "model.norm"; "" when the model has none

    def layer_path(self, i: int) -> str:
        return f"{self.layers}.{i}"

    def module_path(self, site: Site) -> str:
        """Path of the module whose input/output is the site."""
        base = self.layer_path(site.layer)
        return {
            "resid_pre": base,
            "resid_post": base,
            "attn_out": f"{base}.{self.attn}",
            "mlp_out": f"{base}.{self.mlp}",
            "mlp_neurons": f"{base}.{self.mlp}.{self.down}",
        }[site.kind]

    def width(self, site: Site) -> int:
        return self.d_mlp if site.kind == "mlp_neurons" else self.d_model

    def site_names(self) -> list[str]:
        return [f"{k}.{i}" for i in range(self.n_layers) for k in SITE_KINDS]

    def parse(self, name: str) -> Site:
        """Parse and validate ``"resid_post.3"``; raises :class:`SiteError` listing valid sites."""
        kind, _, layer = str(name).rpartition(".")
        if kind not in SITE_KINDS or not layer.lstrip("-").isdigit():
            raise SiteError(
                f"Unknown site {name!r}. Sites are '<kind>.<layer>' with kind in "
                f"{list(SITE_KINDS)} and layer 0..{self.n_layers - 1}, e.g. "
                f"'resid_post.{self.n_layers // 2}'. See model.sites() for the full list."
            )
        i = int(layer)
        if not 0 <= i < self.n_layers:
            raise SiteError(
                f"Layer {i} in site {name!r} is out of range: this model has "
                f"{self.n_layers} layers (0..{self.n_layers - 1}). Use e.g. "
                f"'{kind}.{self.n_layers - 1}'."
            )
        return Site(i, SITE_KINDS.index(kind), kind)


def find_structure(model: nn.Module) -> Structure:
    """Locate the decoder stack, attention, MLP and down-projection of ``model``."""
    layers_path, stack = _decoder_stack(model)
    layer = stack[0]
    attn = _child_named(layer, _ATTN_WORDS, "attention")
    mlp = _child_named(layer, _MLP_WORDS, "MLP")
    down, weight = _down_projection(getattr(layer, mlp))
    d_model, d_mlp = _down_widths(weight, layer)
    norm = _final_norm(model, layers_path, d_model)
    return Structure(layers_path, len(stack), attn, mlp, down, d_model, d_mlp, norm)


def _final_norm(model: nn.Module, layers_path: str, d_model: int) -> str:
    """The norm registered after the decoder stack in the same parent (ln_f, norm...)."""
    parent_path, _, stack_name = layers_path.rpartition(".")
    parent = model.get_submodule(parent_path)
    names = [n for n, _ in parent.named_children()]
    for name in names[names.index(stack_name) + 1 :]:
        w = getattr(parent.get_submodule(name), "weight", None)
        if isinstance(w, nn.Parameter) and w.ndim == 1 and w.shape[0] == d_model:
            return f"{parent_path}.{name}" if parent_path else name
    return ""


def _decoder_stack(model: nn.Module) -> tuple[str, nn.ModuleList]:
    best: tuple[int, str, nn.ModuleList] | None = None
    for path, mod in model.named_modules():
        if not isinstance(mod, nn.ModuleList) or len(mod) == 0:
            continue
        if len({type(m) for m in mod}) != 1:
            continue
        n = sum(p.numel() for p in mod.parameters())
        if best is None or n > best[0]:
            best = (n, path, mod)
    if best is None:
        raise SiteError(
            f"Found no stack of decoder layers in {type(model).__name__}: saekit expects a "
            "decoder-only transformer with an nn.ModuleList of identical layers (as in Llama, "
            "GPT-2, GPT-NeoX). Pass such a model, or an nnsight model wrapping one."
        )
    return best[1], best[2]


def _child_named(layer: nn.Module, words: tuple[str, ...], what: str) -> str:
    names = [
        n
        for n, m in layer.named_children()
        if any(w in n.lower() for w in words) and any(p.ndim >= 2 for p in m.parameters())
    ]
    if len(names) != 1:
        children = [n for n, _ in layer.named_children()]
        raise SiteError(
            f"Could not find the {what} block of decoder layer {type(layer).__name__}: "
            f"expected exactly one child named like {list(words)}, found {names} among "
            f"children {children}. saekit supports Llama/Mistral/Qwen/Gemma, GPT-2 and "
            "GPT-NeoX-style layers."
        )
    return names[0]


def _down_projection(mlp: nn.Module) -> tuple[str, nn.Parameter]:
    found = [
        (n, m.weight)
        for n, m in mlp.named_modules()
        if n and isinstance(getattr(m, "weight", None), nn.Parameter) and m.weight.ndim == 2
    ]
    if not found:
        raise SiteError(
            f"The MLP {type(mlp).__name__} has no linear layers, so 'mlp_neurons' cannot be "
            "located. Expected an MLP ending in a down-projection (down_proj, c_proj, ...)."
        )
    return found[-1]


def _down_widths(weight: nn.Parameter, layer: nn.Module) -> tuple[int, int]:
    """(d_model, d_mlp) from the down-projection's weight, whichever way it is stored."""
    weights = [getattr(m, "weight", None) for _, m in layer.named_children()]
    norms = [w.shape[0] for w in weights if isinstance(w, nn.Parameter) and w.ndim == 1]
    a, b = weight.shape
    d_model = a if a in norms else b
    return d_model, (b if d_model == a else a)
