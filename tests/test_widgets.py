"""Views: synced state, plain-text forms, validation and escaping (no browser needed)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

from saekit._html import escape, json_for_script, text_table, visible_token
from saekit.analysis.results import LogitEffects, Neighbours
from saekit.analysis.stats import Example, FeatureView, QuantileBin
from saekit.errors import SaekitError
from saekit.ids import FeatureRef
from saekit.widgets import TokenDoc, TokenHighlight, _bundle
from saekit.widgets._base import as_bytes, from_bytes

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", '"', "</script>"]
VIEW_MODULES = [
    "token_highlight.js", "feature_card.js", "steering.js", "training_monitor.js"]


# --- infrastructure ---------------------------------------------------------------------


@pytest.mark.parametrize("entry", VIEW_MODULES)
def test_bundle_is_one_self_contained_module(entry: str) -> None:
    src = _bundle.bundle(entry)
    assert src.count("export default") == 1
    assert "import {" not in src and 'from "./' not in src
    assert not re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML|document\.write", src)
    assert "function h(" in src  # the shared helpers were inlined
    if shutil.which("node") is None:
        pytest.skip("node is not installed: the syntax check of the bundled module needs it")
    proc = subprocess.run(["node", "--check", "--input-type=module"], input=src, text=True,
                          capture_output=True)
    assert proc.returncode == 0, proc.stderr


def test_bundle_rejects_unknown_files_and_import_forms(tmp_path, monkeypatch) -> None:
    (tmp_path / "a.js").write_text('import x from "./b.js";\nexport default {};\n')
    (tmp_path / "c.js").write_text('import { nope } from "./d.js";\nexport default {};\n')
    (tmp_path / "d.js").write_text("export function yes() {}\n")
    monkeypatch.setattr(_bundle, "STATIC", tmp_path)
    _bundle.bundle.cache_clear()
    try:
        with pytest.raises(SaekitError, match="only `import"):
            _bundle.bundle("a.js")
        with pytest.raises(SaekitError, match=r"imports \['nope'\] from d.js"):
            _bundle.bundle("c.js")
        with pytest.raises(SaekitError, match="not found"):
            _bundle.bundle("missing.js")
    finally:
        _bundle.bundle.cache_clear()


def test_as_bytes_round_trip_and_errors() -> None:
    arr = np.arange(6, dtype=np.float64).reshape(2, 3)
    data = as_bytes(arr, "f4", name="acts", ndim=2)
    assert len(data) == 6 * 4
    np.testing.assert_array_equal(from_bytes(data, "f4", (2, 3)), arr.astype(np.float32))
    assert np.frombuffer(data, "<f4")[5] == 5.0  # little endian, C order
    with pytest.raises(SaekitError, match="must have 2 dimensions, got shape \\(6,\\)"):
        as_bytes(np.zeros(6), "f4", name="acts", ndim=2)
    with pytest.raises(SaekitError, match="NaN or infinite"):
        as_bytes([1.0, float("nan")], "f4", name="acts")


def test_html_helpers_escape_hostile_strings() -> None:
    for token in HOSTILE:
        out = escape(token)
        assert "<" not in out and ">" not in out and '"' not in out
    blob = json_for_script({"t": HOSTILE})
    assert "<" not in blob and ">" not in blob
    assert json.loads(blob) == {"t": HOSTILE}
    assert visible_token("a\n\tb\r") == "a↵⇥b"
    assert visible_token("") == "∅"
    assert text_table([("x", 0.5), ("yy", 12)], ["k", "v"]).splitlines() == [
        "k   v", "--  ---", "x   0.5", "yy   12"]


def _send_from_page(view, content: dict) -> None:  # type: ignore[no-untyped-def]
    """Deliver a custom message the way ipywidgets does when the page calls model.send()."""
    view._handle_msg({"content": {"data": {"method": "custom", "content": content}},
                      "buffers": []})


# --- TokenHighlight ---------------------------------------------------------------------


def _docs() -> list[TokenDoc]:
    d0 = TokenDoc(
        ["<bos>", "The", " cat", "\n", HOSTILE[0]],
        np.array([[9.0, 0], [0.5, 1], [2, 0], [0, 0], [1, 3]], np.float32),
        top_ids=np.array([[0, -1], [3, 9], [3, 1], [1, 2], [4, 3]]),
        top_values=np.array([[9, 0], [1, 0.5], [2, 1], [0.1, 0.05], [3, 1]], np.float32),
        mask=[True, False, False, False, False],
        label="first",
    )
    d1 = TokenDoc(["<bos>", HOSTILE[1]], np.array([[0.0, 0], [4, 0.25]]),
                  top_ids=np.array([[-1], [3]]), top_values=np.array([[0.0], [4]]), mask=[1, 0])
    return [d0, d1]


def test_token_highlight_synced_state() -> None:
    view = TokenHighlight(_docs(), feature_ids=[3, 4], feature_labels={3: "cats"})
    state, buffers = view.view_state()
    assert state["tokens"] == [["<bos>", "The", " cat", "\n", HOSTILE[0]], ["<bos>", HOSTILE[1]]]
    assert state["doc_labels"] == ["first", ""]
    assert state["feature_ids"] == [3, 4]
    assert state["feature_labels"] == {"3": "cats"}
    assert state["selected_feature"] == 3 and state["overlay"] == [] and state["top_k"] == 2
    assert set(buffers) == {"acts", "mask", "top_ids", "top_values"}
    acts = from_bytes(buffers["acts"], "f4", (7, 2))
    np.testing.assert_array_equal(acts[:, 0], [9, 0.5, 2, 0, 1, 0, 4])
    np.testing.assert_array_equal(from_bytes(buffers["mask"], "u1"), [1, 0, 0, 0, 0, 1, 0])
    ids = from_bytes(buffers["top_ids"], "i4", (7, 2))
    np.testing.assert_array_equal(ids[5:], [[-1, -1], [3, -1]])  # second doc padded to k=2
    payload = view.view_state_json()
    assert set(payload["acts"]) == {"$b64"}
    json.dumps(payload)  # JSON-able


def test_token_highlight_values_scale_and_text() -> None:
    view = TokenHighlight(_docs(), feature_ids=[3, 4])
    assert view.scale_max(3) == 4.0  # the masked 9.0 does not count
    view.selected_feature = 1  # not a column: values come from the top-k lists
    np.testing.assert_allclose(view.feature_values(1), [0, 0, 1, 0.1, 0, 0, 0])
    view.selected_feature = 3
    assert view.to_text() == (
        "TokenHighlight · 2 documents · 7 tokens · features #3 #4 · showing #3 (max 4)\n"
        "[first] ⟦<bos>⟧[The:0.5][ cat:2]↵[<script>alert(1)</script>:1]\n"
        "[1] ⟦<bos>⟧[<img src=x onerror=alert(1)>:4]"
    )
    view.overlay = [3, 4]
    assert view.shown_features == [3, 4]
    assert "[The:#3=0.5,#4=1]" in repr(view)
    view.vmax = 10.0
    assert view.scale_max(4) == 10.0
    assert view._repr_mimebundle_()[0]["text/plain"] == view.to_text()


def test_token_highlight_single_column_and_defaults() -> None:
    view = TokenHighlight([(["a", "b"], np.array([1.0, 2.0]))])
    assert view.feature_ids == [0] and view.selected_feature == 0 and view.top_k == 0
    assert view.to_text().endswith("[0] [a:1][b:2]")


@pytest.mark.parametrize(
    ("docs", "ids", "match"),
    [
        ([], None, "at least one document"),
        ([(["a", "b"], np.zeros((3, 1)))], None, "n_tokens = 2 .* got \\(3, 1\\)"),
        ([(["a"], np.zeros((1, 2)))], [1], "feature_ids has 1 ids but the activations have 2"),
        ([(["a"], np.zeros((1, 1))), (["b"], np.zeros((1, 2)))], None, "same number of feature"),
        ([TokenDoc(["a"], [1.0], mask=[1, 0])], None, "mask must have shape \\[1\\]"),
        ([TokenDoc(["a"], [1.0], top_ids=[[1]]), TokenDoc(["b"], [1.0])], None, "every document"),
        ([TokenDoc(["a"], [1.0], top_ids=[[1, 2]], top_values=[[1.0]])], None, "top_values must"),
    ],
)
def test_token_highlight_validation(docs, ids, match) -> None:
    with pytest.raises(SaekitError, match=match):
        TokenHighlight(docs, feature_ids=ids)


def test_feature_click_message_reaches_handlers() -> None:
    view = TokenHighlight(_docs(), feature_ids=[3, 4], title="topk-8")
    seen: list[FeatureRef] = []
    view.on_feature_click(seen.append)
    _send_from_page(view, {"type": "feature_click", "feature": 9})
    _send_from_page(view, {"type": "feature_click", "feature": 9})  # same id again
    _send_from_page(view, {"type": "feature_click", "feature": "9"})  # ignored
    _send_from_page(view, {"type": "other", "feature": 1})
    ref = FeatureRef("topk-8", 9)  # a bare id is a feature of the view's own SAE (its title)
    assert seen == [ref, ref] and view.requested == ref
    view.on_feature_click(seen.append, remove=True)
    view.request_feature(FeatureRef("other", 2))
    assert seen == [ref, ref] and view.requested == FeatureRef("other", 2)


# --- FeatureCard ------------------------------------------------------------------------


def _example(tokens: list[str], acts: list[float]) -> Example:
    return Example(0, 0, max(acts), tuple(tokens), np.zeros(len(tokens), np.int64),
                   np.asarray(acts, np.float32), int(np.argmax(acts)))


def _card_view(feature: int = 42) -> FeatureView:
    logits = pd.DataFrame({"feature": feature, "direction": ["top", "top", "bottom"], "rank": [0, 1, 0],
                           "token_id": [1, 2, 3], "token": [" cats", '"', " dog"],
                           "logit": [1.25, 0.5, -0.75]})
    near = pd.DataFrame({"feature": feature, "rank": [0, 1], "neighbour": [7, 9], "cosine": [0.5, -0.25]})
    return FeatureView(
        sae="toy", feature=feature, density=0.0125, max_act=4.0, mean_act=0.5, mean_active_act=1.5,
        n_active=12, top=(_example([" a", HOSTILE[0]], [1.0, 4.0]), _example([" b", "\n"], [2.0, 0.0])),
        quantiles=(QuantileBin(0, 0.0, 2.0, (_example([" c"], [0.5]),)), QuantileBin(1, 2.0, 4.0, ())),
        random=(), hist_edges=np.array([0.0, 1, 2, 4]), hist_counts=np.array([10.0, 5, 1]),
        label=HOSTILE[1], logits=LogitEffects(logits, "toy"), neighbours=Neighbours(near, "toy"),
    )


def test_feature_card_synced_state_snapshot() -> None:
    from saekit.widgets import FeatureCard

    card = FeatureCard.from_result(_card_view())
    state, buffers = card.view_state()
    assert state == {
        "feature_id": 42,
        "label": HOSTILE[1],
        "sae_name": "toy",
        "stats": [["density", 0.0125, "pct"], ["max", 4.0, "num"], ["mean", 1.5, "num"]],
        "groups": ["Top activations", "0 – 2"],
        "ex_tokens": [[" a", HOSTILE[0]], [" b", "\n"], [" c"]],
        "ex_group": [0, 0, 1],
        "scale_max": 4.0,
        "hist_xlabel": "log10 activation",
        "top_logits": [[" cats", 1.25], ['"', 0.5]],
        "bottom_logits": [[" dog", -0.75]],
        "neighbours": [[7, 0.5], [9, -0.25]],
    }
    np.testing.assert_array_equal(from_bytes(buffers["ex_acts"], "f4"), [1, 4, 2, 0, 0.5])
    np.testing.assert_array_equal(from_bytes(buffers["ex_mask"], "u1"), [0, 0, 0, 0, 0])
    np.testing.assert_array_equal(from_bytes(buffers["hist_edges"], "f8"), [0, 1, 2, 4])
    np.testing.assert_array_equal(from_bytes(buffers["hist_counts"], "f8"), [10, 5, 1])


def test_feature_card_text_form() -> None:
    from saekit.widgets import FeatureCard

    lines = FeatureCard.from_result(_card_view()).to_text().splitlines()
    assert lines[:6] == [
        "Feature #42 · toy · <img src=x onerror=alert(1)>",
        "density 1.25% · max 4 · mean 1.5",
        "Top activations:",
        "       4  [ a:1][<script>alert(1)</script>:4]",
        "       2  [ b:2]↵",
        "0 – 2:",
    ]
    assert lines[7] == "Histogram (log10 activation):"
    assert lines[8].split() == ["0", "–", "1", "████████████████████████", "10"]
    assert lines[-3:] == [
        "Top logits: ' cats' 1.25, '\"' 0.5",
        "Bottom logits: ' dog' -0.75",
        "Neighbours: #7 (0.5), #9 (-0.25)",
    ]


def test_feature_card_update_and_click() -> None:
    from saekit.widgets import FeatureCard

    card = FeatureCard.from_result(_card_view(1))
    opened: list[FeatureRef] = []
    card.on_feature_click(lambda ref: card.update(_card_view(ref.feature)))
    card.on_feature_click(opened.append)
    _send_from_page(card, {"type": "feature_click", "feature": 7})
    assert opened == [FeatureRef("toy", 7)] == [card.requested] and card.feature_id == 7
    assert card.scale_max == 4.0 and len(card.examples()) == 3


def test_feature_card_validation() -> None:
    from saekit.widgets import FeatureCard

    with pytest.raises(SaekitError, match="one value per token \\(2\\)"):
        FeatureCard.from_result(dataclasses.replace(_card_view(), top=(dataclasses.replace(
            _example(["a", "b"], [1.0, 2.0]), acts=np.array([1.0])),)))
    with pytest.raises(SaekitError, match="n_bins \\+ 1 edges"):
        FeatureCard.from_result(dataclasses.replace(_card_view(), hist_edges=np.array([0.0, 1.0])))
    with pytest.raises(SaekitError, match="shows a FeatureView"):
        FeatureCard(42)  # type: ignore[arg-type]


# --- Steering ---------------------------------------------------------------------------


def _fake_generate(prompt: str, clamps: dict[int, float]) -> tuple[str, str]:
    steer = " ".join(f"{f}:{v:g}" for f, v in sorted(clamps.items()))
    return prompt + "!", f"{prompt.upper()} [{steer}]"


def test_steering_generates_on_changes_and_syncs_state() -> None:
    from saekit.widgets import Steering, SteerSlider

    view = Steering(_fake_generate, [SteerSlider(3, "cats", value=2.0, min=0, max=8), 5],
                    prompt="hi")
    assert view.wait(5)
    assert (view.baseline, view.steered) == ("hi!", "HI [3:2 5:0]")
    assert view.sliders == [
        {"feature_id": 3, "label": "cats", "initial": 2.0, "min": 0, "max": 8, "step": 0.1},
        {"feature_id": 5, "label": "", "initial": 0.0, "min": -10.0, "max": 10.0, "step": 0.1},
    ]
    assert view.values == [2.0, 0.0] and view.enabled == [True, True]
    view.values = [6.5, 0.0]  # what a slider move in the page does
    assert view.wait(5) and view.steered == "HI [3:6.5 5:0]"
    assert view.shown_clamps == [[3, 6.5], [5, 0.0]]
    view.set_value(5, -1.0, enabled=False)
    assert view.wait(5) and view.steered == "HI [3:6.5]" and view.clamps == {3: 6.5}
    view.prompt = "<script>x</script>"
    assert view.wait(5) and view.baseline == "<script>x</script>!"
    assert view.code == "baseline, steered = generate_fn('<script>x</script>', {3: 6.5})"
    assert view.generation == 4 and not view.busy and view.error == ""
    assert view.to_text().splitlines()[0] == "Steering (clamp) · #3=6.5, #5=-1 (off)"


def test_steering_runs_off_thread_newest_request_wins() -> None:
    import threading

    from saekit.widgets import Steering

    gate = threading.Event()
    calls: list[dict[int, float]] = []

    def slow(prompt: str, clamps: dict[int, float]) -> tuple[str, str]:
        calls.append(dict(clamps))
        gate.wait(5)
        return prompt, str(clamps)

    busy_log: list[bool] = []
    view = Steering(slow, [1], prompt="p")
    view.observe(lambda ch: busy_log.append(ch.new), names="busy")
    assert view.busy  # the first call is running in the worker; __init__ returned at once
    for v in (1.0, 2.0, 3.0):
        view.values = [v]  # the kernel keeps handling changes while the call runs
    assert not view.wait(0.05)
    gate.set()
    assert view.wait(5)
    assert calls == [{1: 0.0}, {1: 3.0}]  # 1.0 and 2.0 were superseded, never run
    assert view.steered == "{1: 3.0}" and busy_log[-1] is False and view.generation == 2


def test_steering_errors_and_custom_code() -> None:
    from saekit.widgets import Steering

    def broken(prompt: str, clamps: dict[int, float]) -> tuple[str, str]:
        if clamps.get(1):
            raise RuntimeError("model exploded")
        return "only one string"  # type: ignore[return-value]

    view = Steering(broken, [1], prompt="p", mode="scale",
                    code_fn=lambda p, c: f"saekit.steer({p!r}, {c!r}, mode='scale')")
    assert view.wait(5)
    assert "must return (baseline_text, steered_text)" in view.error
    view.values = [2.0]
    assert view.wait(5) and view.error == "generate_fn failed: RuntimeError: model exploded"
    assert view.code == "saekit.steer('p', {1: 2.0}, mode='scale')" and not view.busy
    manual = Steering(_fake_generate, [1], prompt="p", auto=False)
    assert manual.wait(1) and manual.generation == 0
    _send_from_page(manual, {"type": "generate"})
    assert manual.wait(5) and manual.steered == "P [1:0]"
    with pytest.raises(SaekitError, match="need min <= value <= max"):
        Steering(_fake_generate, [{"feature_id": 1, "value": 20.0}])
    with pytest.raises(SaekitError, match="one slider only"):
        Steering(_fake_generate, [1, 1])
    with pytest.raises(SaekitError, match="No slider for feature 9; the sliders are \\[1\\]"):
        manual.set_value(9, 1.0)


# --- TrainingMonitor --------------------------------------------------------------------


def test_training_monitor_state_text_and_frame() -> None:
    from saekit.widgets import TrainingMonitor

    mon = TrainingMonitor(["l0", "mse"], title="sweep", min_interval=0)
    assert mon.to_text() == "TrainingMonitor · sweep · no data yet"
    mon.update(0, {"a": {"l0": 10.0, "mse": 1.0}, "b": {"l0": 20.0}})
    mon.update(10, {"a": {"l0": 8.0, "mse": 0.5, "dead_fraction": float("nan")},
                    "b": {"l0": 16.0, "dead_fraction": 0.25}})
    assert mon.saes == ["a", "b"] and mon.metrics == ["l0", "mse", "dead_fraction"]
    assert mon.series == [{"sae": "a", "metric": "l0", "n": 2}, {"sae": "a", "metric": "mse", "n": 2},
                          {"sae": "b", "metric": "l0", "n": 2},
                          {"sae": "b", "metric": "dead_fraction", "n": 1}]
    data = from_bytes(mon.data, "f8", (-1, 2))
    np.testing.assert_array_equal(data, [[0, 10], [10, 8], [0, 1], [10, 0.5], [0, 20], [10, 16],
                                         [10, 0.25]])
    assert mon.step == 10
    assert mon.to_text().splitlines() == [
        "TrainingMonitor · sweep · step 10 · 2 SAEs",
        "sae  L0  MSE  Dead fraction",
        "---  --  ---  -------------",
        "a     8  0.5  -",
        "b    16  -             0.25",
    ]
    frame = mon.to_frame()
    assert list(frame.columns) == ["sae", "metric", "step", "value"] and len(frame) == 7
    with pytest.raises(SaekitError, match="sae_name: \\{metric_name: value\\}"):
        mon.update(20, {"l0": 3.0})  # type: ignore[dict-item]


def test_training_monitor_throttles_and_thins() -> None:
    import time

    from saekit.widgets import TrainingMonitor

    mon = TrainingMonitor(min_interval=0.3, max_points=10)
    mon.update(0, {"a": {"l0": 0.0}})  # first update syncs at once
    for step in range(1, 100):
        mon.update(step, {"a": {"l0": float(step)}})
    assert mon.series == [{"sae": "a", "metric": "l0", "n": 1}]  # the rest is held back...
    time.sleep(0.6)
    assert mon.series == [{"sae": "a", "metric": "l0", "n": 10}]  # ...and flushed by a timer
    steps = from_bytes(mon.data, "f8", (-1, 2))[:, 0]
    assert steps[0] == 0 and steps[-1] == 99 and np.all(np.diff(steps) > 0)
    assert len(mon.to_frame()) == 100  # all points are kept on the Python side
