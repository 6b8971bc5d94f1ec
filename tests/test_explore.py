"""The controller on a tiny Llama: views hold exactly what the model and the analyses give."""

from __future__ import annotations

import _tiny
import numpy as np
import pandas as pd
import pytest
import torch

import saekit
from saekit import analysis, explore
from saekit.analysis.geometry import match_features, neighbours
from saekit.errors import SaekitError
from saekit.sae import SAEConfig, TopKSAE, init_weights
from saekit.splice import sae_edit
from saekit.widgets import (
    ContextAblation,
    FeatureCard,
    FeatureSplitting,
    LogitAttribution,
    TokenHighlight,
    UmapView,
)
from saekit.widgets._base import from_bytes

SITE = "resid_post.1"
TEXT = "The cat sat on the mat."


def _sae(d_sae: int, seed: int) -> TopKSAE:
    return init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=d_sae, k=8, site=SITE)), seed=seed)


@pytest.fixture(scope="module")
def saes() -> dict[str, TopKSAE]:
    return {"small": _sae(16, 0), "large": _sae(64, 1)}


@pytest.fixture(scope="module")
def stats(tiny_llama: saekit.Model, saes) -> saekit.FeatureStats:  # type: ignore[no-untyped-def]
    return saekit.feature_stats(tiny_llama, saes, _tiny.CORPUS, k=4, context=(5, 2), progress=False)


def _codes(model: saekit.Model, sae: TopKSAE, text: str) -> tuple[torch.Tensor, torch.Tensor]:
    ids = torch.tensor(model.to_tokens(text))
    x = model.run(ids[None], read=[SITE], logits=False).acts[SITE][0]
    with torch.no_grad():
        return ids, sae.encode(x)


def _active(model: saekit.Model, sae: TopKSAE, text: str) -> int:
    """A feature active at the last token of ``text``."""
    return int(_codes(model, sae, text)[1][-1].argmax())


def test_highlight_activations_are_sae_codes_of_model_activations(tiny_llama, saes) -> None:  # type: ignore[no-untyped-def]
    sae = saes["large"]
    texts = [TEXT, "<script>alert(1)</script> Paris"]
    view = explore.highlight(tiny_llama, sae, texts, top_k=3, labels={5: "five"})
    assert isinstance(view, TokenHighlight) and view.title == "topk-64@resid_post.1"  # the SAE's name
    refs = [_codes(tiny_llama, sae, t) for t in texts]
    codes = torch.cat([c for _, c in refs])  # [total_tokens, d_sae]
    ids = torch.cat([i for i, _ in refs])
    peak = torch.stack([c[1:].max(0).values for _, c in refs]).max(0).values
    assert view.feature_ids == peak.topk(5).indices.tolist()  # default: the 5 strongest here
    acts = from_bytes(view.acts, "f4", (-1, 5))
    np.testing.assert_allclose(acts, codes[:, view.feature_ids].numpy(), rtol=0, atol=1e-6)
    top_vals, top_ids = codes.topk(3, dim=1)
    np.testing.assert_array_equal(from_bytes(view.top_ids, "i4", (-1, 3)),
                                  torch.where(top_vals > 0, top_ids, -1).numpy())
    np.testing.assert_allclose(from_bytes(view.top_values, "f4", (-1, 3)), top_vals.numpy(), atol=1e-6)
    assert view.masked().tolist() == (ids == 0).tolist()  # BOS (id 0) masked, nothing else
    assert view.tokens == [tiny_llama.to_strings(i) for i, _ in refs]
    assert view.feature_labels == {"5": "five"}
    chosen = explore.highlight(tiny_llama, sae, TEXT, features=[3, 9])
    np.testing.assert_allclose(chosen.feature_values(9), refs[0][1][:, 9].numpy(), atol=1e-6)
    tab = explore.highlight(tiny_llama, saes, TEXT, features={"small": [1], "large": [2, 4]})
    assert [c.feature_ids for c in tab.children] == [[1], [2, 4]]
    assert [tab.get_title(i) for i in range(2)] == ["small", "large"]


