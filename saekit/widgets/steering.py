"""Steering: one slider per feature, a prompt, baseline and steered text side by side.

The view never touches a model. The controller injects
``generate_fn(prompt, clamps) -> (baseline_text, steered_text)``; the view calls it in
a worker thread whenever the prompt or a slider changes (newest request wins), shows a
busy state meanwhile, and keeps the kernel free to receive the next slider move.

Example:
    >>> from saekit.widgets import SteerSlider, Steering
    >>> fake = lambda prompt, clamps: (prompt + " ok", f"{prompt} {sorted(clamps.items())}")
    >>> view = Steering(fake, [SteerSlider(12, "cats", value=4.0)], prompt="Hi")
    >>> view.wait(5)
    True
    >>> view.steered
    'Hi [(12, 4.0)]'
    >>> view.code
    "baseline, steered = generate_fn('Hi', {12: 4.0})"
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import traitlets as t

from saekit._html import fmt_value
from saekit.analysis.steering import MODES
from saekit.errors import SaekitError
from saekit.widgets._base import SaekitView
from saekit.widgets._bundle import bundle
from saekit.widgets._runner import LatestRunner

__all__ = ["GenerateFn", "SteerSlider", "Steering"]

GenerateFn = Callable[[str, dict[int, float]], tuple[str, str]]
#: ``hold(on_wait)``: a context manager held around each generation (e.g. ``model.exclusive``);
#: it calls ``on_wait()`` before waiting for a model that another caller is using.
HoldFn = Callable[[Callable[[], None]], contextlib.AbstractContextManager[object]]
#: The status shown while the model runs in another cell.
WAITING = "waiting for the model (busy in another cell)…"
DEFAULT_TEMPLATE = "baseline, steered = generate_fn({prompt}, {clamps})"


@dataclass(frozen=True)
class SteerSlider:
    """One feature's slider: its range, start value and whether it starts switched on."""

    feature_id: int
    label: str = ""
    value: float = 0.0
    min: float = -10.0
    max: float = 10.0
    step: float = 0.1
    enabled: bool = True

    def __post_init__(self) -> None:
        if not (self.min <= self.value <= self.max) or self.step <= 0:
            raise SaekitError(
                f"Slider for feature {self.feature_id}: need min <= value <= max and step > 0; "
                f"got min={self.min}, value={self.value}, max={self.max}, step={self.step}."
            )


@dataclass(frozen=True)
class _Request:
    prompt: str
    clamps: tuple[tuple[int, float], ...]


