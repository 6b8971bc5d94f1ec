// TrainingMonitor: one small SVG line chart per metric, one line per SAE.
import { h, s, add, clear, f64, fmt, HUES, css, listen, redrawOnChange } from "./_common.js";
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

// Scales of one chart: x over the steps, y over the values (log10 when `log`).
function scales(lines, log) {
  const [x0, x1] = extent(lines, "steps", false);
  let [y0, y1] = extent(lines, "values", log);
  if (!Number.isFinite(y0)) { y0 = 0; y1 = 1; }
  if (y0 === y1) { const pad = Math.abs(y0) * 0.05 || 1; y0 -= pad; y1 += pad; }
  const ty = log ? Math.log10 : (v) => v;
  const x = linear(x0, x1 === x0 ? x0 + 1 : x1, L, W - R);
  const yl = linear(ty(y0), ty(y1), H - B, T);
  return { x, y: (v) => yl(ty(v)), x0, x1, y0, y1, log };
}

function linePath(ln, sc, colourOf) {
  let d = "";
  for (let i = 0; i < ln.steps.length; i++) {
    if (sc.log && !(ln.values[i] > 0)) continue;
    d += `${d ? "L" : "M"}${sc.x(ln.steps[i]).toFixed(1)},${sc.y(ln.values[i]).toFixed(1)}`;
  }
  return s("path", { d, fill: "none", stroke: css(colourOf(ln.sae)), "stroke-width": 1.6,
    "stroke-linejoin": "round", "data-sae": ln.sae });
}

// Hover: a rule and one dot per line at the nearest step, their values in the readout.
function hoverLayer(svg, lines, sc, colourOf, readout) {
  const rule = s("line", { y1: T, y2: H - B, stroke: "#9aa4ae", "stroke-dasharray": "3 3", visibility: "hidden" });
  const dots = lines.map((ln) => s("circle", { r: 3, fill: css(colourOf(ln.sae)), visibility: "hidden" }));
  const hit = s("rect", { x: L, y: T, width: W - L - R, height: H - B - T, fill: "transparent" });
  svg.append(rule, ...dots, hit);
  const latest = () => lines.map((ln) => `${ln.sae} ${fmt(ln.values[ln.values.length - 1])}`).join(" · ");
  readout.textContent = latest();
  hit.addEventListener("mousemove", (ev) => {
    readout.textContent = showStep(svg, ev, lines, sc, rule, dots);
  });
  hit.addEventListener("mouseleave", () => {
    rule.setAttribute("visibility", "hidden");
    dots.forEach((d) => d.setAttribute("visibility", "hidden"));
    readout.textContent = latest();
  });
}

function showStep(svg, ev, lines, sc, rule, dots) {
  const { x, y, x0, x1, y0, log } = sc;
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
  return parts.join(" ");
}

function chart(model, metric, lines, colourOf, logState) {
  const log = logState.has(metric);
  const sc = scales(lines, log);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${metric} per step` });
  const yTicks = log ? logTicks(sc.y0, sc.y1) : niceTicks(sc.y0, sc.y1, 4);
  svg.append(yAxis(sc.y, L, yTicks.length ? yTicks : [sc.y0, sc.y1], { grid: W - L - R }));
  svg.append(xAxis(sc.x, H - B, niceTicks(sc.x0, sc.x1, 4), { label: "step" }));
  for (const ln of lines) svg.append(linePath(ln, sc, colourOf));
  const readout = h("div", { class: "sk-muted sk-num", style: { "text-align": "left", "min-height": "16px" } });
  hoverLayer(svg, lines, sc, colourOf, readout);
  const toggle = h("button", { class: "sk-open", type: "button", title: "toggle log scale" }, log ? "log" : "lin");
  const titles = model.get("metric_titles") || {};
  return { node: h("div", { class: "sk-chart", "data-metric": metric },
    h("div", { class: "sk-chart-title" }, h("span", {}, titles[metric] || metric), toggle), svg, readout), toggle };
}

// ----- the view --------------------------------------------------------------------------------
function header(model) {
  const step = model.get("step");
  return h("div", { class: "sk-card-head" },
    h("span", { class: "sk-title" }, model.get("title") || "Training"),
    step === null || step === undefined ? null : h("span", { class: "sk-muted sk-num" }, `step ${fmt(step)}`));
}

function draw(st) {
  const { model, root, logState } = st;
  clear(root);
  const lines = readSeries(model);
  const saes = model.get("saes") || [];
  const colourOf = (sae) => HUES[Math.max(0, saes.indexOf(sae)) % HUES.length];
  add(root, header(model));
  if (!lines.length) { add(root, h("div", { class: "sk-empty" }, "Waiting for the first update(step, metrics)…")); return; }
  add(root, h("div", { class: "sk-series-legend" }, saes.map((sae) =>
    h("span", {}, h("span", { class: "sk-line-key", style: { background: css(colourOf(sae)) } }), sae))));
  add(root, notes(model));
  const grid = h("div", { class: "sk-charts" });
  for (const metric of model.get("metrics") || []) {
    const mine = lines.filter((ln) => ln.metric === metric);
    if (!mine.length) continue;
    const c = chart(model, metric, mine, colourOf, logState);
    c.toggle.addEventListener("click", () => toggleLog(st, metric));
    add(grid, c.node);
  }
  add(root, grid);
}

// Warnings from the trainer (e.g. EV dominated by a few massive dimensions).
function notes(model) {
  return Object.entries(model.get("notes") || {}).map(([sae, note]) =>
    h("div", { class: "sk-error", role: "note", "data-sae": sae }, `${sae}: ${note}`));
}

function toggleLog(st, metric) {
  if (st.logState.has(metric)) st.logState.delete(metric); else st.logState.add(metric);
  draw(st);
}

function resetLog(st) {
  st.logState.clear();
  (st.model.get("log_y") || []).forEach((m) => st.logState.add(m));
  draw(st);
}

// State: the model, the root and the set of metrics drawn on a log scale (toggled per chart).
function render({ model, el }) {
  const root = h("div", { class: "sk-root sk-monitor" });
  el.appendChild(root);
  const st = { model, root, logState: new Set(model.get("log_y") || []) };
  draw(st);
  const off = redrawOnChange(model, ["series", "data", "saes", "metrics", "step", "title", "notes"], () => draw(st));
  const off2 = listen(model, ["log_y"], () => resetLog(st));
  return () => { off(); off2(); };
}

export default { render };
