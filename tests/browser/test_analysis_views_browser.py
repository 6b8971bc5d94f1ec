"""The analysis views in a real JupyterLab: lasso in the UMAP, a splitting node ringed in the
linked UMAP, a token click ranking features, a context-ablation tooltip. The harness fails
the test on any page error and on any request that leaves 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = Path(__file__).parent / "analysis_views.ipynb"


def test_umap_splitting_attribution_and_ablation_in_jupyterlab(jupyter_page, browser, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    nb = jupyter_page(NOTEBOOK)
    nb.run_all()
    page = nb.page

    # --- UMAP: lasso the left half (the 30 points of "1k"); the selection reaches Python -----
    umap = page.locator(".sk-umap")
    canvas = umap.locator("canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    assert box is not None
    x0, y0, w, hgt = box["x"], box["y"], box["width"], box["height"]
    page.mouse.move(x0 + 4, y0 + 4)
    page.mouse.down()
    for fx, fy in [(0.5, 0.01), (0.5, 0.99), (0.01, 0.99), (0.01, 0.02)]:
        page.mouse.move(x0 + fx * w, y0 + fy * hgt, steps=6)
    page.mouse.up()
    expect(page.get_by_text("python selection = 30")).to_be_visible()
    expect(umap.locator("[data-role=selection] .sk-umap-item")).to_have_count(30)
    out = nb.execute("print(sorted(set(u.selected.sae)), u.selected.feature.tolist() == list(range(30)))")
    assert out.strip() == "['1k'] True"

    # --- splitting: the tree is highlighted in the UMAP; a clicked node is ringed there -------
    expect(page.get_by_text("python focus = 3")).to_be_visible()  # the root, ("1k", 3)
    split = page.locator(".sk-split")
    node = split.locator(".sk-node[data-node='2']")
    expect(node).to_contain_text("label 6")  # children of #3 by cosine: #5 (0.9), #6 (0.7)
    expect(node.locator(".sk-tok", has_text="<script>alert(1)</script>")).to_be_visible()
    expect(split.locator("svg.sk-split-edges path")).to_have_count(2)
    node.click()
    expect(node).to_have_class("sk-node sk-sel")
    expect(page.get_by_text("python focus = 36")).to_be_visible()  # ("4k", 6) is point 30 + 6
    assert nb.execute("print(sp.selected, u.highlight)").strip() == "2 [3, 35, 36]"

    # --- logit attribution: click a token -> features ranked for predicting it ---------------
    la = page.locator(".sk-la")
    cat = la.locator(".sk-tok[data-i='2']")
    cat.scroll_into_view_if_needed()
    assert cat.evaluate("e => getComputedStyle(e).boxShadow").startswith("rgb")  # the underline
    cat.hover()
    tip = page.locator(".sk-tip:visible", has_text="Δ log p when ablated")
    expect(tip).to_contain_text("the feature makes this token more likely")
    cat.click()
    expect(page.get_by_text("python attr_token = 2")).to_be_visible()
    expect(la.locator(".sk-attr-head")).to_contain_text("token 2")
    expect(la.locator(".sk-tok.sk-la-target")).to_have_attribute("data-i", "2")
    la.locator(".sk-attr-row[data-feature='7'] button.sk-fid").click()
    expect(page.get_by_text("python opened = 7")).to_be_visible()

    # --- context ablation: hostile tokens are text; hover shows the activation without -------
    ca = page.locator(".sk-ca")
    hostile = ca.locator(".sk-tok[data-i='2']")
    hostile.scroll_into_view_if_needed()
    expect(hostile).to_have_text("<script>alert(1)</script>")
    hostile.hover()
    ca_tip = page.locator(".sk-tip:visible", has_text="without token")  # the other view's may linger
    expect(ca_tip).to_contain_text("-2 (-67%)")
    expect(ca.locator(".sk-tok.sk-ca-last")).to_have_text(" sat")

    shot = nb.screenshot("analysis_views.png")
    assert shot.stat().st_size > 10_000

    # --- the same views exported to standalone HTML render offline from file:// -------------
    names = ["u", "sp", "la", "ca"]
    nb.execute("from saekit import figures\n" + "\n".join(
        f"figures.export({n}, {str(tmp_path / (n + '.html'))!r})" for n in names))
    _standalone_pages_render(browser, [tmp_path / f"{n}.html" for n in names])


def _standalone_pages_render(browser, paths: list[Path]) -> None:  # type: ignore[no-untyped-def]
    from _harness import PageGuard
    from playwright.sync_api import expect

    guard = PageGuard()
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    guard.attach(page, lambda url: url.startswith(("file:", "data:", "blob:", "about:")))
    try:
        for path in paths:
            page.goto(path.as_uri())
            page.wait_for_selector("body[data-saekit-ready='1']", timeout=10_000)
            expect(page.locator("#saekit-view .sk-root").first).to_be_visible()
        expect(page.locator(".sk-tok", has_text="<script>alert(1)</script>")).to_be_visible()  # ca
    finally:
        context.close()
    assert not guard.problems(), guard.problems()
