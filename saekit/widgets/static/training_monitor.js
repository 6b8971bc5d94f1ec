// TrainingMonitor: one small SVG line chart per metric, one line per SAE.
import { h, s, add, clear, f64, fmt, HUES, css, listen } from "./_common.js";
import { linear, niceTicks, xAxis, yAxis } from "./_svg.js";

const W = 320, H = 190, L = 46, R = 10, T = 8, B = 30;

function readSeries(model) {
  const data = f64(model.get("data"));
  const out = [];
  let row = 0;
  for (const sp of model.get("series") || []) {
    const steps = new Float64Array(sp.n), values = new Float64Array(sp.n);
    for (let i = 0; i < sp.n; i++, row++) { steps[i] = data[2 * row]; values[i] = data[2 * row + 1]; }
    out.push({ ...sp, steps, values });
  }
  return out;
}

function extent(lines, key, positiveOnly) {
  let lo = Infinity, hi = -Infinity;
  for (const ln of lines) for (const v of ln[key]) {
    if (positiveOnly && !(v > 0)) continue;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

function nearest(steps, x) {
  let lo = 0, hi = steps.length - 1;
  while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (steps[mid] < x) lo = mid; else hi = mid; }
  return Math.abs(steps[lo] - x) <= Math.abs(steps[hi] - x) ? lo : hi;
}

// Decades, or 1-2-5 steps when the range spans less than two decades.
function logTicks(lo, hi) {
  const inRange = (v) => v >= lo / 1.0001 && v <= hi * 1.0001;
  const e0 = Math.floor(Math.log10(lo)), e1 = Math.ceil(Math.log10(hi));
  const decades = [];
  for (let e = e0; e <= e1; e++) decades.push(10 ** e);
  const major = decades.filter(inRange);
  if (major.length >= 2) return major;
  const fine = [];
  for (const d of decades) for (const m of [1, 2, 5]) if (inRange(d * m)) fine.push(Number((d * m).toPrecision(3)));
  return fine;
}

function chart(model, metric, lines, colourOf, logState) {
  const log = logState.has(metric);
  const [x0, x1] = extent(lines, "steps", false);
  let [y0, y1] = extent(lines, "values", log);
  if (!Number.isFinite(y0)) { y0 = 0; y1 = 1; }
  if (y0 === y1) { const pad = Math.abs(y0) * 0.05 || 1; y0 -= pad; y1 += pad; }
  const ty = log ? Math.log10 : (v) => v;
  const x = linear(x0, x1 === x0 ? x0 + 1 : x1, L, W - R);
  const yl = linear(ty(y0), ty(y1), H - B, T);
  const y = (v) => yl(ty(v));
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${metric} per step` });
  const yTicks = log ? logTicks(y0, y1) : niceTicks(y0, y1, 4);
  svg.append(yAxis(y, L, yTicks.length ? yTicks : [y0, y1], { grid: W - L - R }));
  svg.append(xAxis(x, H - B, niceTicks(x0, x1, 4), { label: "step" }));
  for (const ln of lines) {
    let d = "";
    for (let i = 0; i < ln.steps.length; i++) {
      if (log && !(ln.values[i] > 0)) continue;
      d += `${d ? "L" : "M"}${x(ln.steps[i]).toFixed(1)},${y(ln.values[i]).toFixed(1)}`;
    }
    svg.append(s("path", { d, fill: "none", stroke: css(colourOf(ln.sae)), "stroke-width": 1.6,
      "stroke-linejoin": "round", "data-sae": ln.sae }));
  }
  const rule = s("line", { y1: T, y2: H - B, stroke: "#9aa4ae", "stroke-dasharray": "3 3", visibility: "hidden" });
  const dots = lines.map((ln) => s("circle", { r: 3, fill: css(colourOf(ln.sae)), visibility: "hidden" }));
  const readout = h("div", { class: "sk-muted sk-num", style: { "text-align": "left", "min-height": "16px" } });
  const hit = s("rect", { x: L, y: T, width: W - L - R, height: H - B - T, fill: "transparent" });
  svg.append(rule, ...dots, hit);
  const latest = () => lines.map((ln) => `${ln.sae} ${fmt(ln.values[ln.values.length - 1])}`).join(" · ");
  readout.textContent = latest();
  hit.addEventListener("mousemove", (ev) => {
    const pt = svg.createSVGPoint();
    pt.x = ev.clientX; pt.y = ev.clientY;
    const local = pt.matrixTransform(svg.getScreenCTM().inverse());
    const step = x0 + ((local.x - L) / (W - L - R)) * (x1 - x0);
    const parts = [];
    lines.forEach((ln, j) => {
      if (!ln.steps.length) return;
      const i = nearest(ln.steps, step);
      dots[j].setAttribute("cx", x(ln.steps[i]));
      dots[j].setAttribute("cy", y(Math.max(ln.values[i], log ? y0 : -Infinity)));
      dots[j].setAttribute("visibility", "visible");
      parts.push(`${ln.sae} ${fmt(ln.values[i])}`);
      if (j === 0) { rule.setAttribute("x1", x(ln.steps[i])); rule.setAttribute("x2", x(ln.steps[i])); parts.unshift(`step ${fmt(ln.steps[i])}:`); }
    });
    rule.setAttribute("visibility", "visible");
    readout.textContent = parts.join(" ");
  });
  hit.addEventListener("mouseleave", () => {
    rule.setAttribute("visibility", "hidden");
    dots.forEach((d) => d.setAttribute("visibility", "hidden"));
    readout.textContent = latest();
  });
  const toggle = h("button", { class: "sk-open", type: "button", title: "toggle log scale" }, log ? "log" : "lin");
  const titles = model.get("metric_titles") || {};
  return { node: h("div", { class: "sk-chart", "data-metric": metric },
    h("div", { class: "sk-chart-title" }, h("span", {}, titles[metric] || metric), toggle), svg, readout), toggle };
}

function render({ model, el }) {
  const root = h("div", { class: "sk-root sk-monitor" });
  el.appendChild(root);
  const logState = new Set(model.get("log_y") || []);
  function draw() {
    clear(root);
    const lines = readSeries(model);
    const saes = model.get("saes") || [];
    const colourOf = (sae) => HUES[Math.max(0, saes.indexOf(sae)) % HUES.length];
    const step = model.get("step");
    add(root, h("div", { class: "sk-card-head" },
      h("span", { class: "sk-title" }, model.get("title") || "Training"),
      step === null || step === undefined ? null : h("span", { class: "sk-muted sk-num" }, `step ${fmt(step)}`)));
    if (!lines.length) { add(root, h("div", { class: "sk-empty" }, "Waiting for the first update(step, metrics)…")); return; }
    add(root, h("div", { class: "sk-series-legend" }, saes.map((sae) =>
      h("span", {}, h("span", { class: "sk-line-key", style: { background: css(colourOf(sae)) } }), sae))));
    // Warnings from the trainer (e.g. EV dominated by a few massive dimensions).
    for (const [sae, note] of Object.entries(model.get("notes") || {})) {
      add(root, h("div", { class: "sk-error", role: "note", "data-sae": sae }, `${sae}: ${note}`));
    }
    const grid = h("div", { class: "sk-charts" });
    for (const metric of model.get("metrics") || []) {
      const mine = lines.filter((ln) => ln.metric === metric);
      if (!mine.length) continue;
      const c = chart(model, metric, mine, colourOf, logState);
      c.toggle.addEventListener("click", () => {
        if (logState.has(metric)) logState.delete(metric); else logState.add(metric);
        draw();
      });
      add(grid, c.node);
    }
    add(root, grid);
  }
  draw();
  const off = listen(model, ["series", "data", "saes", "metrics", "step", "title", "notes"], () => {
    if (draw.pending) return;
    draw.pending = true;
    queueMicrotask(() => { draw.pending = false; draw(); });
  });
  const off2 = listen(model, ["log_y"], () => { logState.clear(); (model.get("log_y") || []).forEach((m) => logState.add(m)); draw(); });
  return () => { off(); off2(); };
}

export default { render };
