// UmapView: canvas scatter of decoder directions. Hover: label; click: open the feature;
// drag: lasso-select (shift adds); wheel: zoom; Pan tool or double-click to reset.
import { h, s, add, clear, fmt, HUES, css, Tooltip, listen, setTrait } from "./_common.js";
import {
  HEIGHT, GREY, CLUSTER_HUES, viridis, readData, colourFn, insidePolygon, fit, sx, sy, drawPoints, nearest,
} from "./_umap_canvas.js";

function segmented(options, current, onPick, enabled = () => true) {
  return h("span", { class: "sk-seg" }, options.map(([value, text]) => h("button", {
    type: "button", class: value === current ? "sk-on" : "", "data-value": value, disabled: !enabled(value),
    onclick: () => onPick(value),
  }, text)));
}

const HINT = "Hover a point for its top tokens · click to open the feature · drag to lasso-select (shift: add) · wheel to zoom · double-click to reset";

// ----- state ---------------------------------------------------------------------------
// Everything the view changes over its life lives in one object, passed to every step:
//   data     the points (readData), replaced when the point traits change
//   view     {k, tx, ty}: screen = k * data + t (y flipped); null until the first fit
//   width    the plot's measured width in CSS pixels
//   grid     screen-space hash of the drawn points, for hover
//   hoverIdx the point under the pointer (-1: none)
//   tool     what a drag does: "lasso" or "pan"
//   touched  zoomed or panned by the user: keep the view on resize
//   drag     the gesture in progress: {kind, points, x0, y0, view0, shift}, or null
function createState(model, root) {
  return {
    model, data: readData(model), view: null, width: 600, grid: new Map(), hoverIdx: -1,
    tool: "lasso", touched: false, drag: null, tip: new Tooltip(root), el: buildLayout(root),
  };
}

function buildLayout(root) {
  const title = h("div", { class: "sk-title" });
  const bar = h("div", { class: "sk-umap-bar" });
  const canvas = h("canvas", { "aria-label": "UMAP of decoder directions", role: "img" });
  const over = s("svg", { class: "sk-umap-over" });
  const lassoPath = s("path", { fill: "rgba(194, 65, 12, 0.08)", stroke: "#c2410c", "stroke-width": 1.5, "stroke-dasharray": "4 3" });
  over.append(lassoPath);
  const anchor = h("div", { style: { position: "absolute", width: "8px", height: "8px", "pointer-events": "none" } });
  const plot = h("div", { class: "sk-umap-plot sk-lasso" }, canvas, over, anchor);
  const legend = h("div", { class: "sk-umap-legend" });
  const side = h("div", { class: "sk-umap-side" });
  add(root, title, bar, h("div", { class: "sk-umap-grid" }, h("div", {}, plot, legend), side),
    h("div", { class: "sk-hint" }, HINT));
  return { title, bar, canvas, over, lassoPath, anchor, plot, legend, side };
}

// ----- panels ----------------------------------------------------------------------------
function pointTip(st, i) {
  const { data } = st;
  const box = h("div", {},
    h("div", { class: "sk-tip-head" },
      h("b", { class: "sk-num" }, `#${data.feat[i]}`),
      h("span", { class: "sk-muted" }, data.names[data.saeOf[i]] || "")));
  const label = data.labels[i];
  add(box, label ? h("div", { class: "sk-node-label", style: { "white-space": "normal" } }, label)
    : h("div", { class: "sk-muted" }, "no label"));
  if (data.density) add(box, h("div", { class: "sk-kv" }, h("span", { class: "sk-muted" }, "density"),
    h("span", { class: "sk-num" }, data.density[i] > 0 ? `${fmt(100 * data.density[i])}%` : "never active")));
  if (data.cluster) add(box, h("div", { class: "sk-kv" }, h("span", { class: "sk-muted" }, "cluster"),
    h("span", { class: "sk-num" }, data.cluster[i] < 0 ? "none" : String(data.cluster[i]))));
  if (!st.model.get("_offline")) add(box, h("div", { class: "sk-hint" }, "click to open this feature"));
  return box;
}

function openPoint(st, i) {
  const { data } = st;
  st.model.send({ type: "feature_click", feature: data.feat[i], sae: data.names[data.saeOf[i]] || "" });
}

function drawBar(st) {
  const { model, data } = st;
  const hasD = !!data.density, hasC = !!data.cluster;
  add(clear(st.el.bar),
    h("span", { class: "sk-muted" }, "Colour"),
    segmented([["sae", "dictionary"], ["density", "density"], ["cluster", "cluster"]], model.get("color_by"),
      (v) => setTrait(model, "color_by", v), (v) => v === "sae" || (v === "density" && hasD) || (v === "cluster" && hasC)),
    h("span", { class: "sk-muted", style: { "margin-left": "8px" } }, "Drag"),
    segmented([["lasso", "lasso"], ["pan", "pan"]], st.tool, (v) => setTool(st, v)),
    h("button", { class: "sk-btn", type: "button", onclick: () => reset(st) }, "Reset view"),
    h("span", { class: "sk-muted sk-num", "data-role": "count" },
      `${data.n} points · ${(model.get("selection") || []).length} selected`));
}

