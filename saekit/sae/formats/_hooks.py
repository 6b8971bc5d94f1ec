"""Loose translation between saekit site names and other libraries' hook names.

saekit sites: ``resid_pre.L``, ``resid_post.L``, ``mlp_out.L``, ``attn_out.L``,
``mlp_neurons.L``. TransformerLens hooks (SAELens): ``blocks.L.hook_resid_post`` etc.
Hugging Face module paths (sparsify, Gemma Scope 2): ``layers.L``, ``layers.L.mlp`` ...
A name that does not translate gives ``""``; callers keep the original name in the
SAE's ``cfg.training`` so nothing is lost.
"""

from __future__ import annotations

import re

# saekit site kind -> TransformerLens hook suffix
_TL_SUFFIX = {
    "resid_pre": "hook_resid_pre",
    "resid_post": "hook_resid_post",
    "mlp_out": "hook_mlp_out",
    "attn_out": "hook_attn_out",
    "mlp_neurons": "mlp.hook_post",
}
_TL_TO_KIND = {v: k for k, v in _TL_SUFFIX.items()}
_TL_RE = re.compile(r"^blocks\.(\d+)\.(.+)$")
_SITE_RE = re.compile(r"^([a-z_]+)\.(\d+)$")

# Hugging Face module paths (what sparsify's hookpoints name); the module's *output*.
_HF_RE = re.compile(r"^(?:model\.|transformer\.|gpt_neox\.)?(?:layers|h|layer)\.(\d+)(.*)$")
_HF_TAIL_TO_KIND = {
    "": "resid_post",
    ".mlp": "mlp_out",
    ".self_attn": "attn_out",
    ".attn": "attn_out",
    ".attention": "attn_out",
    ".output": "resid_post",
}


def site_to_hook(site: str) -> str:
    """``"resid_post.15"`` -> ``"blocks.15.hook_resid_post"``; ``""`` if untranslatable."""
    m = _SITE_RE.match(site)
    if m is None or m.group(1) not in _TL_SUFFIX:
        return ""
    return f"blocks.{m.group(2)}.{_TL_SUFFIX[m.group(1)]}"


def hook_to_site(hook: str) -> str:
    """``"blocks.15.hook_resid_post"`` -> ``"resid_post.15"``; ``""`` if untranslatable."""
    m = _TL_RE.match(hook or "")
    if m is None or m.group(2) not in _TL_TO_KIND:
        return ""
    return f"{_TL_TO_KIND[m.group(2)]}.{m.group(1)}"


def module_to_site(path: str) -> str:
    """HF module path (``"layers.6"``, ``"model.layers.6.mlp"``) -> saekit site, or ``""``."""
    m = _HF_RE.match(path or "")
    if m is None or m.group(2) not in _HF_TAIL_TO_KIND:
        return ""
    return f"{_HF_TAIL_TO_KIND[m.group(2)]}.{m.group(1)}"


def submodule_to_site(name: str) -> str:
    """dictionary_learning's ``"resid_post_layer_3"`` -> ``"resid_post.3"``, or ``""``."""
    m = re.match(r"^(resid_pre|resid_post|mlp_out|attn_out|mlp_neurons)_layer_(\d+)$", name or "")
    return f"{m.group(1)}.{m.group(2)}" if m else ""
