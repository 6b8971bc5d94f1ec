"""Steering: generate with chosen SAE features clamped, scaled or added.

Clamp semantics (the SAE's error term is always kept, so only the chosen features
change; the edit applies at every position of the prompt and at every generated
step, with the KV cache):

- ``mode="clamp"``: feature ``f``'s code is *set* to ``value`` at every position,
  whether it was active or not. The residual changes by ``(value - code) * W_dec[f]``.
- ``mode="scale"``: the code is multiplied by ``value``; this acts only where the
  feature already fires (``0 * k = 0``). ``value=0`` is an ablation.
- ``mode="add"``: ``value * W_dec[f]`` is added at every position (the code plus
  ``value``, with no ReLU / top-k applied afterwards).

Baseline and steered text come from two :meth:`Model.generate` calls with the same
``seed``, so with sampling they draw the same random numbers and differ only
through the edit. With ``do_sample=False`` (greedy) the baseline equals plain
``model.generate(prompts)``.

Example:
    >>> r = saekit.analysis.steer(model, sae, ["I think that"], {123: 10.0})
    >>> r.frame[["baseline", "steered"]]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from saekit import _boundary
from saekit._tokens import check_texts
from saekit.analysis._checks import sae_site
from saekit.analysis.results import SteeringResult
from saekit.errors import SaekitError
from saekit.ids import sae_name
from saekit.model import Edit, Model
from saekit.sae.base import SAE
from saekit.splice import sae_edit

#: The one steering-mode vocabulary (the keywords of ``saekit.splice.sae_edit``), used by
#: :func:`steer`, :func:`steering_edit`, ``explore.steering`` and the Steering view.
MODES = ("clamp", "scale", "add")
COLUMNS = ["prompt", "baseline", "steered", "changed"]


def steering_edit(sae: SAE, features: Mapping[int, float], mode: str = "clamp") -> Edit:
    """The edit :func:`steer` applies at the SAE's site (see the module docstring).

    Example:
        >>> model.generate("Hi", edits={sae.cfg.site: steering_edit(sae, {3: 8.0})})
    """
    if mode not in MODES:
        raise SaekitError(f"mode must be one of {MODES}, got {mode!r}.")
    if not features:
        raise SaekitError("No features to steer. Pass features={feature: value}, e.g. {123: 10.0}.")
    values = _boundary.feature_values(features, f"Steering ({mode})", sae.d_sae)
    if mode == "clamp":
        return sae_edit(sae, clamp=values)
    return sae_edit(sae, scale=values) if mode == "scale" else sae_edit(sae, add=values)


def steer(
    model: Model,
    sae: SAE,
    prompts: str | Sequence[str],
    features: Mapping[int, float],
    *,
    mode: str = "clamp",
    max_new_tokens: int = 32,
    do_sample: bool = False,
    seed: int = 0,
    temperature: float = 1.0,
    top_p: float = 1.0,
) -> SteeringResult:
    """Baseline and steered continuations of each prompt.

    Args:
        model: the model.
        sae: the SAE whose features steer, at ``sae.cfg.site``.
        prompts: one prompt or a batch (generated together, left-padded).
        features: feature -> value (the clamp value, the scale factor, or the amount
            added, by ``mode``); values must be finite.
        mode: ``"clamp"``, ``"scale"`` or ``"add"`` (semantics in the module docstring).
        max_new_tokens: tokens generated per prompt.
        do_sample: sample instead of greedy decoding (seeded: same draws for both runs).
        seed: random seed shared by the baseline and the steered run.
        temperature, top_p: sampling settings (with ``do_sample=True``).

    Returns:
        A :class:`~saekit.analysis.results.SteeringResult`: its ``frame`` is ``prompt,
        baseline, steered, changed`` (one row per prompt); ``values``, ``mode``, ``site``,
        ``seed``... are its fields.

    Example:
        >>> steer(model, sae, ["The weather is", "My dog"], {123: 8.0}, mode="clamp")
    """
    site = sae_site(model, sae)
    prompts = check_texts(prompts)
    edit = steering_edit(sae, features, mode)
    features = _boundary.feature_values(features, f"Steering ({mode})", sae.d_sae)
    kw = dict(max_new_tokens=max_new_tokens, do_sample=do_sample, seed=seed,
              temperature=temperature, top_p=top_p)
    baseline = model.generate(prompts, **kw)  # type: ignore[arg-type]
    steered = model.generate(prompts, edits={site: edit}, **kw)  # type: ignore[arg-type]
    df = pd.DataFrame({"prompt": prompts, "baseline": baseline, "steered": steered,
                       "changed": [a != b for a, b in zip(baseline, steered, strict=True)]}, columns=COLUMNS)
    values = {int(f): float(v) for f, v in features.items()}
    return SteeringResult(df, sae_name(sae), mode, values, site, seed, do_sample, max_new_tokens)
