// Steering: sliders per feature, a prompt, baseline vs steered generations.
import { h, add, clear, fmt, listen, setTrait } from "./_common.js";

// One slider's elements. `mode` fixes how its value reads ("×2" or "2").
function sliderParts(model, spec, i, offline) {
  const enabled = model.get("enabled");
  const num = h("span", { class: "sk-num" });
  const range = h("input", {
    type: "range", min: spec.min, max: spec.max, step: spec.step, value: model.get("values")[i],
    "aria-label": `feature ${spec.feature_id}`, "data-feature": spec.feature_id, disabled: offline,
  });
  const check = h("input", { type: "checkbox", title: "apply this feature", disabled: offline });
  check.checked = !!enabled[i];
  const reset = h("button", { class: "sk-open", type: "button", title: `reset to ${fmt(spec.initial)}`, disabled: offline }, "↺");
  const row = h("div", { class: "sk-slider" + (enabled[i] ? "" : " sk-off"), "data-feature": spec.feature_id },
    check,
    h("span", { class: "sk-slider-name", title: spec.label || "" },
      h("span", { class: "sk-fid-static" }, `#${spec.feature_id}`), spec.label ? ` ${spec.label}` : ""),
    range, num, reset);
  return { i, row, range, check, num, reset, mode: model.get("mode") };
}

function showValue(sl, v) {
  sl.num.textContent = sl.mode === "scale" ? `×${fmt(v)}` : fmt(v);
}

function commitValue(model, sl, v) {
  const next = model.get("values").slice();
  next[sl.i] = v;
  const flags = model.get("enabled").slice();
  flags[sl.i] = true;            // moving a slider switches it on
  sl.check.checked = true;
  sl.row.classList.remove("sk-off");
  model.set("enabled", flags);
  setTrait(model, "values", next);
}

function commitEnabled(model, sl) {
  const flags = model.get("enabled").slice();
  flags[sl.i] = sl.check.checked;
  sl.row.classList.toggle("sk-off", !sl.check.checked);
  setTrait(model, "enabled", flags);
}

function syncSlider(model, sl) {
  const v = model.get("values")[sl.i];
  if (Number(sl.range.value) !== v) sl.range.value = v;
  showValue(sl, v);
  sl.check.checked = !!model.get("enabled")[sl.i];
  sl.row.classList.toggle("sk-off", !sl.check.checked);
}

// A slider row: dragging commits (debounced by `schedule`) and switches the feature on;
// row.sync() follows the traits.
function sliderRow(model, spec, i, offline, schedule) {
  const sl = sliderParts(model, spec, i, offline);
  showValue(sl, model.get("values")[i]);
  sl.reset.addEventListener("click", () => {
    sl.range.value = spec.initial;
    showValue(sl, spec.initial);
    commitValue(model, sl, spec.initial);
  });
  sl.range.addEventListener("input", () => {
    const v = Number(sl.range.value);
    showValue(sl, v);
    schedule(i, () => commitValue(model, sl, v));
  });
  sl.range.addEventListener("change", () => schedule(i, () => commitValue(model, sl, Number(sl.range.value)), 0));
  sl.check.addEventListener("change", () => commitEnabled(model, sl));
  sl.row.sync = () => syncSlider(model, sl);
  return sl.row;
}

const MODE_TITLES = {
  clamp: "Features (clamp activation to)",
  scale: "Features (multiply activation)",
  add: "Features (add along direction)",
};

function clampText(pairs, mode) {
  if (!pairs.length) return "no features applied";
  return pairs.map(([f, v]) => (mode === "scale" ? `#${f} ×${fmt(v)}` : `#${f} = ${fmt(v)}`)).join(", ");
}

// ----- state ---------------------------------------------------------------------------
// One object holds what the view changes over its life:
//   rows       the slider rows (each with .sync()), rebuilt when the sliders change
//   timers     pending debounced slider commits, by slider index
//   busyStart  when the current generation started (performance.now(); 0: idle)
//   ticker     the interval that updates the "Generating… s" text
function createState(model) {
  return { model, offline: !!model.get("_offline"), rows: [], timers: {}, busyStart: 0, ticker: null, el: {} };
}

function schedule(st, key, fn, delay = 250) {
  clearTimeout(st.timers[key]);
  st.timers[key] = setTimeout(fn, delay);
}

// ----- layout ------------------------------------------------------------------------------
function promptBox(st) {
  const prompt = h("textarea", { class: "sk-prompt", rows: 2, spellcheck: "false", disabled: st.offline,
    "aria-label": "prompt", placeholder: "Prompt…" });
  prompt.value = st.model.get("prompt");
  prompt.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey || ev.shiftKey)) { ev.preventDefault(); submit(st); }
  });
  return prompt;
}

// Generate again for an unchanged prompt; a changed prompt generates through its trait.
function submit(st) {
  const { model } = st;
  if (st.el.prompt.value === model.get("prompt")) model.send({ type: "generate" });
  else setTrait(model, "prompt", st.el.prompt.value);
}

function copyButton(st) {
  const copyBtn = h("button", { class: "sk-btn", type: "button" }, "Copy as code");
  copyBtn.addEventListener("click", () => copyCode(st));
  return copyBtn;
}