function setTool(st, tool) {
  st.tool = tool;
  st.el.plot.classList.toggle("sk-lasso", tool === "lasso");
  st.el.plot.classList.toggle("sk-pan", tool === "pan");
  drawBar(st);
}

function drawLegend(st) {
  const by = st.model.get("color_by");
  const legend = clear(st.el.legend);
  if (by === "density" && st.data.density) add(legend, densityLegend(st.data));
  else if (by === "cluster" && st.data.cluster) add(legend, clusterLegend(st.data));
  else add(legend, saeLegend(st.data));
}

function greyKey(text) {
  return h("span", {}, h("span", { class: "sk-dot", style: { background: css(GREY) } }), text);
}

function densityLegend(data) {
  const ramp = h("span", { class: "sk-ramp" });
  ramp.style.background = `linear-gradient(to right, ${[0, 0.25, 0.5, 0.75, 1].map((x) => `${css(viridis(x))} ${x * 100}%`).join(", ")})`;
  return [h("span", { class: "sk-muted" }, "log10 density"), Number.isFinite(data.dLo) ? fmt(data.dLo) : "–", ramp,
    Number.isFinite(data.dHi) ? fmt(data.dHi) : "–", greyKey("never active")];
}

function clusterLegend(data) {
  const ids = [...new Set(data.cluster)].filter((c) => c >= 0).sort((a, b) => a - b);
  return [h("span", { class: "sk-muted" }, `${ids.length} clusters`),
    ids.slice(0, 12).map((c) => h("span", {}, h("span", { class: "sk-dot", style: { background: css(CLUSTER_HUES[c % CLUSTER_HUES.length]) } }), String(c))),
    ids.length > 12 ? h("span", { class: "sk-muted" }, "…") : null,
    greyKey("none")];
}

function saeLegend(data) {
  const counts = data.names.map(() => 0);
  for (const k of data.saeOf) counts[k] += 1;
  return data.names.map((name, k) => h("span", { "data-sae": name },
    h("span", { class: "sk-dot", style: { background: css(HUES[k % HUES.length]) } }), name,
    h("span", { class: "sk-muted" }, ` (${counts[k]})`)));
}

function itemRow(st, i) {
  const { data } = st;
  const hover = (idx) => () => { st.hoverIdx = idx; drawPoints(st); };
  return h("div", { class: "sk-umap-item", "data-point": i, onmouseenter: hover(i), onmouseleave: hover(-1) },
    h("span", { class: "sk-swatch", style: { background: css(colourFn(data, st.model.get("color_by"))(i)) } }),
    h("button", { class: "sk-fid", type: "button", "data-feature": data.feat[i], title: `open ${data.names[data.saeOf[i]]} #${data.feat[i]}`,
      onclick: (ev) => { ev.stopPropagation(); openPoint(st, i); } }, `#${data.feat[i]}`),
    h("span", { class: "sk-tip-label", title: data.labels[i] || "" },
      data.names.length > 1 ? h("span", { class: "sk-muted" }, `${data.names[data.saeOf[i]]} `) : null, data.labels[i] || ""));
}

function listSection(st, name, list, role) {
  const shown = list.slice(0, 300);
  return [h("div", { class: "sk-sec-title", style: { "margin-top": "4px" } }, `${name} (${list.length})`),
    h("div", { class: "sk-umap-list", "data-role": role }, shown.map((i) => itemRow(st, i)),
      list.length > shown.length ? h("div", { class: "sk-muted" }, `… ${list.length - shown.length} more`) : null)];
}

function drawSide(st) {
  const { model } = st;
  const side = clear(st.el.side);
  const sel = model.get("selection") || [];
  const hi = model.get("highlight") || [];
  if (sel.length) {
    add(side, listSection(st, "Selection", sel, "selection"),
      h("button", { class: "sk-btn", type: "button", style: { "margin-top": "6px", "align-self": "start" },
        onclick: () => setTrait(model, "selection", []) }, "Clear selection"));
  } else {
    add(side, h("div", { class: "sk-sec-title", style: { "margin-top": "4px" } }, "Selection"),
      h("div", { class: "sk-empty" }, "Drag on the plot to lasso-select features (shift: add to the selection)."));
  }
  if (hi.length) add(side, listSection(st, "Highlighted", hi, "highlight"));
}

// ----- pointer interaction -----------------------------------------------------------------
function localPoint(st, ev) {
  const r = st.el.canvas.getBoundingClientRect();
  return [(ev.clientX - r.left) * (st.width / r.width), (ev.clientY - r.top) * (HEIGHT / r.height)];
}

function bindPointer(st) {
  const { canvas } = st.el;
  canvas.addEventListener("pointerdown", (ev) => onPointerDown(st, ev));
  canvas.addEventListener("pointermove", (ev) => onPointerMove(st, ev));
  canvas.addEventListener("pointerleave", () => onPointerLeave(st));
  canvas.addEventListener("pointerup", (ev) => onPointerUp(st, ev));
  canvas.addEventListener("wheel", (ev) => onWheel(st, ev), { passive: false });
  canvas.addEventListener("dblclick", () => reset(st));
}

