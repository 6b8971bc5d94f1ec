"""Input checks and conversions shared by the per-feature analyses (private)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from saekit import _boundary
from saekit.errors import CompatibilityError, SaekitError
from saekit.model import Model
from saekit.sae.base import SAE

#: A context: a text, or its token ids (list or 1-d tensor, BOS included if wanted).
Context = str | Sequence[int] | Tensor


def checked_site(model: Model, sae: SAE, name: str | None = None) -> str:
    """The SAE's site, checked to be a site of ``model`` whose width is ``sae.d_in``.

    Args:
        model: The model the SAE is used with.
        sae: The SAE.
        name: What the caller calls the SAE, for the error messages.

    Example:
        >>> checked_site(model, sae, "l15")  # doctest: +SKIP
        'resid_post.15'
    """
    who = f"SAE {name!r}" if name is not None else "This SAE"
    site = sae.cfg.site
    if not site:
        raise CompatibilityError(
            f"{who} does not say which site it reads (sae.cfg.site is empty). Set it, e.g. "
            "sae.cfg = sae.cfg.replace(site='resid_post.15')."
        )
    width = model.site_width(site)  # raises SiteError for unknown sites
    if width != sae.d_in:
        raise CompatibilityError(
            f"{who} expects d_in={sae.d_in} but site {site!r} of model {model.name!r} has width "
            f"{width}. Use an SAE trained on this model and site, or fix sae.cfg.site."
        )
    return site


def sae_site(model: Model, sae: SAE) -> str:
    """The SAE's site, checked against the model (known site, matching width, same device)."""
    site = checked_site(model, sae)
    if sae.device != model.device:
        raise CompatibilityError(
            f"The SAE is on {sae.device} but the model on {model.device}. Move it first: "
            "sae = sae.to(model.device)."
        )
    return site


def feature_ids(sae: SAE, features: object) -> list[int]:
    """Feature indices as a list of ints, each checked to be in ``0..d_sae-1``.

    Ints, numpy integers and :class:`~saekit.ids.FeatureRef` are accepted (one or a
    list); strings, floats and bools are refused (see :mod:`saekit._boundary`).
    """
    return _boundary.feature_ids(features, sae.d_sae)


def token_ids(model: Model, context: Context, *, min_len: int = 1) -> Tensor:
    """``[T]`` token ids of a text (tokenised with BOS) or of given ids, within the model's context."""
    if isinstance(context, str):
        if not context:
            raise SaekitError("The context is an empty string. Pass a non-empty text or token ids.")
        ids = torch.tensor(model.to_tokens(context), dtype=torch.long)
    else:
        ids = _id_tensor(context)
    if ids.numel() < min_len:
        raise SaekitError(
            f"The context has {ids.numel()} tokens but this analysis needs at least {min_len}. "
            "Pass a longer text."
        )
    vocab = model.W_U.shape[1]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise SaekitError(f"Token ids must lie in 0..{vocab - 1} for this model; got {ids.tolist()[:8]}...")
    return _boundary.within_context(
        ids, model.context_length, truncate=False, what="context",
        fix="Pass a shorter text, or the last tokens of its ids (BOS first): "
            "ids = model.to_tokens(text); [ids[0], *ids[-(model.context_length - 1):]].")


def _id_tensor(context: object) -> Tensor:
    """Token ids given as a list, array or tensor of integers, as ``[T]`` (no floats, bools, texts)."""
    fix = "Pass a text (str) or token ids (a list or 1-d tensor of ints)."
    if isinstance(context, bytes | bool | float | int) or context is None:
        raise SaekitError(
            f"The context {context!r} ({type(context).__name__}) is not a text or token ids. {fix}")
    try:
        ids = torch.as_tensor(context)
    except (TypeError, ValueError, RuntimeError):
        raise SaekitError(f"The context {context!r:.80} is not a text or token ids. {fix}") from None
    if ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dtype == torch.bool:
        raise SaekitError(f"Token ids must be integers; got dtype {ids.dtype}. {fix}")
    return ids.long().flatten().cpu()


def one_token(model: Model, token: int | str) -> int:
    """A single token id from an id or from a text that is exactly one token."""
    if isinstance(token, str):
        ids = model.tokenizer(token, add_special_tokens=False)["input_ids"]
        if len(ids) != 1:
            raise SaekitError(
                f"{token!r} is {len(ids)} tokens ({model.to_strings(ids)}), not one. Pass a token id, "
                "or a string that is a single token (mind the leading space: ' Paris')."
            )
        return int(ids[0])
    return _boundary.token_id(token, model.W_U.shape[1])


def special_mask(model: Model, ids: Tensor) -> Tensor:
    """Bool mask on the CPU, same shape as ``ids``, True at the tokenizer's special tokens (BOS...)."""
    return model.special_mask(ids.cpu())