async function copyCode(st) {
  const { model } = st;
  const { codeBox, copyBtn } = st.el;
  codeBox.style.display = "block";
  codeBox.textContent = model.get("code");
  try {
    await navigator.clipboard.writeText(model.get("code"));
    copyBtn.textContent = "Copied ✓";
  } catch (err) {
    const sel = window.getSelection();
    const range = document.createRange();
    range.selectNodeContents(codeBox);
    sel.removeAllRanges();
    sel.addRange(range);
    copyBtn.textContent = "Selected: press Ctrl+C";
  }
  setTimeout(() => { copyBtn.textContent = "Copy as code"; }, 1800);
}

function buildLayout(st, root) {
  const el = st.el;
  el.prompt = promptBox(st);
  const genBtn = h("button", { class: "sk-btn sk-primary", type: "button", disabled: st.offline,
    onclick: () => submit(st) }, "Generate");
  el.sliderBox = h("div", { class: "sk-sliders" });
  el.status = h("div", { class: "sk-status" }, h("span", { class: "sk-spinner" }), h("span", { class: "sk-status-text" }));
  el.errorBox = h("div", { class: "sk-error" });
  el.baseText = h("div", { class: "sk-out-text", "data-role": "baseline" });
  el.steerText = h("div", { class: "sk-out-text", "data-role": "steered" });
  el.steerInfo = h("span", { class: "sk-muted" });
  el.codeBox = h("pre", { class: "sk-code" });
  el.codeBox.style.display = "none";
  el.copyBtn = copyButton(st);
  add(root,
    h("div", { class: "sk-steer-top" }, el.prompt, h("div", {}, genBtn)),
    el.sliderBox,
    el.status,
    el.errorBox,
    outputs(el),
    h("div", { style: { "margin-top": "8px" } }, el.copyBtn),
    el.codeBox,
    st.offline ? h("div", { class: "sk-hint" }, "Static export: generation needs a running kernel.") : null);
}

function outputs(el) {
  return h("div", { class: "sk-outputs" },
    h("div", { class: "sk-out" }, h("div", { class: "sk-out-title" }, h("span", { class: "sk-sec-title" }, "Baseline")), el.baseText),
    h("div", { class: "sk-out sk-steered" },
      h("div", { class: "sk-out-title" }, h("span", { class: "sk-sec-title" }, "Steered"), el.steerInfo), el.steerText));
}

// ----- drawing -------------------------------------------------------------------------------
function drawSliders(st) {
  const { model } = st;
  const sliderBox = clear(st.el.sliderBox);
  const later = (key, fn, delay) => schedule(st, key, fn, delay);
  st.rows = (model.get("sliders") || []).map((spec, i) => sliderRow(model, spec, i, st.offline, later));
  add(sliderBox, h("div", { class: "sk-sec-title" }, MODE_TITLES[model.get("mode")]), st.rows);
}

function drawStatus(st) {
  const { model, el } = st;
  const busy = model.get("busy");
  el.root.classList.toggle("sk-busy", busy);
  el.root.setAttribute("aria-busy", busy ? "true" : "false");
  const text = el.status.querySelector(".sk-status-text");
  clearInterval(st.ticker);
  if (busy) {
    st.busyStart = st.busyStart || performance.now();
    const tick = () => { text.textContent = model.get("status") || `Generating… ${((performance.now() - st.busyStart) / 1000).toFixed(1)} s`; };
    tick();
    st.ticker = setInterval(tick, 100);
  } else {
    st.busyStart = 0;
    const n = model.get("generation");
    text.textContent = n ? `Generated in ${model.get("elapsed").toFixed(2)} s` : "";
  }
}

function drawOutputs(st) {
  const { model, el } = st;
  el.baseText.textContent = model.get("baseline");
  el.steerText.textContent = model.get("steered");
  el.steerInfo.textContent = clampText(model.get("shown_clamps") || [], model.get("mode"));
  const err = model.get("error");
  el.errorBox.textContent = err;
  el.errorBox.style.display = err ? "block" : "none";
  if (el.codeBox.style.display !== "none") el.codeBox.textContent = model.get("code");
}

function syncPrompt(st) {
  const { prompt } = st.el;
  if (prompt.value !== st.model.get("prompt")) prompt.value = st.model.get("prompt");
}

// ----- lifecycle -------------------------------------------------------------------------------
function watch(st) {
  const { model } = st;
  return [
    listen(model, ["busy", "elapsed", "generation", "status"], () => drawStatus(st)),
    listen(model, ["baseline", "steered", "shown_clamps", "error", "code"], () => drawOutputs(st)),
    listen(model, ["sliders", "mode"], () => drawSliders(st)),
    listen(model, ["values", "enabled"], () => st.rows.forEach((r) => r.sync())),
    listen(model, ["prompt"], () => syncPrompt(st)),
  ];
}

function render({ model, el }) {
  const st = createState(model);
  const root = h("div", { class: "sk-root sk-steer" });
  el.appendChild(root);
  st.el.root = root;
  buildLayout(st, root);
  drawSliders(st);
  drawStatus(st);
  drawOutputs(st);
  const offs = watch(st);
  return () => { offs.forEach((off) => off()); clearInterval(st.ticker); Object.values(st.timers).forEach(clearTimeout); };
}

export default { render };
