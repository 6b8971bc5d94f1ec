"""Results with an identity: frozen results, their refs, text form, display and views."""

from __future__ import annotations

import _tiny
import numpy as np
import pytest
import torch

import saekit
from saekit import analysis, explore
from saekit.errors import SaekitError
from saekit.ids import FeatureRef
from saekit.sae import SAEConfig, TopKSAE, init_weights
from saekit.widgets import ContextAblation, FeatureCard, FeatureSplitting, LogitAttribution, UmapView
from saekit.widgets._base import from_bytes

SITE = "resid_post.1"
TEXT = "The cat sat on the mat."


def _sae(d_sae: int, seed: int) -> TopKSAE:
    return init_weights(TopKSAE(SAEConfig(d_in=32, d_sae=d_sae, k=8, site=SITE)), seed=seed)


@pytest.fixture(scope="module")
def saes() -> dict[str, TopKSAE]:
    return saekit.name_saes([_sae(16, 0), _sae(64, 1)])


@pytest.fixture(scope="module")
def stats(tiny_llama, saes):  # type: ignore[no-untyped-def]
    return saekit.feature_stats(tiny_llama, list(saes.values()), _tiny.CORPUS, k=4, context=(5, 2),
                                progress=False)


def test_one_naming_rule_across_stats_evaluate_and_geometry(stats, saes) -> None:  # type: ignore[no-untyped-def]
    assert list(saes) == ["topk-16@resid_post.1", "topk-64@resid_post.1"]
    assert stats.sae_names == list(saes)
    tree = analysis.match_features(list(saes.values()))
    assert tree.saes == list(saes)
    assert stats.feature(list(saes.values())[1], 3).sae == "topk-64@resid_post.1"  # an SAE finds its stats


def test_context_ablation_result_knows_refs_text_and_view(tiny_llama, saes) -> None:  # type: ignore[no-untyped-def]
    sae = saes["topk-64@resid_post.1"]
    r = analysis.ablate_context(tiny_llama, sae, TEXT, [3, 5], progress=False)
    assert r.refs == (FeatureRef("topk-64@resid_post.1", 3), FeatureRef("topk-64@resid_post.1", 5))
    assert r.tokens == tuple(tiny_llama.to_strings(tiny_llama.to_tokens(TEXT)))
    assert str(r).startswith("ContextEffects · topk-64@resid_post.1") and "#5:" in str(r)
    frame = r.to_frame()
    frame.loc[:, "delta"] = 123.0
    assert not (r.frame["delta"] == 123.0).any()  # to_frame is a copy
    view = ContextAblation.from_result(r, feature=5)
    rows = r.frame[r.frame["feature"] == 5]
    np.testing.assert_allclose(view.deltas()[rows["pos"].to_numpy()], rows["delta"], rtol=1e-6)
    assert view.feature_id == 5 and view.sae_name == r.sae
    with pytest.raises(SaekitError, match="pick one"):
        ContextAblation.from_result(r)


def test_results_display_themselves(tiny_llama, saes) -> None:  # type: ignore[no-untyped-def]
    sae = saes["topk-16@resid_post.1"]
    r = analysis.ablate_context(tiny_llama, sae, TEXT, 2, progress=False)
    bundle = r._repr_mimebundle_()
    assert bundle["text/plain"] == str(r)
    assert "application/vnd.jupyter.widget-view+json" in bundle
    effects = analysis.logit_effects(tiny_llama, sae, 2, k=3)
    assert effects._repr_mimebundle_() == {"text/plain": str(effects)}  # no view: text only
    top = effects.frame.query("direction == 'top'")
    assert effects.pairs()[0] == list(zip(top["token"], top["logit"], strict=True))


def test_clicks_carry_feature_refs(tiny_llama, saes, stats) -> None:  # type: ignore[no-untyped-def]
    big = saes["topk-64@resid_post.1"]
    card = explore.feature_card(stats, big, 3, model=tiny_llama)
    assert card.sae_name == "topk-64@resid_post.1" and card.feature_id == 3
    near = card.neighbours[0][0]
    card._on_custom_msg(card, {"type": "feature_click", "feature": near}, [])
    assert card.requested == FeatureRef("topk-64@resid_post.1", near) and card.feature_id == near
    points = analysis.UmapMap(_grid(saes))
    u = UmapView.from_result(points, labels=stats.labels(3), density=stats.densities(points.refs))
    followed = explore.follow(u, stats, saes=saes, feature=FeatureRef("topk-64@resid_post.1", 1))
    seen: list[FeatureRef] = []
    u.on_feature_click(seen.append)
    u._on_custom_msg(u, {"type": "feature_click", "feature": 7, "sae": "topk-16@resid_post.1"}, [])
    assert seen == [FeatureRef("topk-16@resid_post.1", 7)]
    assert (followed.sae_name, followed.feature_id) == ("topk-16@resid_post.1", 7)  # the other dictionary


