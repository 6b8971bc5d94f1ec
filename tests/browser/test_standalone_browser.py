"""Views exported to standalone HTML open from file:// with no network and no errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from saekit import figures

pytestmark = pytest.mark.browser

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"']


def _views():  # type: ignore[no-untyped-def]
    from saekit.widgets import FeatureCard, Steering, TokenDoc, TokenHighlight, TrainingMonitor

    tokens = ["<bos>", " The", " cat", *HOSTILE, "\n", " sat"]
    acts = np.array([0, 0.5, 3.0, 1.0, 2.0, 0.25, 0, 1.5], np.float32)
    th = TokenHighlight([TokenDoc(tokens, acts, mask=[1, 0, 0, 0, 0, 0, 0, 0])], feature_ids=[4],
                        feature_labels={4: HOSTILE[0]}, title=HOSTILE[1])
    rng = np.random.default_rng(0)
    counts, edges = np.histogram(rng.gamma(2.0, 1.0, 2000), bins=20)
    from saekit.analysis.results import LogitEffects, Neighbours
    from saekit.analysis.stats import Example, FeatureView, QuantileBin

    def example(values):  # type: ignore[no-untyped-def]
        return Example(0, 2, float(values.max()), tuple(tokens), np.zeros(len(tokens), np.int64), values, 2)

    logits = LogitEffects(pd.DataFrame({"feature": 4, "direction": ["top", "bottom"], "rank": [0, 0],
                                        "token_id": [1, 2], "token": [HOSTILE[1], " dog"],
                                        "logit": [1.0, -0.5]}), "s")
    near = Neighbours(pd.DataFrame({"feature": [4], "rank": [0], "neighbour": [9], "cosine": [0.5]}), "s")
    card = FeatureCard.from_result(FeatureView(
        "s", 4, 0.002, 3.0, 0.5, 1.1, 40, (example(acts),), (QuantileBin(0, 0.0, 1.5, (example(acts / 4),)),),
        (), edges.astype(float), counts.astype(float), HOSTILE[0], logits=logits, neighbours=near))
    steer = Steering(lambda p, c: (p + "!", p.upper()), [4], prompt=HOSTILE[0])
    steer.wait(5)
    mon = TrainingMonitor(min_interval=0)
    for step in range(0, 200, 10):
        mon.update(step, {HOSTILE[0]: {"l0": 30 - step / 10, "mse": 1 / (1 + step)}})
    return {"th": th, "card": card, "steer": steer, "mon": mon}


def test_standalone_pages_render_offline(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from _harness import PageGuard
    from playwright.sync_api import expect

    guard = PageGuard()
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    guard.attach(page, lambda url: url.startswith(("file:", "data:", "blob:", "about:")))
    try:
        for name, view in _views().items():
            path = figures.export(view, tmp_path / f"{name}.html")
            page.goto(path.as_uri())
            page.wait_for_selector("body[data-saekit-ready='1']", timeout=10_000)
            root = page.locator("#saekit-view .sk-root").first
            expect(root).to_be_visible()
            if name in ("th", "card"):
                expect(page.locator(".sk-tok", has_text=HOSTILE[0]).first).to_be_visible()
                page.locator(".sk-tok", has_text=" cat").first.hover()
                expect(page.locator(".sk-tip")).to_be_visible()
            if name == "steer":
                expect(page.locator("[data-role=steered]")).to_have_text(HOSTILE[0].upper())
                expect(page.locator("input[type=range]")).to_be_disabled()
            if name == "mon":
                expect(page.locator(".sk-chart")).to_have_count(2)
            page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)
    finally:
        context.close()
    assert not guard.problems(), guard.problems()