def test_context_ablation_view_shows_ablate_context(tiny_llama, saes) -> None:  # type: ignore[no-untyped-def]
    sae = saes["large"]
    f = _active(tiny_llama, sae, TEXT)
    view = explore.context_ablation(tiny_llama, sae, TEXT, f, label="cats")
    assert isinstance(view, ContextAblation)
    ref = analysis.ablate_context(tiny_llama, sae, TEXT, f, progress=False)
    ids, codes = _codes(tiny_llama, sae, TEXT)
    assert view.tokens == tiny_llama.to_strings(ids) and view.feature_id == f and view.label == "cats"
    assert view.activation_full == pytest.approx(float(codes[-1, f]), abs=1e-6)
    delta = np.zeros(len(ids))
    delta[ref.frame["pos"].to_numpy()] = ref.frame["delta"].to_numpy()
    np.testing.assert_allclose(view.deltas(), delta, atol=1e-6)
    assert view.ablated_mask().tolist() == [False] + [True] * (len(ids) - 2) + [False]
    assert np.abs(view.deltas()).max() > 0  # removing context tokens changes an active feature


def test_logit_attribution_view_and_its_interactions(tiny_llama, saes) -> None:  # type: ignore[no-untyped-def]
    sae = saes["large"]
    f = _active(tiny_llama, sae, TEXT)
    view = explore.logit_attribution(tiny_llama, sae, TEXT, f, target=-1, n_logits=4, top=6)
    assert isinstance(view, LogitAttribution) and view.can_choose
    ids, codes = _codes(tiny_llama, sae, TEXT)
    abl = analysis.ablate_feature(tiny_llama, sae, TEXT, f)
    np.testing.assert_allclose(view.activations(), codes[:, f].numpy(), atol=1e-6)
    np.testing.assert_allclose(view.effects()[1:], abl.frame["delta"].to_numpy()[:-1], atol=1e-6)
    logits = analysis.logit_effects(tiny_llama, sae, f, k=4).frame
    top = logits[logits.direction == "top"]
    assert view.top_logits == [[t, pytest.approx(v)] for t, v in zip(top.token, top.logit, strict=True)]
    # the ranking for the last token equals attribute() summed per feature
    T = len(ids)
    att = analysis.attribute(tiny_llama, sae, TEXT, int(ids[-1]), pos=T - 2)
    ref = att.frame.groupby("feature")["attribution"].sum()
    ref = ref.iloc[np.argsort(-ref.abs().to_numpy(), kind="stable")][:6]
    got = view.ranking()
    assert [r[0] for r in got] == ref.index.tolist()
    np.testing.assert_allclose([r[1] for r in got], ref.to_numpy(), rtol=1e-5, atol=1e-7)
    assert view.attr_token == T - 1
    assert view.attr_target == f"{tiny_llama.to_strings(ids)[-1]!r} at position {T - 1}"
    # clicking a token ranks its prediction; clicking a ranked feature shows that feature
    view.choose_prediction(3)
    assert view.wait(30) and view.error == "" and view.attr_token == 3
    g = got[0][0] if got[0][0] != f else got[1][0]
    view.request_feature(g)
    assert view.feature_id == g and view.requested == saekit.FeatureRef("topk-64@resid_post.1", g)
    np.testing.assert_allclose(view.activations(), codes[:, g].numpy(), atol=1e-6)
    after = explore.logit_attribution(tiny_llama, sae, TEXT, f, target=" the")
    assert after.attr_token is None and after.attr_target == "' the' after the text"
    with pytest.raises(SaekitError, match="nothing predicts"):
        explore.logit_attribution(tiny_llama, sae, TEXT, f, target=0)


