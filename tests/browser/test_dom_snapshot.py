"""The DOM every view builds, before and after interactions, against committed snapshots.

Each view is built from tiny fixed data, exported as a standalone page, opened in headless
chromium and driven through a few interactions (hover a token or point, click to pin,
select a feature, drag a lasso, move a slider...). After each step the view's DOM
(``#saekit-view`` inner HTML) and its floating tooltips are recorded. The test compares
them with ``tests/browser/snapshots/<view>.json``, so a refactor of the front-end modules
that changes what they build is caught.

Numbers that come from the page layout (tooltip positions, edge paths, view boxes) are
blanked before the comparison, so other fonts or browsers do not fail it; the script form
below compares raw DOM when asked.

Regenerate the snapshots after an intended DOM change::

    PYTHONPATH=$PWD python tests/browser/test_dom_snapshot.py --write tests/browser/snapshots

Record raw DOM from another copy of ``saekit/widgets/static`` (e.g. the code before a
refactor) and compare two recordings::

    python tests/browser/test_dom_snapshot.py --write /tmp/before --static /tmp/static_orig
    python tests/browser/test_dom_snapshot.py --compare /tmp/before /tmp/after [--raw]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.browser

SNAPSHOTS = Path(__file__).parent / "snapshots"
VIEWPORT = {"width": 1200, "height": 900}
SETTLE_MS = 400  # > the tooltip's 250 ms hide delay and the steering slider's 250 ms debounce

# One interaction: (name, action); action(page) drives the page.
Step = tuple[str, Callable[[Any], None]]


# --- the views ------------------------------------------------------------------------------


def _centre(page: Any, selector: str, nth: int) -> tuple[float, float]:
    box = page.locator(selector).nth(nth).bounding_box()
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


# Plain mouse moves and clicks: a tooltip may cover the element right after it appears,
# which Playwright's locator actions would refuse.
def _hover(selector: str, nth: int = 0) -> Callable[[Any], None]:
    return lambda page: page.mouse.move(*_centre(page, selector, nth))


def _click(selector: str, nth: int = 0, *, shift: bool = False) -> Callable[[Any], None]:
    def run(page: Any) -> None:
        page.mouse.move(*_centre(page, selector, nth))
        if shift:
            page.keyboard.down("Shift")
        page.mouse.down()
        page.mouse.up()
        if shift:
            page.keyboard.up("Shift")
    return run


def _away(page: Any) -> None:
    page.mouse.move(2, 2)


def _fresh(action: Callable[[Any], None]) -> Callable[[Any], None]:
    """Click outside (unpins), let the tooltip hide, then run ``action``."""
    def run(page: Any) -> None:
        page.mouse.click(2, 2)
        page.wait_for_timeout(SETTLE_MS)
        action(page)
    return run


def _token_highlight() -> tuple[Any, list[Step]]:
    from saekit.widgets import TokenDoc, TokenHighlight

    docs = [
        TokenDoc(["<bos>", " The", " cat", " sat", "\n", "\ton", " the", ""],
                 np.array([[0, 0], [0.5, 0], [3, 1], [1, 2], [0, 0], [2, 0.5], [0.25, 3], [0, 0]],
                          np.float32),
                 top_ids=np.array([[-1, -1], [4, -1], [4, 9], [9, 4], [-1, -1], [4, 9], [9, 4], [-1, -1]]),
                 top_values=np.array([[0, 0], [0.5, 0], [3, 1], [2, 1], [0, 0], [2, 0.5], [3, 0.25], [0, 0]]),
                 mask=[1, 0, 0, 0, 0, 0, 0, 0], label="doc A"),
        TokenDoc([" a", " mat", "."], np.array([[1, 0], [0, 1.5], [0, 0]], np.float32),
                 top_ids=np.array([[4, -1], [9, -1], [-1, -1]]),
                 top_values=np.array([[1, 0], [1.5, 0], [0, 0]])),
    ]
    view = TokenHighlight(docs, feature_ids=[4, 9], feature_labels={4: "cats", 9: "sitting"},
                          title="Highlight")
    steps: list[Step] = [
        ("hover-token", _hover(".sk-doc-text .sk-tok", 2)),
        ("pin-token", _click(".sk-doc-text .sk-tok", 3)),
        ("unpin-away", _fresh(_away)),
        ("select-feature", _click(".sk-chip[data-feature='9']")),
        ("overlay-feature", _click(".sk-chip[data-feature='4']", shift=True)),
        ("hover-masked", _fresh(_hover(".sk-doc-text .sk-tok", 0))),
        ("pin-other", _fresh(_click(".sk-doc-text .sk-tok", 5))),
        ("tip-feature-click", _click(".sk-tip .sk-fid", 0)),
    ]
    return view, steps


def _example(tokens: list[str], acts: Any) -> Any:
    """A card/splitting example: ``tokens`` with the feature's activation at each."""
    from saekit.analysis.stats import Example

    acts = np.asarray(acts, np.float32)
    return Example(0, int(np.argmax(acts)), float(acts.max()), tuple(tokens), np.zeros(len(tokens), np.int64),
                   acts, int(np.argmax(acts)))


