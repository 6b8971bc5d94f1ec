// Steering: sliders per feature, a prompt, baseline vs steered generations.
import { h, add, clear, fmt, listen, setTrait } from "./_common.js";

function sliderRow(model, spec, i, offline, schedule) {
  const values = model.get("values");
  const enabled = model.get("enabled");
  const mode = model.get("mode");
  const num = h("span", { class: "sk-num" });
  const showValue = (v) => { num.textContent = mode === "scale" ? `×${fmt(v)}` : fmt(v); };
  const range = h("input", {
    type: "range", min: spec.min, max: spec.max, step: spec.step, value: values[i],
    "aria-label": `feature ${spec.feature_id}`, "data-feature": spec.feature_id, disabled: offline,
  });
  const check = h("input", { type: "checkbox", title: "apply this feature", disabled: offline });
  check.checked = !!enabled[i];
  const row = h("div", { class: "sk-slider" + (enabled[i] ? "" : " sk-off"), "data-feature": spec.feature_id },
    check,
    h("span", { class: "sk-slider-name", title: spec.label || "" },
      h("span", { class: "sk-fid-static" }, `#${spec.feature_id}`), spec.label ? ` ${spec.label}` : ""),
    range, num,
    h("button", { class: "sk-open", type: "button", title: `reset to ${fmt(spec.initial)}`, disabled: offline,
      onclick: () => { range.value = spec.initial; showValue(spec.initial); commitValue(spec.initial); } }, "↺"));
  showValue(values[i]);

  function commitValue(v) {
    const next = model.get("values").slice();
    next[i] = v;
    const flags = model.get("enabled").slice();
    flags[i] = true;            // moving a slider switches it on
    check.checked = true;
    row.classList.remove("sk-off");
    model.set("enabled", flags);
    setTrait(model, "values", next);
  }
  function commitEnabled() {
    const flags = model.get("enabled").slice();
    flags[i] = check.checked;
    row.classList.toggle("sk-off", !check.checked);
    setTrait(model, "enabled", flags);
  }
  range.addEventListener("input", () => {
    const v = Number(range.value);
    showValue(v);
    schedule(i, () => commitValue(v));
  });
  range.addEventListener("change", () => schedule(i, () => commitValue(Number(range.value)), 0));
  check.addEventListener("change", commitEnabled);
  row.sync = () => {
    const v = model.get("values")[i];
    if (Number(range.value) !== v) range.value = v;
    showValue(v);
    check.checked = !!model.get("enabled")[i];
    row.classList.toggle("sk-off", !check.checked);
  };
  return row;
}

function clampText(pairs, mode) {
  if (!pairs.length) return "no features applied";
  return pairs.map(([f, v]) => (mode === "scale" ? `#${f} ×${fmt(v)}` : `#${f} = ${fmt(v)}`)).join(", ");
}

function render({ model, el }) {
  const offline = !!model.get("_offline");
  const root = h("div", { class: "sk-root sk-steer" });
  el.appendChild(root);
  const timers = {};
  const schedule = (key, fn, delay = 250) => {
    clearTimeout(timers[key]);
    timers[key] = setTimeout(fn, delay);
  };

  const prompt = h("textarea", { class: "sk-prompt", rows: 2, spellcheck: "false", disabled: offline,
    "aria-label": "prompt", placeholder: "Prompt…" });
  prompt.value = model.get("prompt");
  const submit = () => {
    if (prompt.value === model.get("prompt")) model.send({ type: "generate" });
    else setTrait(model, "prompt", prompt.value);
  };
  prompt.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey || ev.shiftKey)) { ev.preventDefault(); submit(); }
  });
  const genBtn = h("button", { class: "sk-btn sk-primary", type: "button", disabled: offline, onclick: submit }, "Generate");

  const sliderBox = h("div", { class: "sk-sliders" });
  let rows = [];
  function drawSliders() {
    clear(sliderBox);
    rows = (model.get("sliders") || []).map((spec, i) => sliderRow(model, spec, i, offline, schedule));
    add(sliderBox, h("div", { class: "sk-sec-title" },
      { clamp: "Features (clamp activation to)", scale: "Features (multiply activation)", add: "Features (add along direction)" }[model.get("mode")]), rows);
  }

  const status = h("div", { class: "sk-status" }, h("span", { class: "sk-spinner" }), h("span", { class: "sk-status-text" }));
  const errorBox = h("div", { class: "sk-error" });
  const baseText = h("div", { class: "sk-out-text", "data-role": "baseline" });
  const steerText = h("div", { class: "sk-out-text", "data-role": "steered" });
  const steerInfo = h("span", { class: "sk-muted" });
  const codeBox = h("pre", { class: "sk-code" });
  codeBox.style.display = "none";
  const copyBtn = h("button", { class: "sk-btn", type: "button" }, "Copy as code");
  copyBtn.addEventListener("click", async () => {
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
  });

  add(root,
    h("div", { class: "sk-steer-top" }, prompt, h("div", {}, genBtn)),
    sliderBox,
    status,
    errorBox,
    h("div", { class: "sk-outputs" },
      h("div", { class: "sk-out" }, h("div", { class: "sk-out-title" }, h("span", { class: "sk-sec-title" }, "Baseline")), baseText),
      h("div", { class: "sk-out sk-steered" },
        h("div", { class: "sk-out-title" }, h("span", { class: "sk-sec-title" }, "Steered"), steerInfo), steerText)),
    h("div", { style: { "margin-top": "8px" } }, copyBtn),
    codeBox,
    offline ? h("div", { class: "sk-hint" }, "Static export: generation needs a running kernel.") : null);

  let busyStart = 0, ticker = null;
  function drawStatus() {
    const busy = model.get("busy");
    root.classList.toggle("sk-busy", busy);
    root.setAttribute("aria-busy", busy ? "true" : "false");
    const text = status.querySelector(".sk-status-text");
    clearInterval(ticker);
    if (busy) {
      busyStart = busyStart || performance.now();
      const tick = () => { text.textContent = `Generating… ${((performance.now() - busyStart) / 1000).toFixed(1)} s`; };
      tick();
      ticker = setInterval(tick, 100);
    } else {
      busyStart = 0;
      const n = model.get("generation");
      text.textContent = n ? `Generated in ${model.get("elapsed").toFixed(2)} s` : "";
    }
  }
  function drawOutputs() {
    baseText.textContent = model.get("baseline");
    steerText.textContent = model.get("steered");
    steerInfo.textContent = clampText(model.get("shown_clamps") || [], model.get("mode"));
    const err = model.get("error");
    errorBox.textContent = err;
    errorBox.style.display = err ? "block" : "none";
    if (codeBox.style.display !== "none") codeBox.textContent = model.get("code");
  }
  drawSliders();
  drawStatus();
  drawOutputs();
  const offs = [
    listen(model, ["busy", "elapsed", "generation"], drawStatus),
    listen(model, ["baseline", "steered", "shown_clamps", "error", "code"], drawOutputs),
    listen(model, ["sliders", "mode"], drawSliders),
    listen(model, ["values", "enabled"], () => rows.forEach((r) => r.sync())),
    listen(model, ["prompt"], () => { if (prompt.value !== model.get("prompt")) prompt.value = model.get("prompt"); }),
  ];
  return () => { offs.forEach((off) => off()); clearInterval(ticker); Object.values(timers).forEach(clearTimeout); };
}

export default { render };
