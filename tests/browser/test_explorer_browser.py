"""The offline explorer in headless chromium: every feature click opens a card or says why not.

A small explorer is written from a tiny Llama and two tiny SAEs (tests/_explorer.py); the
pages are opened from file:// with every non-file request aborted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _explorer import build_explorer

from saekit._demo_outputs import card_file
from saekit.ids import FeatureRef

pytestmark = pytest.mark.browser

UMAP_HEIGHT = 460  # umap_view.js draws into a canvas this tall, fitted with an 18 px pad
UMAP_PAD = 18


@pytest.fixture(scope="module")
def explorer(tiny_llama, tmp_path_factory):  # type: ignore[no-untyped-def]
    return build_explorer(tmp_path_factory.mktemp("explorer") / "out", tiny_llama)


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    from _harness import PageGuard

    guard = PageGuard()
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    guard.attach(page, lambda url: url.startswith(("file:", "data:", "blob:", "about:")))
    yield page
    context.close()
    assert not guard.problems(), guard.problems()


def _open(page, path: Path) -> None:  # type: ignore[no-untyped-def]
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-saekit-ready='1']")


def _expect_card(page, explorer, ref: FeatureRef) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page.wait_for_url(f"**/cards/{card_file(ref)}")
    page.wait_for_selector("body[data-saekit-ready='1']")
    expect(page.locator(".sk-root").first).to_contain_text(f"{ref.feature}")
    expect(page.locator("#saekit-note")).to_be_hidden()


def _expect_note(page, ref: FeatureRef) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    note = page.locator("#saekit-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text(f"No card for {ref.sae} #{ref.feature} in this export")
    expect(note).to_contain_text(f'saekit.explore.feature_card(stats, saes["{ref.sae}"], {ref.feature})')


def _click_point(page, explorer, ref: FeatureRef) -> None:  # type: ignore[no-untyped-def]
    """Click the UMAP point of ``ref`` where umap_view.js draws it (checked through its tooltip)."""
    from playwright.sync_api import expect

    coords = explorer.coords
    x0, x1, y0, y1 = coords.x.min(), coords.x.max(), coords.y.min(), coords.y.max()
    row = coords[(coords.sae == ref.sae) & (coords.feature == ref.feature)].iloc[0]
    box = page.locator("canvas").first.bounding_box()
    width = box["width"]
    k = min((width - 2 * UMAP_PAD) / (x1 - x0), (UMAP_HEIGHT - 2 * UMAP_PAD) / (y1 - y0))
    sx = width / 2 + k * (row.x - (x0 + x1) / 2)
    sy = UMAP_HEIGHT / 2 - k * (row.y - (y0 + y1) / 2)
    x, y = box["x"] + sx, box["y"] + sy * box["height"] / UMAP_HEIGHT
    page.mouse.move(x, y)
    expect(page.locator(".sk-tip")).to_contain_text(f"#{ref.feature}")  # the right point is under the mouse
    page.mouse.click(x, y)


def test_umap_point_opens_its_card_or_says_there_is_none(page, explorer) -> None:  # type: ignore[no-untyped-def]
    _open(page, explorer.out / "umap.html")
    bare = FeatureRef(explorer.small, next(f for f in range(16) if f != explorer.parent))
    _click_point(page, explorer, bare)
    _expect_note(page, bare)
    page.locator("#saekit-note [data-role=close]").click()
    _click_point(page, explorer, explorer.carded)
    _expect_card(page, explorer, explorer.carded)


def test_card_neighbour_opens_its_card_or_says_there_is_none(page, explorer) -> None:  # type: ignore[no-untyped-def]
    _open(page, explorer.out / "cards" / card_file(explorer.carded))
    page.locator(f".sk-nb-row .sk-fid[data-feature='{explorer.bare_neighbour}']").click()
    _expect_note(page, FeatureRef(explorer.large, explorer.bare_neighbour))
    page.locator(f".sk-nb-row .sk-fid[data-feature='{explorer.neighbour}']").click()
    _expect_card(page, explorer, FeatureRef(explorer.large, explorer.neighbour))


def test_splitting_node_opens_its_card_or_says_there_is_none(page, explorer) -> None:  # type: ignore[no-untyped-def]
    _open(page, explorer.out / "splitting.html")
    child = page.locator(".sk-node[data-node='1']")
    feature = int(child.get_attribute("data-feature"))
    child.click()
    _expect_note(page, FeatureRef(explorer.large, feature))
    page.locator(".sk-node[data-node='0']").click()
    _expect_card(page, explorer, FeatureRef(explorer.small, explorer.parent))


def test_index_and_nav_links_lead_to_the_pages(page, explorer) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    page.goto(explorer.index.as_uri())
    page.get_by_role("link", name=str(explorer.carded)).click()
    _expect_card(page, explorer, explorer.carded)
    page.locator("#saekit-nav a", has_text="UMAP").click()
    page.wait_for_url("**/umap.html")
    page.wait_for_selector("body[data-saekit-ready='1']")
    page.locator("#saekit-nav a", has_text="explorer index").click()
    page.wait_for_url("**/index.html")
    expect(page.locator("h1")).to_have_text("saekit explorer")


_CLICKS_ESM = """
export default {
  render({ model, el }) {
    const button = (name, act) => {
      const b = document.createElement("button");
      b.id = name;
      b.textContent = name;
      b.addEventListener("click", act);
      el.appendChild(b);
    };
    button("object", () => model.send({ type: "feature_click", feature: { sae: "b", feature: 4 } }));
    button("ref", () => model.send({ type: "feature_click", ref: { sae: "a", feature: 2 } }));
    button("bare-id", () => model.send({ type: "feature_click", feature: 9 }));
    button("sae", () => model.send({ type: "feature_click", feature: 7, sae: "a" }));
    button("ref-b", () => model.send({ type: "feature_click", feature: { sae: "b", feature: 5 } }));
  },
};
"""


def test_shim_reads_every_click_form(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An id with the message's, the view's or the page's SAE, or a {sae, feature} object."""
    from playwright.sync_api import expect

    from saekit import figures
    from saekit.widgets._base import SaekitView
    from saekit.widgets._standalone import PageLinks

    class Clicks(SaekitView):
        _esm = _CLICKS_ESM

        def to_text(self) -> str:
            return "Clicks"

    (tmp_path / "target.html").write_text("<!doctype html><title>target</title><h1>target</h1>")
    links = PageLinks({FeatureRef("a", 2): "target.html#a2", FeatureRef("b", 5): "target.html#b5"}, sae="c")
    path = figures.export(Clicks(), tmp_path / "clicks.html", links=links)
    note = page.locator("#saekit-note")
    for button, expected in [("object", "No card for b #4"), ("bare-id", "No card for c #9"),
                             ("sae", "No card for a #7"), ("ref", "#a2"), ("ref-b", "#b5")]:
        _open(page, path)
        page.locator(f"#{button}").click()
        if expected.startswith("#"):
            page.wait_for_url(f"**/target.html{expected}")
        else:
            expect(note).to_contain_text(expected)