def _feature_card() -> tuple[Any, list[Step]]:
    from saekit.analysis.results import LogitEffects, Neighbours
    from saekit.analysis.stats import FeatureView, QuantileBin
    from saekit.widgets import FeatureCard

    tokens = ["<bos>", " The", " cat", "\n", " sat"]
    acts = np.array([0, 0.5, 3.0, 0, 1.5], np.float32)
    edges = np.linspace(0, 3, 7)
    logits = LogitEffects(pd.DataFrame({"feature": 4, "direction": ["top", "top", "bottom"],
                                        "rank": [0, 1, 0], "token_id": [1, 2, 3],
                                        "token": [" meow", " purr", " dog"], "logit": [1.0, 0.5, -0.5]}),
                          "res-8")
    near = Neighbours(pd.DataFrame({"feature": 4, "rank": [0, 1], "neighbour": [9, 11],
                                    "cosine": [0.5, -0.25]}), "res-8")
    card = FeatureCard.from_result(FeatureView(
        sae="res-8", feature=4, density=0.002, max_act=3.0, mean_act=0.5, mean_active_act=1.1, n_active=78,
        top=(_example(tokens, acts), _example([" a", " cat"], [0, 2.5])),
        quantiles=(QuantileBin(0, 0.0, 1.5, (_example(tokens, acts / 4),)),), random=(),
        hist_edges=edges, hist_counts=np.array([40.0, 20, 10, 5, 2, 1]), label="cats",
        logits=logits, neighbours=near))
    steps: list[Step] = [
        ("hover-token", _hover(".sk-ex-text .sk-tok", 2)),
        ("hover-masked", _fresh(_hover(".sk-ex-text .sk-tok", 0))),
        ("click-neighbour", _fresh(_click(".sk-nb-row .sk-fid", 1))),
    ]
    return card, steps


def _steering() -> tuple[Any, list[Step]]:
    from saekit.widgets import Steering

    steer = Steering(lambda p, c: (p + " baseline", p + " steered"),
                     [4, {"feature_id": 9, "label": "sitting", "value": 2.0, "enabled": False}],
                     prompt="Hello")
    steer.wait(5)
    steer.elapsed = 0.25  # the measured time varies; freeze it
    slide = """() => { const r = document.querySelector("input[type=range][data-feature='4']");
      r.value = "3"; r.dispatchEvent(new Event("input")); }"""
    steps: list[Step] = [
        ("slide", lambda page: page.evaluate(slide)),
        ("copy-code", _click("button:has-text('Copy as code')")),
    ]
    return steer, steps


def _training_monitor() -> tuple[Any, list[Step]]:
    from saekit.widgets import TrainingMonitor

    mon = TrainingMonitor(min_interval=0)
    for step in range(0, 200, 10):
        mon.update(step, {"a": {"l0": 30 - step / 10, "mse": 1 / (1 + step)},
                          "b": {"l0": 20 + step / 20, "mse": 2 / (2 + step)}})

    def move(page: Any) -> None:
        box = page.locator(".sk-chart svg").first.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.4)

    steps: list[Step] = [
        ("hover-chart", move),
        ("leave-chart", _away),
        ("toggle-log", _click(".sk-chart .sk-open", 1)),
    ]
    return mon, steps


