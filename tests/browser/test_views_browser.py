"""Views in a real JupyterLab, driven by Playwright with Debian's chromium.

Hover and click on token highlighting, drag a steering slider, check the page and the
kernel agree, and take a screenshot. The harness (conftest.py) fails the test on any
console/page error and on any request that leaves 127.0.0.1.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

NOTEBOOK = Path(__file__).parent / "views_smoke.ipynb"
WHITE = "rgb(255, 255, 255)"


def _background(locator) -> str:  # type: ignore[no-untyped-def]
    return locator.evaluate("e => getComputedStyle(e).backgroundColor")


def test_token_highlight_and_steering_in_jupyterlab(jupyter_page) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import expect

    nb = jupyter_page(NOTEBOOK)
    nb.run_all()
    page = nb.page

    # --- token highlighting: hover shows the token's top features ---------------------
    th = page.locator(".sk-th")
    expect(th.locator(".sk-tok")).to_have_count(10)
    hostile = th.locator(".sk-tok[data-i='9']")
    expect(hostile).to_have_text("<script>alert(1)</script>")  # shown as text, not markup
    cat, sat = th.locator(".sk-tok[data-i='2']"), th.locator(".sk-tok[data-i='3']")
    assert _background(cat) != WHITE and _background(sat) != WHITE  # feature 3 is shown
    assert _background(th.locator(".sk-tok[data-i='0']")) != _background(cat)  # BOS masked
    cat.hover()
    tip = page.locator(".sk-tip")  # attached to <body> so that no output area clips it
    expect(tip).to_be_visible()
    expect(tip).to_contain_text("Top features at this token")
    rows = tip.locator(".sk-tip-row")
    expect(rows).to_have_count(4)  # the shown feature + 3 top features
    expect(rows.nth(2)).to_contain_text("#11")
    expect(rows.nth(2)).to_contain_text("1.5")

    # --- clicking a feature id switches the highlighting, in the page and in Python -----
    tip.locator("button.sk-fid[data-feature='11']").click()
    expect(th.locator(".sk-chip.sk-on[data-feature='11']")).to_be_visible()
    expect(sat).to_have_css("background-color", WHITE)  # " sat" has no feature 11
    assert _background(cat) != WHITE
    expect(page.get_by_text("python selected_feature = 11")).to_be_visible()
    assert nb.execute("print(th.selected_feature, th.shown_features)").strip() == "11 [11]"

    # --- the ↗ button asks the controller to open a feature's card (Python callback) ----
    cat.hover()
    tip.locator(".sk-tip-row", has=page.locator("button.sk-fid[data-feature='7']")) \
        .locator("button.sk-open").click()
    expect(page.get_by_text("python opened = 7")).to_be_visible()

    # --- steering: drag the slider; the page shows busy, then the new text --------------
    steer = page.locator(".sk-steer")
    steered = steer.locator("[data-role=steered]")
    expect(steered).to_have_text("THE CAT SAT [3=1.0]")
    expect(steer.locator("[data-role=baseline]")).to_have_text("The cat sat and then it rained.")
    slider = steer.locator("input[type=range]")
    slider.scroll_into_view_if_needed()
    box = slider.bounding_box()
    assert box is not None
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + 0.1 * box["width"], y)
    page.mouse.down()
    page.mouse.move(box["x"] + 0.75 * box["width"], y, steps=8)
    page.mouse.up()
    value = float(slider.input_value())
    assert 5.0 <= value <= 9.0, value
    expect(steer).to_have_attribute("aria-busy", "true")
    expect(steer.locator(".sk-status")).to_contain_text("Generating")
    cat.hover()  # the page stays responsive while the kernel generates
    expect(tip).to_be_visible()
    expected = f"THE CAT SAT [3={value:.1f}]"
    expect(steered).to_have_text(expected)
    expect(steer).to_have_attribute("aria-busy", "false")
    expect(page.get_by_text(f"python steered = {expected}")).to_be_visible()
    out = nb.execute("print(st.values, st.clamps, repr(st.steered))")
    assert out.strip() == f"[{value}] {{3: {value}}} {expected!r}"
    expect(steer.locator(".sk-status")).to_contain_text(re.compile(r"Generated in 0\.\d\d s"))

    # --- copy as code shows the equivalent call ------------------------------------------
    steer.get_by_role("button", name="Copy as code").click()
    expect(steer.locator(".sk-code")).to_have_text(
        f"baseline, steered = generate_fn('The cat sat', {{3: {value}}})")

    # --- a new prompt from the text box regenerates --------------------------------------
    steer.locator("textarea.sk-prompt").fill("A dog ran")
    steer.get_by_role("button", name="Generate").click()
    expect(steered).to_have_text(f"A DOG RAN [3={value:.1f}]")
    expect(steer.locator("[data-role=baseline]")).to_have_text("A dog ran and then it rained.")

    cat.hover()
    shot = nb.screenshot("views.png")
    assert shot.stat().st_size > 10_000