function onPointerDown(st, ev) {
  if (ev.button !== 0) return;
  const [x, y] = localPoint(st, ev);
  st.el.canvas.setPointerCapture(ev.pointerId);
  st.drag = { kind: st.tool, points: [[x, y]], x0: x, y0: y, view0: { ...st.view }, shift: ev.shiftKey };
  st.tip.hide();
}

function onPointerMove(st, ev) {
  const [x, y] = localPoint(st, ev);
  if (st.drag) dragTo(st, x, y);
  else hoverAt(st, x, y);
}

function dragTo(st, x, y) {
  const { drag } = st;
  if (drag.kind === "pan") {
    st.view = { ...drag.view0, tx: drag.view0.tx + x - drag.x0, ty: drag.view0.ty + y - drag.y0 };
    st.touched = true;
    drawPoints(st);
    return;
  }
  drag.points.push([x, y]);
  st.el.lassoPath.setAttribute("d", "M" + drag.points.map((p) => `${p[0].toFixed(1)},${p[1].toFixed(1)}`).join("L") + "Z");
}

function hoverAt(st, x, y) {
  const i = nearest(st, x, y);
  if (i === st.hoverIdx) return;
  st.hoverIdx = i;
  drawPoints(st);
  if (i < 0) { st.tip.scheduleHide(); return; }
  const { anchor, canvas } = st.el;
  anchor.style.left = `${(sx(st, i) * canvas.getBoundingClientRect().width) / st.width - 4}px`;
  anchor.style.top = `${sy(st, i) - 4}px`;
  st.tip.show(anchor, pointTip(st, i));
}

function onPointerLeave(st) {
  if (st.drag) return;
  if (st.hoverIdx >= 0) { st.hoverIdx = -1; drawPoints(st); }
  st.tip.scheduleHide();
}

function onPointerUp(st, ev) {
  const d = st.drag;
  if (!d) return;
  st.drag = null;
  st.el.lassoPath.setAttribute("d", "");
  const [x, y] = localPoint(st, ev);
  const moved = Math.hypot(x - d.x0, y - d.y0) > 4 || d.points.length > 6;
  if (d.kind === "pan" && moved) return;
  if (!moved || d.points.length < 3) clickAt(st, x, y, d.shift);
  else lassoSelect(st, d.points, d.shift);
}

function clickAt(st, x, y, shift) {
  const i = nearest(st, x, y);
  if (i >= 0) openPoint(st, i);
  else if (!shift && (st.model.get("selection") || []).length) setTrait(st.model, "selection", []);
}

function lassoSelect(st, polygon, shift) {
  const chosen = shift ? new Set(st.model.get("selection") || []) : new Set();
  for (let i = 0; i < st.data.n; i++) if (insidePolygon(sx(st, i), sy(st, i), polygon)) chosen.add(i);
  setTrait(st.model, "selection", [...chosen].sort((a, b) => a - b));
}

function onWheel(st, ev) {
  ev.preventDefault();
  const [x, y] = localPoint(st, ev);
  const f = Math.exp(-ev.deltaY * 0.0015);
  const { view } = st;
  st.view = { k: view.k * f, tx: x - f * (x - view.tx), ty: y - f * (y - view.ty) };
  st.touched = true;
  drawPoints(st);
}

function reset(st) {
  st.touched = false;
  fit(st);
  drawPoints(st);
}

// ----- lifecycle ---------------------------------------------------------------------------
// Follow the plot's width; false when it did not change.
function measure(st) {
  const w = Math.round(st.el.plot.clientWidth) || 600;
  if (w === st.width && st.view) return false;
  const old = st.width;
  st.width = w;
  if (!st.view || !st.touched) fit(st);
  else st.view = { ...st.view, tx: st.view.tx + (w - old) / 2 };
  return true;
}

function drawAll(st) {
  const t = st.model.get("title");
  st.el.title.textContent = t || "";
  st.el.title.style.display = t ? "" : "none";
  measure(st);
  drawBar(st);
  drawLegend(st);
  drawSide(st);
  drawPoints(st);
}

function watch(st) {
  const { model } = st;
  return [
    listen(model, ["xy", "point_sae", "point_feature", "labels", "density", "has_density", "cluster", "has_cluster", "sae_names"],
      () => { st.data = readData(model); fit(st); drawAll(st); }),
    listen(model, ["selection", "highlight", "focus", "color_by", "title"], () => drawAll(st)),
  ];
}

function render({ model, el }) {
  const root = h("div", { class: "sk-root sk-umap" });
  el.appendChild(root);
  const st = createState(model, root);
  bindPointer(st);
  requestAnimationFrame(() => drawAll(st));
  drawAll(st);
  const ro = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => { if (measure(st)) drawPoints(st); }) : null;
  if (ro) ro.observe(st.el.plot);
  const offs = watch(st);
  return () => { offs.forEach((off) => off()); if (ro) ro.disconnect(); st.tip.destroy(); };
}

export default { render };