def test_feature_card_from_stats_logits_and_neighbours(tiny_llama, saes, stats) -> None:  # type: ignore[no-untyped-def]
    sae = saes["large"]
    f = int(stats.summary.query("sae == 'large'").sort_values("n_active").feature.iloc[-1])
    card = explore.feature_card(stats, sae, f, model=tiny_llama, saes=saes, n_logits=3, n_neighbours=4)
    assert isinstance(card, FeatureCard) and card.feature_id == f and card.sae_name == "large"
    fv = stats.feature("large", f)
    assert dict((k, v) for k, v, _ in card.stats)["density"] == pytest.approx(fv.density)
    assert [ex[1] for ex in card.examples()[: len(fv.top)]] == [list(e.tokens) for e in fv.top]
    nb = neighbours(sae, f, k=4).frame
    pairs = zip(nb.neighbour, nb.cosine, strict=True)
    assert card.neighbours == [[int(a), pytest.approx(b)] for a, b in pairs]
    logits = analysis.logit_effects(tiny_llama, sae, f, k=3).frame
    assert [t for t, _ in card.bottom_logits] == logits[logits.direction == "bottom"].token.tolist()
    other = card.neighbours[0][0]
    card.request_feature(other)  # a click on a neighbour shows it in place
    assert card.feature_id == other and card.neighbours[0][0] != other
    by_name = explore.feature_card(stats, "large", f)  # no SAE object: no neighbours or logits
    assert by_name.neighbours == [] and by_name.top_logits == []
    with pytest.raises(SaekitError, match="No SAE 'topk-32@resid_post.1' in these stats"):
        explore.feature_card(stats, _sae(32, 5), 0)  # an SAE is found by its name, never guessed


def test_umap_and_splitting_from_stats_linked_with_a_following_card(tiny_llama, saes, stats) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(0)
    coords = pd.DataFrame({"sae": ["small"] * 16 + ["large"] * 64,
                           "feature": list(range(16)) + list(range(64)),
                           "x": rng.normal(size=80), "y": rng.normal(size=80)})
    umap = explore.umap(saes, stats, coords=analysis.UmapMap(coords), color_by="density", clusters=3)
    assert isinstance(umap, UmapView) and umap.has_cluster and len(set(from_bytes(umap.cluster, "i4"))) == 3
    summary = stats.summary.set_index(["sae", "feature"])["density"]
    ref = [summary[(s, f)] for s, f in zip(coords.sae, coords.feature, strict=True)]
    np.testing.assert_allclose(from_bytes(umap.density, "f4"), ref, rtol=1e-6)
    busiest = stats.summary.query("sae == 'small'").sort_values("n_active").feature.iloc[-1]
    top = stats.top_examples("small", int(busiest))
    own = [stats.vocab[int(t)] for t in stats.window_tokens[top.example.to_numpy(), 5]]
    assert umap.labels[int(busiest)].startswith(repr(max(set(own), key=own.count)))

    split = explore.splitting(saes, int(busiest), stats, umap_view=umap, max_children=3)
    assert isinstance(split, FeatureSplitting) and split.columns == ["small", "large"]
    tree = match_features(saes)
    kids = tree.frame.query("parent_sae == 'small' and parent == @busiest").nlargest(3, "cosine")
    assert split.features()[1:] == [("large", int(c)) for c in kids.child]
    assert [e[2] for e in split.edges] == pytest.approx(kids.cosine.tolist())
    assert umap.highlight == umap.points_of(split.features()) and umap.focus == int(busiest)

    card = explore.follow(umap, stats, model=tiny_llama, saes=saes)
    umap.request_point(16 + 7)  # click ("large", 7) in the UMAP
    assert (card.sae_name, card.feature_id) == ("large", 7) and card.neighbours
    split.request_node(1)
    assert umap.focus == umap.index_of(*split.features()[1])


