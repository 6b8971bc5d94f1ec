"""Untrusted strings in every view that shows tokens (issue #17), in headless chromium.

* A bidirectional control character (U+202E RIGHT-TO-LEFT OVERRIDE) inside one token must
  not reverse the tokens after it, and right-to-left text in one token must not reorder
  its neighbours: every token is isolated for bidi, and control characters are shown as
  visible escapes (``⟨U+202E⟩``), never written into the page.
* One 5,000-character unbroken token (or label) must not widen the page: the page stays
  narrower than 2,000 px, and the full text stays available on hover (the token's title
  and its tooltip).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from saekit import figures

pytestmark = pytest.mark.browser

RLO = "\u202e"
LONG = "x" * 5000
VIEWPORT = {"width": 1200, "height": 900}


def _highlight(tokens: list[str], label: str = "cats") -> Any:
    from saekit.widgets import TokenDoc, TokenHighlight

    acts = np.linspace(0, 2, len(tokens), dtype=np.float32)
    return TokenHighlight([TokenDoc(tokens, acts, label=label)], feature_ids=[3], feature_labels={3: label},
                          title=label)


def _example(tokens: list[str], acts: Any) -> Any:
    from saekit.analysis.stats import Example

    acts = np.asarray(acts, np.float32)
    return Example(0, 0, float(acts.max()), tuple(tokens), np.zeros(len(tokens), np.int64), acts,
                   int(np.argmax(acts)))


def _card(tokens: list[str], label: str = "cats") -> Any:
    from saekit.analysis.results import LogitEffects
    from saekit.analysis.stats import FeatureView
    from saekit.widgets import FeatureCard

    logits = LogitEffects(pd.DataFrame({"feature": 3, "direction": ["top", "top", "bottom"],
                                        "rank": [0, 1, 0], "token_id": [1, 2, 3],
                                        "token": [tokens[1], label, tokens[-1]], "logit": [1.0, 0.5, -1.0]}),
                          label)
    return FeatureCard.from_result(FeatureView(
        sae=label, feature=3, density=0.0, max_act=2.0, mean_act=0.0, mean_active_act=float("nan"),
        n_active=0,
        top=(_example(tokens, np.linspace(0, 2, len(tokens))),), quantiles=(), random=(),
        hist_edges=np.zeros(0), hist_counts=np.zeros(0), label=label, logits=logits))


def _splitting(tokens: list[str], label: str = "cats") -> Any:
    from saekit.analysis.results import SplittingTree
    from saekit.widgets import FeatureSplitting, SplitNode

    ex = [_example(tokens, np.linspace(0, 2, len(tokens)))]
    nodes = {("s", 1): SplitNode("s", 1, label, ex, max_act=2.0), ("m", 2): SplitNode("m", 2, label, ex)}
    columns = ["level", "parent_sae", "parent", "child_sae", "child", "cosine"]
    tree = SplittingTree(pd.DataFrame([(0, "s", 1, "m", 2, 0.8)], columns=columns), "s")
    return FeatureSplitting.from_result(tree, ("s", 1), describe=lambda sae, f: nodes[sae, f], title=label)


def _attribution(tokens: list[str], label: str = "cats") -> Any:
    from saekit.widgets import LogitAttribution

    n = len(tokens)
    return LogitAttribution(tokens, np.linspace(0, 2, n), np.linspace(-1, 1, n), feature_id=3, label=label,
                            top_logits=[(tokens[1], 1.0)], title=label)


def _ablation(tokens: list[str], label: str = "cats") -> Any:
    from saekit.widgets import ContextAblation

    n = len(tokens)
    return ContextAblation(tokens, np.linspace(-1, 1, n), activation_full=1.0, feature_id=3, label=label,
                           title=label)


# view builder, CSS selector of its token spans in the text
VIEWS: dict[str, tuple[Callable[..., Any], str]] = {
    "highlight": (_highlight, ".sk-doc-text .sk-tok"),
    "card": (_card, ".sk-ex-text .sk-tok"),
    "splitting": (_splitting, ".sk-node-ex .sk-tok"),
    "attribution": (_attribution, ".sk-la-text .sk-tok"),
    "ablation": (_ablation, ".sk-ca-text .sk-tok"),
}


@pytest.fixture
def open_view(browser, tmp_path: Path):  # type: ignore[no-untyped-def]
    from _harness import PageGuard

    contexts, guards = [], []

    def open_(view: Any, name: str) -> Any:
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(10_000)
        guard = PageGuard()
        guard.attach(page, lambda url: url.startswith(("file:", "data:", "blob:", "about:")))
        guards.append(guard)
        page.goto(figures.export(view, tmp_path / f"{name}.html").as_uri())
        page.wait_for_selector("body[data-saekit-ready='1']")
        page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not [p for g in guards for p in g.problems()]


_JS_LEFTS = """(sel) => [...document.querySelectorAll(sel)].slice(0, %d)
  .map((el) => el.getClientRects()[0].left)"""


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_bidi_control_in_a_token_keeps_the_following_tokens_in_order(open_view, name: str) -> None:
    build, sel = VIEWS[name]
    tokens = ["<bos>", f" evil{RLO}", " one", " two", " three", " four", " end"]
    page = open_view(build(tokens, label=f"label{RLO} here"), name)
    lefts = page.evaluate(_JS_LEFTS % len(tokens), sel)
    assert lefts == sorted(lefts) and len(set(lefts)) == len(lefts), f"tokens out of order: {lefts}"
    text = page.locator("#saekit-view").inner_text()
    assert RLO not in text, "a bidi control character reached the page unescaped"
    assert "⟨U+202E⟩" in text
    page.locator(sel).nth(1).hover()
    tip = page.locator(".sk-tip")
    assert "⟨U+202E⟩" in tip.inner_text() and RLO not in tip.inner_text()
    assert RLO not in (page.locator(sel).nth(1).get_attribute("title") or "")


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_right_to_left_token_does_not_reorder_its_neighbours(open_view, name: str) -> None:
    build, sel = VIEWS[name]
    tokens = ["<bos>", " a", " שלום", " 12", " 34", " b", " end"]
    page = open_view(build(tokens), name)
    lefts = page.evaluate(_JS_LEFTS % len(tokens), sel)
    assert lefts == sorted(lefts) and len(set(lefts)) == len(lefts), f"tokens out of order: {lefts}"


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_long_token_and_label_do_not_widen_the_page(open_view, name: str) -> None:
    build, sel = VIEWS[name]
    tokens = ["<bos>", " a", LONG, " b", " end"]
    page = open_view(build(tokens, label="y" * 5000), name)
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width < 2000, f"page is {width} px wide"
    token = page.locator(sel).nth(2)
    assert token.get_attribute("title") == LONG, "the full token is not available on hover"
    box = token.bounding_box()
    assert box["width"] < 1200 and box["height"] < 200, f"long token drawn at {box}"
    token.hover()
    tip = page.locator(".sk-tip")
    assert LONG in tip.inner_text()
    tip_box = tip.bounding_box()
    assert tip_box["x"] + tip_box["width"] <= VIEWPORT["width"] and tip_box["height"] < VIEWPORT["height"]


def test_umap_and_steering_labels_and_outputs(open_view) -> None:  # type: ignore[no-untyped-def]
    from saekit.analysis.results import UmapMap
    from saekit.widgets import Steering, UmapView

    coords = pd.DataFrame({"sae": ["a", "a", "b"], "feature": [0, 1, 2],
                           "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 0.5]})
    umap = UmapView.from_result(UmapMap(coords), labels=[f"lab{RLO}el", "y" * 5000, " end"], title="map")
    umap.selection = [0, 1, 2]
    page = open_view(umap, "umap")
    assert page.evaluate("() => document.documentElement.scrollWidth") < 2000
    text = page.locator(".sk-umap-side").inner_text()
    assert RLO not in text and "⟨U+202E⟩" in text
    steer = Steering(lambda p, c: (LONG, f"a{RLO}b"), [{"feature_id": 4, "label": "y" * 5000}], prompt="p")
    steer.wait(5)
    page = open_view(steer, "steer")
    assert page.evaluate("() => document.documentElement.scrollWidth") < 2000
    assert page.locator("[data-role=baseline]").inner_text() == LONG