def _umap() -> tuple[Any, list[Step]]:
    from saekit.analysis.results import UmapMap
    from saekit.widgets import UmapView

    coords = pd.DataFrame({"sae": ["a", "a", "a", "b", "b", "b"], "feature": [0, 5, 7, 0, 1, 3],
                           "x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "y": [0.0, 2.0, 1.0, 3.0, 0.5, 2.5]})
    view = UmapView.from_result(UmapMap(coords), labels=["zero", "five", "", "b0", "b1", "b3"],
                    density=[0.5, 0.0, 1e-3, 0.25, 0.01, 0.1], cluster=[0, 1, 1, -1, 2, 0], title="Map")

    def point(page: Any, i: int) -> tuple[float, float]:
        # the view's fit: pad 18, height 460, y flipped (see umap_view.js)
        box = page.locator(".sk-umap-plot canvas").bounding_box()
        w, hgt, pad = box["width"], 460, 18
        xs, ys = coords["x"].to_numpy(), coords["y"].to_numpy()
        k = min((w - 2 * pad) / (xs.max() - xs.min()), (hgt - 2 * pad) / (ys.max() - ys.min()))
        tx, ty = w / 2 - k * (xs.min() + xs.max()) / 2, hgt / 2 + k * (ys.min() + ys.max()) / 2
        return box["x"] + k * xs[i] + tx, box["y"] - k * ys[i] + ty

    def lasso(page: Any) -> None:
        box = page.locator(".sk-umap-plot canvas").bounding_box()
        x0, y0, x1, y1 = box["x"] + 3, box["y"] + 3, box["x"] + box["width"] / 2, box["y"] + box["height"] - 3
        page.mouse.move(x0, y0)
        page.mouse.down()
        for x, y in [(x1, y0), (x1, y1), (x0, y1), (x0, y0 + 1)]:
            page.mouse.move(x, y, steps=4)
        page.mouse.up()

    steps: list[Step] = [
        ("hover-point", lambda page: page.mouse.move(*point(page, 1))),
        ("leave-point", _away),
        ("colour-density", _click(".sk-seg button[data-value='density']")),
        ("colour-cluster", _click(".sk-seg button[data-value='cluster']")),
        ("lasso", lasso),
        ("hover-item", _fresh(_hover(".sk-umap-item", 0))),
        ("pan-tool", _click(".sk-seg button[data-value='pan']")),
        ("clear-selection", _click("button:has-text('Clear selection')")),
    ]
    return view, steps


def _splitting() -> tuple[Any, list[Step]]:
    from saekit.analysis.results import SplittingTree
    from saekit.widgets import FeatureSplitting, SplitNode

    ex = [_example([" the", " cat", "\n", " sat"], [0.0, 2.0, 0.0, 1.0])]
    nodes = {("s", 1): SplitNode("s", 1, "animals", ex, max_act=2.0, density=0.01),
             ("m", 0): SplitNode("m", 0, "cats", ex, max_act=2.0),
             ("m", 2): SplitNode("m", 2, "dogs", [], density=0.002),
             ("l", 5): SplitNode("l", 5, "kittens", ex)}
    rows = [(0, "s", 1, "m", 0, 0.9), (0, "s", 1, "m", 2, 0.6), (1, "m", 0, "l", 5, 0.7)]
    tree = SplittingTree(pd.DataFrame(rows, columns=["level", "parent_sae", "parent", "child_sae", "child",
                                                     "cosine"]), "s")
    view = FeatureSplitting.from_result(tree, ("s", 1), describe=lambda sae, f: nodes[sae, f], title="Split")
    steps: list[Step] = [
        ("hover-node", _hover(".sk-node[data-node='2']")),
        ("select-node", _click(".sk-node[data-node='1']")),
        ("hover-token", _fresh(_hover(".sk-node-ex .sk-tok", 1))),
    ]
    return view, steps


def _logit_attribution() -> tuple[Any, list[Step]]:
    from saekit.analysis.results import Attribution, FeatureAblation, LogitEffects
    from saekit.widgets import LogitAttribution

    tokens = ["<bos>", " The", " cat", " sat", "\n"]
    # row pos: the effect on predicting token pos + 1 (shown under that token)
    ablation = FeatureAblation(pd.DataFrame({
        "feature": 2, "pos": range(5), "token_id": range(5), "token": tokens,
        "activation": [0.0, 0.5, 2.0, 1.0, 0.0],
        "next_token_id": [1, 2, 3, 4, -1], "next_token": [*tokens[1:], ""],
        "delta": [-1.0, 0.5, 0.01, -0.3, np.nan]}), "res-8", np.array([1, 0, 0, 0, 0], bool))
    logits = LogitEffects(pd.DataFrame({"feature": 2, "direction": ["top", "bottom"], "rank": [0, 0],
                                        "token_id": [7, 8], "token": [" meow", " dog"],
                                        "logit": [1.0, -0.5]}), "res-8")
    ranking = Attribution(pd.DataFrame({"sae": "res-8", "pos": 2, "feature": [5, 2, 8],
                                        "activation": [2.0, 1.0, 0.5], "attribution": [1.0, -0.5, 0.25]}),
                          "res-8", " sat", token=3)
    view = LogitAttribution.from_result(ablation, logits, label="cats", feature_labels={5: "five", 2: "self"},
                                        ranking=ranking)
    steps: list[Step] = [
        ("hover-token", _hover(".sk-la-text .sk-tok", 2)),
        ("pin-token", _click(".sk-la-text .sk-tok", 1)),
        ("hover-masked", _fresh(_hover(".sk-la-text .sk-tok", 0))),
    ]
    return view, steps


def _context_ablation() -> tuple[Any, list[Step]]:
    from saekit.widgets import ContextAblation

    view = ContextAblation(["<bos>", " The", " cat", " sat", " on"], [0.0, -1.0, 0.5, -0.25, 0.0],
                           activation_full=1.5, feature_id=1, label="cats", sae_name="res-8",
                           ablated=[0, 1, 1, 1, 0], title="Ablation")
    steps: list[Step] = [
        ("hover-token", _hover(".sk-ca-text .sk-tok", 2)),
        ("pin-token", _click(".sk-ca-text .sk-tok", 1)),
        ("hover-rank", _fresh(_hover(".sk-ca-rank", 0))),
        ("hover-last", _fresh(_hover(".sk-ca-text .sk-tok", 4))),
    ]
    return view, steps


VIEWS: dict[str, Callable[[], tuple[Any, list[Step]]]] = {
    "token_highlight": _token_highlight,
    "feature_card": _feature_card,
    "steering": _steering,
    "training_monitor": _training_monitor,
    "umap_view": _umap,
    "splitting": _splitting,
    "logit_attribution": _logit_attribution,
    "context_ablation": _context_ablation,
}


# --- recording ------------------------------------------------------------------------------

_JS_STATE = """() => ({
  view: document.getElementById("saekit-view").innerHTML,
  tips: [...document.querySelectorAll("body > .sk-tip")].map((t) => t.outerHTML),
  canvas: [...document.querySelectorAll("#saekit-view canvas")].map((c) => {
    const url = c.toDataURL();
    let hash = 0;
    for (let i = 0; i < url.length; i++) hash = (Math.imul(hash, 31) + url.charCodeAt(i)) | 0;
    return `${url.length}:${hash}`;
  }),
})"""


def _with_static(view: Any, static: Path) -> Any:
    """Give ``view`` the front-end module and CSS read from another ``static`` folder."""
    from saekit.widgets import _bundle

    entry = f"{type(view).__module__.rsplit('.', 1)[-1]}.js"  # token_highlight.py -> token_highlight.js
    saved = _bundle.STATIC
    _bundle.STATIC = static
    try:
        esm = _bundle.bundle.__wrapped__(entry)
        css = "".join(_bundle.read_css.__wrapped__(n) for n in _css_names(view))
    finally:
        _bundle.STATIC = saved
    view._esm, view._css = esm, css
    return view


def _css_names(view: Any) -> list[str]:
    from saekit.widgets import _bundle

    names = ["saekit.css"]
    if _bundle.read_css("analysis_views.css") in str(view._css):
        names.append("analysis_views.css")
    return names


def _settle(page: Any) -> None:
    page.wait_for_timeout(SETTLE_MS)
    page.evaluate("() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))")


def record(browser: Any, name: str, folder: Path, static: Path | None = None) -> list[dict[str, Any]]:
    """Open view ``name`` as a standalone page, run its steps, return the DOM after each."""
    from _harness import PageGuard

    from saekit import figures

    view, steps = VIEWS[name]()
    if static is not None:
        _with_static(view, static)
    path = figures.export(view, folder / f"{name}.html")
    context = browser.new_context(viewport=VIEWPORT, device_scale_factor=1)
    page = context.new_page()
    page.set_default_timeout(10_000)
    guard = PageGuard()
    guard.attach(page, lambda url: url.startswith(("file:", "data:", "blob:", "about:")))
    states = []
    try:
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-saekit-ready='1']", timeout=10_000)
        _settle(page)
        states.append({"step": "initial", **page.evaluate(_JS_STATE)})
        for step, action in steps:
            action(page)
            _settle(page)
            states.append({"step": step, **page.evaluate(_JS_STATE)})
    finally:
        context.close()
    assert not guard.problems(), guard.problems()
    return states


# Layout-derived numbers: positions of tooltips and of the UMAP hover anchor, the
# splitting view's edge geometry, SVG view boxes that follow the measured width.
_LAYOUT = [
    (re.compile(r"(left|top): -?[\d.]+px"), r"\1: #px"),
    (re.compile(r'(viewBox)="[^"]*"'), r'\1="#"'),
    (re.compile(r'<path d="M[^"]*" fill="none" stroke="(#c2410c|#8c959f)"'),
     r'<path d="#" fill="none" stroke="\1"'),
    (re.compile(r'<text x="[-\d.]+" y="[-\d.]+" text-anchor="middle">([^<]*)</text></g>'),
     r'<text x="#" y="#" text-anchor="middle">\1</text></g>'),
    (re.compile(r'<rect x="[-\d.]+" y="[-\d.]+" width="30" height="13" rx="3">'),
     '<rect x="#" y="#" width="30" height="13" rx="3">'),
    (re.compile(r'<canvas width="\d+" height="\d+"'), '<canvas width="#" height="#"'),
]


def normalise(states: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def norm(html: str) -> str:
        for pattern, repl in _LAYOUT:
            html = pattern.sub(repl, html)
        return html

    # canvas pixels (a hash, in raw recordings only) depend on the rasteriser: not compared here
    return [{"step": s["step"], "view": norm(s["view"]), "tips": [norm(t) for t in s["tips"]]}
            for s in states]


def write(states: list[dict[str, Any]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(states, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def differences(expected: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[str]:
    """Readable differences between two recordings of one view (empty when equal)."""
    out = []
    if [s["step"] for s in expected] != [s["step"] for s in got]:
        return [f"steps differ: {[s['step'] for s in expected]} != {[s['step'] for s in got]}"]
    for a, b in zip(expected, got):
        for part in ("view", "tips", "canvas"):
            if a.get(part, []) != b.get(part, []):
                x, y = (json.dumps(s.get(part, []), ensure_ascii=False) for s in (a, b))
                i = next((k for k in range(min(len(x), len(y))) if x[k] != y[k]), min(len(x), len(y)))
                out.append(f"{a['step']}/{part} differs at {i}:\n  expected …{x[max(0, i - 80):i + 120]}\n"
                           f"  got      …{y[max(0, i - 80):i + 120]}")
    return out


# --- the test -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_view_dom_matches_snapshot(browser, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    snapshot = SNAPSHOTS / f"{name}.json"
    got = record(browser, name, tmp_path)
    assert snapshot.is_file(), (f"no snapshot {snapshot}; write it with "
                                "`python tests/browser/test_dom_snapshot.py --write tests/browser/snapshots`")
    expected = json.loads(snapshot.read_text(encoding="utf-8"))
    problems = differences(normalise(expected), normalise(got))
    assert not problems, (f"{name}: the DOM differs from {snapshot.name}. If the change is intended, "
                          "regenerate the snapshots (see this module's docstring).\n" + "\n".join(problems))


# --- script ---------------------------------------------------------------------------------


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", type=Path, help="record every view into this folder")
    parser.add_argument("--static", type=Path,
                        help="front-end folder to record from (default: the package's)")
    parser.add_argument("--only", nargs="*", default=sorted(VIEWS))
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("EXPECTED", "GOT"))
    parser.add_argument("--raw", action="store_true", help="compare without blanking layout numbers")
    args = parser.parse_args(argv)
    if args.write:
        from _harness import CHROMIUM, CHROMIUM_ARGS
        from playwright.sync_api import sync_playwright

        with sync_playwright() as pw, tempfile.TemporaryDirectory() as tmp:
            chrome = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            for name in args.only:
                write(record(chrome, name, Path(tmp), args.static), args.write / f"{name}.json")
                print("recorded", name)
            chrome.close()
    if args.compare:
        failed = 0
        for path in sorted(args.compare[0].glob("*.json")):
            a = json.loads(path.read_text(encoding="utf-8"))
            b = json.loads((args.compare[1] / path.name).read_text(encoding="utf-8"))
            diffs = differences(a, b) if args.raw else differences(normalise(a), normalise(b))
            print(f"{path.stem}: {'identical' if not diffs else 'DIFFERENT'} ({len(a)} states)")
            for d in diffs:
                print("  ", d)
            failed += bool(diffs)
        return 1 if failed else 0
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