def test_steering_generate_fn_equals_model_generate_with_sae_edit(tiny_llama, saes) -> None:  # type: ignore[no-untyped-def]
    sae = saes["large"]
    view = explore.steering(tiny_llama, sae, {3: 6.0}, "The cat", max_new_tokens=6, labels={3: "cats"})
    assert view.wait(60) and view.error == ""
    plain = tiny_llama.generate("The cat", max_new_tokens=6)[0]
    steered = tiny_llama.generate("The cat", max_new_tokens=6,
                                  edits={SITE: sae_edit(sae, clamp={3: 6.0})})[0]
    assert (view.baseline, view.steered) == (plain, steered) and plain != steered
    assert view.sliders[0]["label"] == "cats" and view.sliders[0]["min"] == -10.0
    assert view.code.splitlines() == [
        "from saekit.analysis import steer",
        "steer(model, sae, 'The cat', {3: 6.0}, mode='clamp', max_new_tokens=6)",
    ]
    view.set_value(3, 0.0, enabled=False)  # nothing applied: steered = baseline
    assert view.wait(60) and view.steered == plain
    assert view.code == "model.generate('The cat', max_new_tokens=6)"
    scaled = explore.steering(tiny_llama, sae, [3], "The cat", max_new_tokens=6, mode="scale")
    assert scaled.mode == "scale" and scaled.values == [1.0]
    scaled.set_value(3, 4.0)
    assert scaled.wait(60)
    ref = tiny_llama.generate("The cat", max_new_tokens=6, edits={SITE: sae_edit(sae, scale={3: 4.0})})[0]
    assert scaled.steered == ref and "mode='scale'" in scaled.code
    added = explore.steering(tiny_llama, sae, {3: 5.0}, "The cat", max_new_tokens=6, mode="add")
    assert added.wait(60) and added.mode == "add"  # one vocabulary: 'add' is reachable from the view
    ref = tiny_llama.generate("The cat", max_new_tokens=6, edits={SITE: sae_edit(sae, add={3: 5.0})})[0]
    assert added.steered == ref
    with pytest.raises(SaekitError, match="mode must be one of \\('clamp', 'scale', 'add'\\)"):
        explore.steering(tiny_llama, sae, [3], "x", mode="multiply")


def test_results_show_themselves_through_view(tiny_llama, saes, stats) -> None:  # type: ignore[no-untyped-def]
    fv = stats.feature("small", 0)
    card = explore.view(fv)
    assert isinstance(card, FeatureCard) and card.feature_id == 0 and card.sae_name == "small"
    result = analysis.ablate_context(tiny_llama, saes["small"], TEXT, 0, progress=False)
    assert isinstance(explore.view(result), ContextAblation)
    ablation = analysis.ablate_feature(tiny_llama, saes["small"], TEXT, 0)
    assert isinstance(explore.view(ablation), LogitAttribution)
    tree = match_features(saes)
    assert isinstance(explore.view(tree, root=("small", 0)), FeatureSplitting)
    with pytest.raises(SaekitError, match="root=FeatureRef"):
        explore.view(tree)
    with pytest.raises(SaekitError, match="A LogitEffects has no view"):
        explore.view(analysis.logit_effects(tiny_llama, saes["small"], 0, k=2))


def test_importing_explore_loads_no_widget_code() -> None:
    import subprocess
    import sys

    code = ("import sys, saekit.explore; "
            "print([m for m in ('anywidget', 'ipywidgets', 'plotly', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_umap_computes_coords_jointly_and_follow_on_single_sae_views(tiny_llama, saes, stats,
                                                                     monkeypatch) -> None:  # type: ignore[no-untyped-def]
    seen: dict = {}

    def fake_coords(named, **kwargs):  # type: ignore[no-untyped-def]
        seen.update(names=list(named), kwargs=kwargs)
        rows = [(n, f) for n, s in named.items() for f in range(s.d_sae)]
        frame = pd.DataFrame({"sae": [r[0] for r in rows], "feature": [r[1] for r in rows],
                              "x": np.arange(len(rows), dtype=float), "y": np.zeros(len(rows))})
        return analysis.UmapMap(frame)

    monkeypatch.setattr(analysis, "umap_coords", fake_coords)
    view = explore.umap(list(saes.values()), n_neighbors=5)  # a list: named by the one naming rule
    names = ["topk-16@resid_post.1", "topk-64@resid_post.1"]
    assert seen == {"names": names, "kwargs": {"n_neighbors": 5}}
    assert view.sae_names == names and view.n_points == 80

    th = explore.highlight(tiny_llama, {"small": saes["small"]}, TEXT)
    card = explore.follow(th, stats, sae=saes["small"], saes=saes, model=tiny_llama,
                          feature=th.selected_feature)
    assert (card.sae_name, card.feature_id) == ("small", th.selected_feature)
    th.request_feature(2)  # the ↗ button in a token's tooltip
    assert card.feature_id == 2 and card.sae_name == "small" and card.top_logits