class Steering(SaekitView):
    """Sliders, prompt box and side-by-side generations, driven by an injected function.

    Args:
        generate_fn: ``generate_fn(prompt, clamps) -> (baseline_text, steered_text)``;
            ``clamps`` maps feature id to the slider value of every switched-on slider.
        sliders: A :class:`SteerSlider` (or feature id, or dict of its fields) per feature.
        prompt: The starting prompt.
        mode: one of :data:`saekit.analysis.steering.MODES`: ``"clamp"`` (values are
            activations to clamp to), ``"scale"`` (values scale the activation) or ``"add"``
            (values are added along the decoder direction); shown on the page, passed on
            by the controller.
        code_fn: ``code_fn(prompt, clamps) -> str``, the Python call that reproduces the
            current output, shown by "copy as code". Default: ``code_template``.
        code_template: A ``str.format`` template with ``{prompt}``, ``{clamps}`` and
            ``{mode}`` (filled with their Python reprs).
        auto: Generate at once and after every change (otherwise only on "Generate").
        hold: ``hold(on_wait)`` gives a context manager held while generating (the
            controller passes ``model.exclusive``); while it waits, ``status`` reads
            "waiting for the model (busy in another cell)…" instead of failing.
    """

    _esm = bundle("steering.js")

    prompt = t.Unicode("").tag(sync=True)
    mode = t.Enum(list(MODES), default_value="clamp").tag(sync=True)
    sliders = t.List(t.Dict()).tag(sync=True)
    values = t.List(t.Float()).tag(sync=True)
    enabled = t.List(t.Bool()).tag(sync=True)
    baseline = t.Unicode("").tag(sync=True)
    steered = t.Unicode("").tag(sync=True)
    shown_clamps = t.List(t.List()).tag(sync=True)
    busy = t.Bool(False).tag(sync=True)
    error = t.Unicode("").tag(sync=True)
    code = t.Unicode("").tag(sync=True)
    elapsed = t.Float(0.0).tag(sync=True)
    generation = t.Int(0).tag(sync=True)
    status = t.Unicode("").tag(sync=True)

    def __init__(
        self,
        generate_fn: GenerateFn,
        sliders: Sequence[SteerSlider | int | Mapping[str, Any]],
        *,
        prompt: str = "",
        mode: str = "clamp",
        code_fn: Callable[[str, dict[int, float]], str] | None = None,
        code_template: str = DEFAULT_TEMPLATE,
        auto: bool = True,
        hold: HoldFn | None = None,
    ) -> None:
        if not callable(generate_fn):
            raise SaekitError("Steering needs generate_fn(prompt, clamps) -> (baseline, steered).")
        specs = [_slider(s) for s in sliders]
        if len({s.feature_id for s in specs}) != len(specs):
            raise SaekitError("Each feature may have one slider only; remove the duplicates.")
        self._generate_fn = generate_fn
        self._hold: HoldFn = hold or (lambda on_wait: contextlib.nullcontext())
        self._code_fn = code_fn
        self._code_template = code_template
        self._auto = auto
        self._last_request: _Request | None = None
        self._runner: LatestRunner[_Request] = LatestRunner(
            self._call, on_done=self._show, on_error=self._show_error, on_busy=self._set_busy
        )
        super().__init__(
            prompt=prompt,
            mode=mode,
            sliders=[_slider_state(s) for s in specs],
            values=[float(s.value) for s in specs],
            enabled=[bool(s.enabled) for s in specs],
        )
        self.code = self._make_code()
        self.observe(self._changed, names=["prompt", "values", "enabled", "mode"])
        if auto:
            self.generate()

    @property
    def clamps(self) -> dict[int, float]:
        """Feature id -> value for every switched-on slider."""
        ids = [int(s["feature_id"]) for s in self.sliders]
        return {f: v for f, v, on in zip(ids, self.values, self.enabled, strict=True) if on}

    def set_value(self, feature_id: int, value: float, *, enabled: bool = True) -> None:
        """Move one slider from Python (the page follows)."""
        ids = [int(s["feature_id"]) for s in self.sliders]
        if feature_id not in ids:
            raise SaekitError(f"No slider for feature {feature_id}; the sliders are {ids}.")
        i = ids.index(feature_id)
        values, flags = list(self.values), list(self.enabled)
        values[i], flags[i] = float(value), enabled
        with self.hold_trait_notifications():
            self.values, self.enabled = values, flags

    def generate(self) -> None:
        """Queue a generation for the current prompt and sliders."""
        self._last_request = _Request(self.prompt, tuple(self.clamps.items()))
        self._runner.submit(self._last_request)

    def wait(self, timeout: float | None = None) -> bool:
        """Block until generation is idle (for scripts and tests); ``False`` on timeout."""
        return self._runner.wait(timeout)

    def to_text(self) -> str:
        sliders = ", ".join(
            f"#{s['feature_id']}={fmt_value(v)}" + ("" if on else " (off)")
            for s, v, on in zip(self.sliders, self.values, self.enabled, strict=True)
        )
        lines = [f"Steering ({self.mode}) · {sliders or 'no sliders'}", f"prompt: {self.prompt!r}"]
        if self.busy:
            lines.append(f"status: {self.status or 'generating…'}")
        if self.error:
            lines.append(f"error: {self.error.splitlines()[-1] if self.error else ''}")
        lines += [f"baseline: {self.baseline!r}", f"steered:  {self.steered!r}"]
        return "\n".join(lines)

    # -- internals -------------------------------------------------------------------

    def _make_code(self) -> str:
        if self._code_fn is not None:
            return self._code_fn(self.prompt, self.clamps)
        return self._code_template.format(
            prompt=repr(self.prompt), clamps=repr(self.clamps), mode=repr(self.mode)
        )

    def _changed(self, change: Any) -> None:
        self.code = self._make_code()
        request = _Request(self.prompt, tuple(self.clamps.items()))
        # Traits set together (values + enabled) notify one by one: generate once.
        if self._auto and change["name"] != "mode" and request != self._last_request:
            self.generate()

    def _on_custom_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "generate":
            self.generate()
        else:
            super()._on_custom_msg(widget, content, buffers)

    def _call(self, request: _Request) -> tuple[str, str, float]:
        with self._hold(self._waiting):
            self.status = ""
            start = time.perf_counter()
            result = self._generate_fn(request.prompt, dict(request.clamps))
        ok = isinstance(result, tuple) and len(result) == 2
        if not (ok and all(isinstance(x, str) for x in result)):
            raise SaekitError(
                "generate_fn must return (baseline_text, steered_text), two strings; "
                f"got {type(result).__name__}: {result!r:.200}."
            )
        return result[0], result[1], time.perf_counter() - start

    def _show(self, request: _Request, result: tuple[str, str, float]) -> None:
        with self.hold_sync():
            self.baseline, self.steered, self.elapsed = result
            self.shown_clamps = [[f, v] for f, v in request.clamps]
            self.error = ""
            self.generation += 1

    def _show_error(self, _request: _Request, exc: BaseException) -> None:
        lines = traceback.format_exception_only(type(exc), exc)
        self.error = "generate_fn failed: " + "".join(lines).strip()

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy

    def _waiting(self) -> None:
        self.status = WAITING


def _slider(spec: SteerSlider | int | Mapping[str, Any]) -> SteerSlider:
    if isinstance(spec, SteerSlider):
        return spec
    if isinstance(spec, Mapping):
        return SteerSlider(**spec)
    if isinstance(spec, int) and not isinstance(spec, bool):
        return SteerSlider(spec)
    raise SaekitError(f"A slider is a SteerSlider, a feature id or a dict; got {spec!r}.")


def _slider_state(spec: SteerSlider) -> dict[str, Any]:
    state = asdict(spec)
    state["initial"] = state.pop("value")  # the live value is in `values`, on/off in `enabled`
    del state["enabled"]
    return state
