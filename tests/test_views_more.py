"""Context ablation, logit attribution, UMAP and splitting views: synced state, text, safety."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from html import unescape
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from saekit import figures
from saekit.analysis.results import (
    Attribution,
    ContextEffects,
    FeatureAblation,
    LogitEffects,
    SplittingTree,
    UmapMap,
)
from saekit.analysis.stats import Example
from saekit.errors import SaekitError
from saekit.ids import FeatureRef
from saekit.widgets import (
    ContextAblation,
    FeatureSplitting,
    LogitAttribution,
    SplitNode,
    UmapView,
    _bundle,
)
from saekit.widgets._base import from_bytes

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"', "</script>"]
MODULES = ["context_ablation.js", "logit_attribution.js", "umap_view.js", "splitting.js"]


def _send_from_page(view, content: dict) -> None:  # type: ignore[no-untyped-def]
    """Deliver a custom message the way ipywidgets does when the page calls model.send()."""
    view._handle_msg({"content": {"data": {"method": "custom", "content": content}}, "buffers": []})


@pytest.mark.parametrize("entry", MODULES)
def test_bundles_are_self_contained_and_never_parse_html(entry: str) -> None:
    src = _bundle.bundle(entry)
    assert src.count("export default") == 1 and 'from "./' not in src
    assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write|eval\(", src)
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the syntax check of the bundled module needs it")
    proc = subprocess.run(["node", "--check", "--input-type=module"], input=src, text=True,
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr


# --- ContextAblation --------------------------------------------------------------------


def _example(tokens: list[str], acts: list[float]) -> Example:
    return Example(0, 0, max(acts), tuple(tokens), np.zeros(len(tokens), np.int64),
                   np.asarray(acts, np.float32), int(np.argmax(acts)))


def _ranking(target: str, features: list[int], attributions: list[float], acts: list[float],
             token: int | None = None) -> Attribution:
    frame = pd.DataFrame({"sae": "s", "feature": features, "activation": acts, "attribution": attributions})
    return Attribution(frame, "s", target, token)


TOKENS = ("<bos>", "The", HOSTILE[0], " sat", HOSTILE[1])


def _ablation(frame: pd.DataFrame | None = None, tokens: tuple[str, ...] = TOKENS) -> ContextEffects:
    return ContextEffects(_ablation_frame() if frame is None else frame, "s", tokens)


def _ablation_frame() -> pd.DataFrame:
    """What ablate_context returns for a 5-token context with BOS skipped."""
    return pd.DataFrame({
        "feature": 7, "pos": [1, 2, 3], "token_id": [10, 11, 12], "token": ["The", HOSTILE[0], " sat"],
        "activation_full": 2.0, "activation_without": [1.5, 0.5, 2.25], "delta": [-0.5, -1.5, 0.25],
    })


def test_context_ablation_state_from_result() -> None:
    view = ContextAblation.from_result(_ablation(), label=HOSTILE[2])
    state, buffers = view.view_state()
    assert state == {
        "title": "", "feature_id": 7, "sae_name": "s", "label": '"', "mode": "remove", "tokens": list(TOKENS),
        "activation_full": 2.0, "vmax": None,
    }
    np.testing.assert_array_equal(from_bytes(buffers["delta"], "f4"), [0, -0.5, -1.5, 0.25, 0])
    np.testing.assert_array_equal(from_bytes(buffers["ablated"], "u1"), [0, 1, 1, 1, 0])
    assert view.scale_max() == 1.5
    assert view.ranking() == [(2, HOSTILE[0], -1.5), (1, "The", -0.5), (3, " sat", 0.25)]
    assert view.to_text().splitlines() == [
        "ContextAblation · feature #7 · s · \" · activation at last token "
        "'<img src=x onerror=alert(1)>' (position 4): 2",
        "red = activated less without the token, blue = more",
        "<bos>[The:-0.5][<script>alert(1)</script>:-1.5][ sat:0.25]⟪<img src=x onerror=alert(1)>⟫",
        "most needed: '<script>alert(1)</script>' -1.5, 'The' -0.5",
    ]


def test_context_ablation_picks_one_feature_of_the_result_and_errors() -> None:
    frame = _ablation_frame()
    two = _ablation(pd.concat([frame, frame.assign(feature=9)]))
    assert two.refs == (FeatureRef("s", 7), FeatureRef("s", 9))
    with pytest.raises(SaekitError, match=r"holds features \[7, 9\]; pick one"):
        ContextAblation.from_result(two)
    assert ContextAblation.from_result(two, feature=9).feature_id == 9
    assert ContextAblation.from_result(two, feature=FeatureRef("s", 9)).feature_id == 9
    with pytest.raises(SaekitError, match="No rows for feature 3"):
        ContextAblation.from_result(two, feature=3)
    with pytest.raises(SaekitError, match="cannot be ablated"):
        ContextAblation(["a", "b"], [1.0, 1.0], activation_full=1.0, feature_id=0, ablated=[1, 1])
    with pytest.raises(SaekitError, match="one value per token \\(2\\)"):
        ContextAblation(["a", "b"], [1.0], activation_full=1.0, feature_id=0)
    view = ContextAblation(["a", "b", "c"], [-1.0, 2.0, 99.0], activation_full=1.0, feature_id=0, vmax=4.0)
    np.testing.assert_array_equal(view.deltas(), [-1, 2, 0])  # the last token is never ablated
    assert view.scale_max() == 4.0


# --- LogitAttribution -------------------------------------------------------------------


def _feature_frame() -> pd.DataFrame:
    """What ablate_feature returns for 4 tokens: row pos = effect on predicting token pos+1."""
    return pd.DataFrame({
        "feature": 3, "pos": [0, 1, 2, 3], "token_id": [0, 5, 6, 7],
        "token": ["<bos>", "The", HOSTILE[0], " sat"], "activation": [0.0, 0.5, 2.0, 1.0],
        "next_token_id": [5, 6, 7, -1], "next_token": ["The", HOSTILE[0], " sat", ""],
        "logprob_clean": [-1.0, -2.0, -3.0, np.nan], "logprob_ablated": [-1.0, -2.25, -2.5, np.nan],
        "delta": [0.0, -0.25, 0.5, np.nan],
    })


def _logit_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "feature": 3, "direction": ["top", "top", "bottom"], "rank": [1, 0, 0], "token_id": [1, 2, 3],
        "token": [" b", HOSTILE[1], " c"], "logit": [0.5, 1.5, -0.75],
    })


def _feature_ablation(frame: pd.DataFrame | None = None) -> FeatureAblation:
    return FeatureAblation(_feature_frame() if frame is None else frame, "s", np.array([1, 0, 0, 0], bool))


def test_logit_attribution_from_result_shifts_effects_onto_predicted_tokens() -> None:
    view = LogitAttribution.from_result(_feature_ablation(), LogitEffects(_logit_frame(), "s"))
    state, buffers = view.view_state()
    assert state["tokens"] == ["<bos>", "The", HOSTILE[0], " sat"]
    assert state["feature_id"] == 3 and state["act_max"] == 2.0 and state["effect_max"] == 0.5
    assert state["top_logits"] == [[HOSTILE[1], 1.5], [" b", 0.5]]  # by rank
    assert state["bottom_logits"] == [[" c", -0.75]]
    assert state["attr_target"] == "" and state["attr_token"] is None and not state["can_choose"]
    np.testing.assert_array_equal(from_bytes(buffers["effect"], "f4"), [0, 0, -0.25, 0.5])
    np.testing.assert_array_equal(from_bytes(buffers["has_effect"], "u1"), [0, 1, 1, 1])
    np.testing.assert_array_equal(from_bytes(buffers["acts"], "f4"), [0, 0.5, 2, 1])
    np.testing.assert_array_equal(from_bytes(buffers["mask"], "u1"), [1, 0, 0, 0])
    assert buffers["attr_features"] == b""
    assert view.to_text().splitlines()[2] == (
        "⟦<bos>⟧[The:a=0.5][<script>alert(1)</script>:a=2,Δ=-0.25][ sat:a=1,Δ=0.5]")


def test_attribution_ranking_aggregates_per_feature() -> None:
    frame = pd.DataFrame({
        "sae": ["a", "a", "a", "a", "b"], "pos": [1, 2, 2, 3, 1], "feature": [4, 4, 9, 1, 4],
        "activation": [1.0, 3.0, 0.5, 2.0, 7.0], "attribution": [0.25, -1.0, 0.5, 0.125, 9.0],
    })
    r = Attribution(frame, "a", "' x' at position 3", token=3)
    ranked = r.ranked()
    assert ranked["feature"].tolist() == [4, 9, 1]  # |-0.75| > |0.5| > |0.125|
    np.testing.assert_allclose(ranked["attribution"], [-0.75, 0.5, 0.125])
    np.testing.assert_allclose(ranked["activation"], [3.0, 0.5, 2.0])  # the largest per feature
    assert r.ranked("b", top=1)["feature"].tolist() == [4]
    assert r.refs == (FeatureRef("a", 4), FeatureRef("a", 9), FeatureRef("a", 1), FeatureRef("b", 4))
    view = LogitAttribution(["a", "b", "c", "d"], np.zeros(4), np.zeros(4), feature_id=4, ranking=r)
    assert view.attr_token == 3 and view.ranking() == [(4, -0.75, 3.0), (9, 0.5, 0.5), (1, 0.125, 2.0)]
    assert view.to_text().splitlines()[-1] == \
        "Attribution to ' x' at position 3: #4 -0.75 (act 3), #9 +0.5 (act 0.5), #1 +0.125 (act 2)"


def test_logit_attribution_click_token_runs_injected_ranking_off_thread() -> None:
    gate = threading.Event()
    asked: list[int] = []

    def rank(token: int) -> Attribution:
        asked.append(token)
        gate.wait(5)
        return _ranking(f"token {token}", [2], [1.0], [0.5], token=token)

    view = LogitAttribution(["a", "b", "c"], [0.0, 1.0, 0.0], [0.0, 0.5, -0.5], feature_id=1,
                            attribution_fn=rank)
    assert view.can_choose
    _send_from_page(view, {"type": "choose_prediction", "token": 2})
    assert view.busy and not view.wait(0.05)  # the kernel is free while it runs
    gate.set()
    assert view.wait(5) and asked == [2] and not view.busy
    assert view.attr_target == "token 2" and view.attr_token == 2 and view.ranking() == [(2, 1.0, 0.5)]
    clicked: list[FeatureRef] = []
    view.on_feature_click(clicked.append)
    _send_from_page(view, {"type": "feature_click", "feature": 2})
    assert clicked == [FeatureRef("sae", 2)]  # the view was built without its SAE's name
    with pytest.raises(SaekitError, match="token must be in 1..2"):
        view.choose_prediction(0)
    broken = LogitAttribution(["a", "b"], [0.0, 1.0], [0.0, 0.5], feature_id=1,
                              attribution_fn=lambda t: "nope")  # type: ignore[arg-type,return-value]
    broken.choose_prediction(1)
    assert broken.wait(5) and "must return a saekit.analysis.attribute() result" in broken.error
    with pytest.raises(SaekitError, match="no attribution_fn"):
        LogitAttribution(["a", "b"], [0.0, 1.0], [0.0, 0.5], feature_id=1).choose_prediction(1)


def test_logit_attribution_show_and_validation() -> None:
    view = LogitAttribution.from_result(_feature_ablation(), LogitEffects(_logit_frame(), "s"),
                                        ranking=_ranking("t", [3], [1.0], [2.0]))
    other = _feature_ablation(_feature_frame().assign(feature=8, activation=[0.0, 4.0, 0.0, 0.0]))
    view.show(other, label="eight")
    assert view.feature_id == 8 and view.label == "eight" and view.act_max == 4.0
    assert view.top_logits == [] and view.attr_target == "t"  # the ranking stays
    clicked: list[FeatureRef] = []
    view.on_feature_click(clicked.append)
    _send_from_page(view, {"type": "feature_click", "feature": 3})
    assert clicked == [FeatureRef("s", 3)]  # a bare id is a feature of the view's own SAE
    with pytest.raises(SaekitError, match="one value per token \\(2\\)"):
        LogitAttribution(["a", "b"], [1.0], [0.0, 0.0], feature_id=0)


# --- UmapView ---------------------------------------------------------------------------


def _coords() -> UmapMap:
    return UmapMap(pd.DataFrame({"sae": ["a", "a", "b", "b"], "feature": [0, 5, 0, 1],
                                 "x": [0.0, 1.0, 2.0, 3.5], "y": [1.0, 0.0, -1.0, 2.0]}))


def test_umap_view_state_is_binary_buffers() -> None:
    view = UmapView.from_result(_coords(), labels={("a", 5): HOSTILE[0], FeatureRef("b", 1): "x"},
                                density=[0.5, 0.0, 1e-3, 0.25], cluster=[0, 1, 1, -1], color_by="density",
                                title=HOSTILE[1])
    state, buffers = view.view_state()
    assert state == {
        "title": HOSTILE[1], "sae_names": ["a", "b"], "labels": ["", HOSTILE[0], "", "x"],
        "has_density": True, "has_cluster": True, "color_by": "density", "highlight": [], "focus": None,
        "selection": [],
    }
    np.testing.assert_array_equal(from_bytes(buffers["point_sae"], "i4"), [0, 0, 1, 1])
    np.testing.assert_array_equal(from_bytes(buffers["point_feature"], "i4"), [0, 5, 0, 1])
    np.testing.assert_array_equal(from_bytes(buffers["xy"], "f4", (-1, 2)),
                                  [[0, 1], [1, 0], [2, -1], [3.5, 2]])
    np.testing.assert_allclose(from_bytes(buffers["density"], "f4"), [0.5, 0, 1e-3, 0.25])
    np.testing.assert_array_equal(from_bytes(buffers["cluster"], "i4"), [0, 1, 1, -1])
    plain = UmapView.from_result(UmapMap(_coords().frame.assign(label=["p", "q", "r", "s"])))
    assert plain.labels == ["p", "q", "r", "s"] and not plain.has_density
    assert plain.view_state()[1]["density"] == b""


def test_umap_view_selection_clicks_highlight_and_text() -> None:
    view = UmapView.from_result(_coords(), labels=["l0", "l1", "l2", HOSTILE[0]])
    view.selection = [3, 1]  # what the lasso sends
    sel = view.selected
    assert sel[["point", "sae", "feature", "label"]].values.tolist() == [
        [3, "b", 1, HOSTILE[0]], [1, "a", 5, "l1"]]
    clicked: list[FeatureRef] = []
    view.on_feature_click(clicked.append)
    _send_from_page(view, {"type": "feature_click", "feature": 1, "sae": "b"})
    _send_from_page(view, {"type": "feature_click", "feature": -1, "sae": "b"})  # ignored
    view.request_point(1)
    assert clicked == [FeatureRef("b", 1), FeatureRef("a", 5)]
    view.highlight_features([("a", 0), ("b", 1), ("zz", 3)], focus=("b", 1))
    assert view.highlight == [0, 3] and view.focus == 3 and view.index_of("a", 5) == 1
    assert view.to_text().splitlines() == [
        "UmapView · 4 points · 2 dictionaries (a: 2, b: 2) · colour by sae",
        "selected 2: b#1 '<script>alert(1)</script>', a#5 'l1'",
        "highlighted 2: a#0 'l0', b#1 '<script>alert(1)</script>'",
    ]
    with pytest.raises(SaekitError, match="outside 0..3"):
        view.selection = [0, 9]
    assert view.selection == [0]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"color_by": "density"}, "needs density= values"),
    ({"color_by": "size"}, "color_by must be one of"),
    ({"labels": ["a"]}, "one text per point \\(4\\)"),
    ({"density": [1.0]}, "one value per point \\(4\\)"),
])
def test_umap_view_validation(kwargs, match) -> None:
    with pytest.raises(SaekitError, match=match):
        UmapView.from_result(_coords(), **kwargs)
    with pytest.raises(SaekitError, match="shows a saekit.analysis.umap_coords"):
        UmapView(_coords().frame)  # type: ignore[arg-type]
    with pytest.raises(SaekitError, match="No point for feature 9"):
        UmapView.from_result(_coords()).index_of("a", 9)


# --- FeatureSplitting -------------------------------------------------------------------


def _tree() -> SplittingTree:
    rows = [(0, "s", 1, "m", 0, 0.9), (0, "s", 1, "m", 2, 0.6), (0, "s", 1, "m", 3, 0.3),
            (0, "s", 0, "m", 1, 0.8), (1, "m", 0, "l", 5, 0.7), (1, "m", 2, "l", 4, 0.95),
            (1, "m", 2, "l", 6, 0.5), (1, "m", 1, "l", 7, 0.4)]
    frame = pd.DataFrame(rows, columns=["level", "parent_sae", "parent", "child_sae", "child", "cosine"])
    return SplittingTree(frame, "s")


def test_splitting_from_tree_walks_children_by_cosine() -> None:
    def describe(sae: str, f: int) -> SplitNode:
        return SplitNode(sae, f, f"{sae}{f}", [_example(["x", HOSTILE[0]], [0.0, 1.0])], max_act=2.0)

    view = FeatureSplitting.from_result(_tree(), ("s", 1), describe=describe, max_children=2)
    assert view.features() == [("s", 1), ("m", 0), ("m", 2), ("l", 5), ("l", 4), ("l", 6)]
    assert view.edges == [[0, 1, 0.9], [0, 2, 0.6], [1, 3, 0.7], [2, 4, 0.95], [2, 5, 0.5]]
    state, buffers = view.view_state()
    assert state["columns"] == ["s", "m", "l"]
    assert state["nodes"][2] == {"sae": "m", "feature": 2, "column": 1, "label": "m2", "max_act": 2.0,
                                 "density": None}
    assert state["ex_node"] == [0, 1, 2, 3, 4, 5] and state["ex_tokens"][0] == ["x", HOSTILE[0]]
    np.testing.assert_array_equal(from_bytes(buffers["ex_acts"], "f4"), [0, 1] * 6)
    assert view.to_text() == "\n".join([
        "FeatureSplitting · s #1 → 2 in m → 3 in l",
        "s #1 's1'",
        "├─ m #0 (cos 0.9) 'm0'",
        "│  └─ l #5 (cos 0.7) 'l5'",
        "└─ m #2 (cos 0.6) 'm2'",
        "   ├─ l #4 (cos 0.95) 'l4'",
        "   └─ l #6 (cos 0.5) 'l6'",
    ])
    assert FeatureSplitting.from_result(_tree(), ("s", 1), depth=1).features() == [
        ("s", 1), ("m", 0), ("m", 2), ("m", 3)]


def test_splitting_link_to_umap_both_ways() -> None:
    view = FeatureSplitting.from_result(_tree(), ("s", 1), max_children=2)
    coords = pd.DataFrame({"sae": ["s", "s", "m", "m", "m", "l", "l"], "feature": [0, 1, 0, 1, 2, 4, 5],
                           "x": np.arange(7.0), "y": np.zeros(7)})
    umap = UmapView.from_result(UmapMap(coords))
    assert view.link(umap) is view
    assert umap.highlight == [1, 2, 4, 6, 5] and umap.focus == 1  # ("l", 6) has no point
    clicked: list[FeatureRef] = []
    view.on_feature_click(clicked.append)
    _send_from_page(view, {"type": "feature_click", "feature": 2, "node": 2})
    assert view.selected == 2 and clicked == [FeatureRef("m", 2)] and umap.focus == 4
    umap.request_point(5)  # a click in the UMAP on ("l", 4) selects its node here
    assert view.selected == view.node_index("l", 4) == 4 and umap.focus == 5
    umap.request_point(0)  # ("s", 0) is not in the tree: nothing changes
    assert view.selected == 4


def test_splitting_errors() -> None:
    with pytest.raises(SaekitError, match="'l' is never a parent"):
        FeatureSplitting.from_result(_tree(), ("l", 5))
    with pytest.raises(SaekitError, match="must return SplitNode\\('s', 1"):
        FeatureSplitting.from_result(_tree(), ("s", 1), describe=lambda s, f: SplitNode(s, f + 1))
    with pytest.raises(SaekitError, match="point outside the 1 nodes"):
        FeatureSplitting([SplitNode("s", 1)], [(0, 3, 0.5)])
    with pytest.raises(SaekitError, match="not among columns"):
        FeatureSplitting([SplitNode("s", 1)], [], columns=["t"])


# --- standalone export ------------------------------------------------------------------


def _views() -> list:
    ca = ContextAblation(HOSTILE + ["end"], [-1.0, 0.5, 0.25, 2.0, 0.0], activation_full=1.0, feature_id=1,
                         label=HOSTILE[0], title=HOSTILE[1])
    la = LogitAttribution(HOSTILE, [0.0, 1, 2, 3], [0.0, -1, 1, 0], feature_id=2, label=HOSTILE[0],
                          top_logits=[(HOSTILE[1], 1.0)], feature_labels={5: HOSTILE[0]},
                          ranking=_ranking(HOSTILE[0], [5], [1.0], [2.0], token=1))
    um = UmapView.from_result(_coords(), labels=HOSTILE, title=HOSTILE[0])
    sp = FeatureSplitting([SplitNode(HOSTILE[0], 1, HOSTILE[1], [_example(HOSTILE, [0.0, 1, 2, 3])]),
                           SplitNode("m", 2, HOSTILE[0])], [(0, 1, 0.5)], title=HOSTILE[0])
    return [ca, la, um, sp]


@pytest.mark.parametrize("index", range(4))
def test_standalone_html_is_offline_and_escaped(tmp_path: Path, index: int) -> None:
    view = _views()[index]
    html = figures.export(view, tmp_path / "view.html", title=HOSTILE[0]).read_text()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html).group(1)
    assert unescape(csp).startswith("default-src 'none'; script-src 'sha256-")
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html)
    for token in HOSTILE[:2]:
        assert token not in html, f"{token!r} reached the HTML unescaped"
    assert html.count("</script>") == 2
    payload = re.search(r'<script type="application/json" id="saekit-state">(.*?)</script>', html, re.S)
    state = json.loads(payload.group(1))
    expected, buffers = view.view_state()
    assert {k: state[k] for k in expected} == json.loads(json.dumps(expected))
    assert all(set(state[k]) == {"$b64"} for k in buffers)
    assert ".sk-split-edges" in html and ".sk-tok" in html  # both stylesheets inlined