def _grid(saes):  # type: ignore[no-untyped-def]
    import pandas as pd

    rows = [(n, f, float(f), float(i)) for i, (n, s) in enumerate(saes.items()) for f in range(s.d_sae)]
    return pd.DataFrame(rows, columns=["sae", "feature", "x", "y"])


def test_splitting_tree_walk_is_the_analysis(saes, stats) -> None:  # type: ignore[no-untyped-def]
    tree = analysis.match_features(saes)
    small, large = list(saes)
    root = FeatureRef(small, 2)
    nodes, edges = tree.subtree(root, max_children=3, depth=1)
    kids = tree.frame.query("parent == 2").nlargest(3, "cosine")
    assert nodes[0] == root and [n.feature for n in nodes[1:]] == kids["child"].tolist()
    view = FeatureSplitting.from_result(tree, root, max_children=3)
    assert view.features() == [(r.sae, r.feature) for r in nodes]
    got: list[FeatureRef] = []
    view.on_feature_click(got.append)
    view.request_node(1)
    assert got == [nodes[1]]
    with pytest.raises(SaekitError, match="root=FeatureRef"):
        tree.view()
    with pytest.raises(SaekitError, match="never a parent"):
        tree.subtree(FeatureRef(large, 0))


def test_logit_attribution_ranking_comes_from_the_attribution_result(tiny_llama, saes) -> None:  # type: ignore[no-untyped-def]
    sae = saes["topk-64@resid_post.1"]
    ids = torch.tensor(tiny_llama.to_tokens(TEXT))
    att = analysis.attribute(tiny_llama, sae, ids, int(ids[4]), pos=3)
    assert set(att.frame["sae"]) == {"topk-64@resid_post.1"} and att.token == 4
    ranked = att.ranked(top=5)
    by_hand = att.frame.groupby("feature")["attribution"].sum()
    assert np.allclose(ranked["attribution"], by_hand[ranked["feature"]].to_numpy())
    view = LogitAttribution.from_result(analysis.ablate_feature(tiny_llama, sae, ids, 3),
                                        analysis.logit_effects(tiny_llama, sae, 3, k=4), ranking=att,
                                        n_ranked=5)
    assert from_bytes(view.attr_features, "i4").tolist() == ranked["feature"].tolist()
    assert view.mask and from_bytes(view.mask, "u1")[0] == 1  # BOS is special


def test_feature_view_is_the_one_card_type(stats, saes, tiny_llama) -> None:  # type: ignore[no-untyped-def]
    ref = FeatureRef("topk-16@resid_post.1", 4)
    fv = analysis.feature_view(stats, ref, sae=saes[ref.sae], model=tiny_llama, n_logits=3, n_neighbours=2)
    assert fv.refs[0] == ref and len(fv.refs) == 3 and fv.features == [4]
    card = FeatureCard.from_result(fv)
    assert card.top_logits == [[t, v] for t, v in fv.logit_pairs()[0]]
    assert card.label == fv.label and "Top logits" in str(fv)
    assert fv.quantile_share(lambda tok: True)["share"].eq(1.0).all()


def test_demo_explorer_pages_from_results(tiny_llama, saes, stats, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """make demo's offline explorer runs on the result API (UMAP faked: no numba compile here)."""
    import pandas as pd

    from saekit._demo_outputs import write_explorer

    def fake_coords(named, **kwargs):  # type: ignore[no-untyped-def]
        return analysis.UmapMap(pd.DataFrame(_grid(named)))

    monkeypatch.setattr(analysis, "umap_coords", fake_coords)
    index = write_explorer(tmp_path, tiny_llama, saes, stats, [TEXT, "A dog ran."], n_cards=2, split_cards=0)
    pages = {p.name for p in tmp_path.rglob("*.html")}
    assert {"index.html", "umap.html", "splitting.html", "highlight.html"} <= pages
    assert len(list((tmp_path / "cards").glob("*.html"))) == 2 and index.read_text().count("cards/") == 2


def test_without_widget_libraries_a_result_shows_its_text(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import pandas as pd

    from saekit.analysis import _result

    frame = pd.DataFrame({"sae": ["a", "b"], "feature": [0, 3], "x": [0.0, 1.0], "y": [1.0, 0.0]})
    r = analysis.UmapMap(frame)
    assert "application/vnd.jupyter.widget-view+json" in r._repr_mimebundle_()

    def missing(name: str) -> None:
        raise ImportError(f"No module named {name!r}")

    monkeypatch.setattr(_result.importlib, "import_module", missing)
    assert r._repr_mimebundle_() == {"text/plain": "UmapMap: a (1 points), b (1 points)"}
    assert r.refs == (FeatureRef("a", 0), FeatureRef("b", 3))
