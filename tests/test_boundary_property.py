"""The id boundary, property-tested across every public analysis and view (issue #17).

One table, :data:`CALLS`, maps a name to ``lambda env, feature: ...`` (one public call
with the feature in it). For each entry, hypothesis checks that

- bad ids (text, digit strings, floats incl. NaN/inf and integral ones, bools, None,
  out-of-range and negative ints, numpy floats and bools, refs to another SAE) always
  raise :class:`~saekit.errors.SaekitError`: never another exception, never a result;
- valid ids (``int``, every numpy integer type, 0-d integer tensors and arrays, a
  :class:`~saekit.FeatureRef` naming the SAE) give the same result as the plain int.

To cover a new public function, add one line to :data:`CALLS`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from typing import Any

import _tiny
import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import saekit
from saekit import analysis, explore
from saekit.errors import SaekitError
from saekit.ids import FeatureRef, sae_name
from saekit.sae import SAEConfig, TopKSAE, init_weights
from saekit.splice import sae_edit

D_SAE = 16
SITE = "resid_post.1"
TEXT = "The cat sat on the mat."
EXAMPLES = 20
#: calls that run the model several times: fewer valid-id examples (each one is a full run)
SLOW = {"ablate_context", "ablate_context[list]", "neuron_basis", "vocab_sweep", "steer",
        "explore.logit_attribution", "explore.steering[dict]", "explore.steering[list]",
        "explore.context_ablation", "explore.highlight", "ablate_feature"}


class Env:
    """What the calls need: a tiny model, two SAEs on one site, their stats, a tree and a card.

    A plain class (not a dataclass), so that hypothesis prints it short.
    """

    def __init__(self, model: saekit.Model, sae: TopKSAE, big: TopKSAE, stats: saekit.FeatureStats,
                 tree: pd.DataFrame, card: Any) -> None:
        self.model, self.sae, self.big, self.stats, self.tree, self.card = model, sae, big, stats, tree, card

    @property
    def name(self) -> str:
        return sae_name(self.sae)

    def __repr__(self) -> str:  # hypothesis prints it with each failing example
        return f"Env({self.name})"


@pytest.fixture(scope="module")
def env(tiny_llama: saekit.Model) -> Env:
    sae = init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=D_SAE, k=4, site=SITE)), seed=0)
    big = init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=4 * D_SAE, k=4, site=SITE)), seed=1)
    named = {sae_name(sae): sae, sae_name(big): big}
    stats = saekit.feature_stats(tiny_llama, named, _tiny.CORPUS, k=4, context=(5, 2), progress=False)
    tree = analysis.match_features(named)
    card = explore.feature_card(stats, sae, 0)
    return Env(tiny_llama, sae, big, stats, tree, card)


def _steering(e: Env, features: Any) -> Any:
    view = explore.steering(e.model, e.sae, features, "The cat", max_new_tokens=2)
    assert view.wait(60)
    return view


#: name -> one public call with ``f`` as its feature id. Extend here.
CALLS: dict[str, Callable[[Env, Any], Any]] = {
    # analyses
    "ablate_context": lambda e, f: analysis.ablate_context(e.model, e.sae, TEXT, f, progress=False),
    "ablate_context[list]": lambda e, f: analysis.ablate_context(e.model, e.sae, TEXT, [f], progress=False),
    "ablate_feature": lambda e, f: analysis.ablate_feature(e.model, e.sae, TEXT, f),
    "logit_effects": lambda e, f: analysis.logit_effects(e.model, e.sae, f, k=3),
    "logit_effects[list]": lambda e, f: analysis.logit_effects(e.model, e.sae, [1, f], k=3),
    "neuron_basis": lambda e, f: analysis.neuron_basis(e.model, e.sae, f, [TEXT, _tiny.CORPUS[1]]),
    "vocab_sweep": lambda e, f: analysis.vocab_sweep(e.model, e.sae, "The cat", f, progress=False,
                                                     tokens=range(3, 64)),
    "steer": lambda e, f: analysis.steer(e.model, e.sae, "The cat", {f: 4.0}, max_new_tokens=2),
    "steering_edit": lambda e, f: analysis.steering_edit(e.sae, {f: 4.0}),
    "sae_edit(clamp)": lambda e, f: sae_edit(e.sae, clamp={f: 4.0}),
    "sae_edit(scale)": lambda e, f: sae_edit(e.sae, scale={f: 2.0}),
    "sae_edit(add)": lambda e, f: sae_edit(e.sae, add={f: 2.0}),
    "sae_edit(ablate)": lambda e, f: sae_edit(e.sae, ablate=[f]),
    "neighbours": lambda e, f: analysis.neighbours(e.sae, f, k=3),
    "top_examples": lambda e, f: analysis.top_examples(e.stats, e.name, f),
    "FeatureStats.top_examples": lambda e, f: e.stats.top_examples(e.name, f, 2),
    "FeatureStats.feature": lambda e, f: e.stats.feature(e.name, f),
    # views (saekit.explore)
    "explore.highlight": lambda e, f: explore.highlight(e.model, e.sae, [TEXT], features=[f]),
    "explore.feature_card": lambda e, f: explore.feature_card(e.stats, e.sae, f, model=e.model),
    "explore.context_ablation": lambda e, f: explore.context_ablation(e.model, e.sae, TEXT, f),
    "explore.logit_attribution": lambda e, f: explore.logit_attribution(e.model, e.sae, TEXT, f),
    "explore.steering[dict]": lambda e, f: _steering(e, {f: 3.0}),
    "explore.steering[list]": lambda e, f: _steering(e, [f]),
    "explore.splitting": lambda e, f: explore.splitting({e.name: e.sae, sae_name(e.big): e.big}, f, e.stats,
                                                        parent_sae=e.name, tree=e.tree),
    "explore.follow": lambda e, f: explore.follow(e.card, e.stats, sae=e.sae, feature=f),
}


# ----- generated ids --------------------------------------------------------------------------
BAD_IDS = st.one_of(
    st.text(max_size=4),
    st.from_regex(r"-?[0-9]{1,3}", fullmatch=True),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(0, D_SAE - 1).map(float),
    st.sampled_from([float("nan"), float("inf"), -float("inf"), np.nan, np.float32(3.0), np.float64(2.0)]),
    st.booleans(),
    st.sampled_from([np.bool_(True), np.bool_(False), torch.tensor(True), torch.tensor(2.0)]),
    st.none(),
    st.integers(min_value=D_SAE, max_value=2**62),
    st.integers(min_value=-(2**62), max_value=-1),
)
#: calls where ``None`` is the documented default ("all features", "the view's feature")
NONE_IS_DEFAULT = {"neighbours", "explore.follow"}
#: calls that know the SAE's name, so a ref to another SAE is refused too (elsewhere the
#: SAE object is all there is, and a ref's name cannot be checked against it)
KNOW_THE_NAME = {"top_examples", "FeatureStats.top_examples", "FeatureStats.feature", "explore.feature_card"}

#: how a valid id may be written: every numpy integer type, tensors, arrays, refs
KINDS: dict[str, Callable[[int, str], Any]] = {
    "int": lambda i, n: i,
    **{t.__name__: (lambda t: lambda i, n: t(i))(t) for t in  # noqa: B023 (bound by the outer lambda)
       (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)},
    "tensor": lambda i, n: torch.tensor(i),
    "FeatureRef": lambda i, n: FeatureRef(n, i),
}
VALID = st.tuples(st.sampled_from([0, 5, D_SAE - 1]), st.sampled_from(sorted(KINDS)))


def _settings(n: int = EXAMPLES) -> Callable[[Any], Any]:
    return settings(max_examples=n, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ----- comparing results ----------------------------------------------------------------------
_NOT_COMPARED = ("layout", "tabbable", "tooltip", "children", "elapsed")
X = torch.randn(2, 5, 32, generator=torch.Generator().manual_seed(0))


def _plain(value: Any) -> Any:
    """A comparable form of any result: frames, tensors, edits, dataclasses and views."""
    if isinstance(value, pd.DataFrame):
        return _plain(value.reset_index(drop=True).to_dict("list"))
    if isinstance(value, torch.Tensor):
        return _plain(value.detach().tolist())
    if isinstance(value, np.ndarray | np.generic):
        return _plain(value.tolist())
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if hasattr(value, "get_state"):  # a widget: its synced state, minus widget references
        state = value.get_state()
        return {k: _plain(v) for k, v in state.items()
                if not k.startswith("_") and k not in _NOT_COMPARED}
    if callable(value):  # an edit
        return _plain(value(X))
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


@functools.cache
def _expected(name: str, feature: int, env_id: int) -> Any:
    return _plain(CALLS[name](_ENV[env_id], feature))


_ENV: dict[int, Env] = {}


# ----- the properties -------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CALLS))
@_settings()
@given(bad=BAD_IDS)
def test_bad_ids_raise_saekit_error(env: Env, name: str, bad: Any) -> None:
    assume(not (bad is None and name in NONE_IS_DEFAULT))
    with pytest.raises(SaekitError):
        CALLS[name](env, bad)


def _check_valid(env: Env, name: str, valid: tuple[int, str]) -> None:
    feature, kind = valid
    _ENV[id(env)] = env
    got = _plain(CALLS[name](env, KINDS[kind](feature, env.name)))
    assert got == _expected(name, feature, id(env)), f"{name} with {kind}({feature})"


@pytest.mark.parametrize("name", sorted(set(CALLS) - SLOW))
@_settings(EXAMPLES)
@given(valid=VALID)
def test_valid_ids_equal_the_plain_int(env: Env, name: str, valid: tuple[int, str]) -> None:
    _check_valid(env, name, valid)


@pytest.mark.parametrize("name", sorted(SLOW))
@_settings(5)
@given(valid=VALID)
def test_valid_ids_equal_the_plain_int_slow_calls(env: Env, name: str, valid: tuple[int, str]) -> None:
    _check_valid(env, name, valid)


@pytest.mark.parametrize("name", sorted(KNOW_THE_NAME))
def test_refs_to_another_sae_refused_where_the_name_is_known(env: Env, name: str) -> None:
    with pytest.raises(SaekitError, match="another-sae"):
        CALLS[name](env, FeatureRef("another-sae", 3))


def test_every_public_analysis_is_in_the_table() -> None:
    """Public analyses taking a feature id are covered (attribute / check_attributions take none)."""
    takes_features = {"ablate_context", "ablate_feature", "logit_effects", "neuron_basis", "vocab_sweep",
                      "steer", "steering_edit", "neighbours", "top_examples"}
    assert takes_features <= {n.split("[")[0] for n in CALLS}
    assert {"highlight", "feature_card", "context_ablation", "logit_attribution", "steering", "splitting",
            "follow"} <= {n.split(".")[1].split("[")[0] for n in CALLS if n.startswith("explore.")}


# ----- the text boundary ----------------------------------------------------------------------
#: name -> one public call with ``t`` as its text (prompt, context, corpus). Extend here.
TEXT_CALLS: dict[str, Callable[[Env, Any], Any]] = {
    "Model.generate": lambda e, t: e.model.generate(t, max_new_tokens=1),
    "Model.activations": lambda e, t: e.model.activations(t, SITE, progress=False),
    "ablate_context": lambda e, t: analysis.ablate_context(e.model, e.sae, t, 3, progress=False),
    "ablate_feature": lambda e, t: analysis.ablate_feature(e.model, e.sae, t, 3),
    "attribute": lambda e, t: analysis.attribute(e.model, e.sae, t, 5),
    "vocab_sweep": lambda e, t: analysis.vocab_sweep(e.model, e.sae, t, 3, tokens=range(3, 20),
                                                     progress=False),
    "neuron_basis": lambda e, t: analysis.neuron_basis(e.model, e.sae, 3, [t]),
    "steer": lambda e, t: analysis.steer(e.model, e.sae, t, {3: 2.0}, max_new_tokens=1),
    "feature_stats": lambda e, t: saekit.feature_stats(e.model, {e.name: e.sae}, t, k=2, progress=False),
    "evaluate": lambda e, t: saekit.evaluate(e.model, [e.sae], t, progress=False),
    "explore.highlight": lambda e, t: explore.highlight(e.model, e.sae, t, features=[3]),
    "explore.context_ablation": lambda e, t: explore.context_ablation(e.model, e.sae, t, 3),
    "explore.logit_attribution": lambda e, t: explore.logit_attribution(e.model, e.sae, t, 3),
    "explore.steering": lambda e, t: explore.steering(e.model, e.sae, {3: 2.0}, t, max_new_tokens=1),
}
#: texts longer than the context are chunked by design here (not refused)
CHUNKED = {"Model.activations", "feature_stats", "evaluate"}

BAD_TEXTS = st.one_of(
    st.just(""), st.none(), st.integers(), st.floats(allow_nan=True), st.booleans(), st.binary(min_size=1),
    st.sampled_from([[], [""], [None], [1.5], {"a": 1}, ["ok", 3], [True]]),
)
_WORD = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Z")), min_size=1, max_size=6)
#: two or more words: at least two tokens after BOS, whatever the characters
GOOD_TEXTS = st.lists(_WORD, min_size=2, max_size=5).map(" ".join)


@pytest.mark.parametrize("name", sorted(TEXT_CALLS))
@_settings(EXAMPLES)
@given(bad=BAD_TEXTS)
def test_bad_texts_raise_saekit_error(env: Env, name: str, bad: Any) -> None:
    with pytest.raises(SaekitError):
        TEXT_CALLS[name](env, bad)


@pytest.mark.parametrize("name", sorted(TEXT_CALLS))
@_settings(3)
@given(text=GOOD_TEXTS)
def test_any_text_gives_a_result(env: Env, name: str, text: str) -> None:
    result = TEXT_CALLS[name](env, text)
    assert result is not None
    if hasattr(result, "wait"):
        assert result.wait(60) and result.error == ""


@pytest.mark.parametrize("name", sorted(TEXT_CALLS))
def test_texts_past_the_context_are_refused_or_chunked(env: Env, name: str) -> None:
    long = "The cat sat on the mat. " * 40  # ~ 250 tokens; the context is 128
    if name in CHUNKED:
        assert TEXT_CALLS[name](env, long) is not None
    else:
        with pytest.raises(SaekitError, match="context"):
            TEXT_CALLS[name](env, long)
