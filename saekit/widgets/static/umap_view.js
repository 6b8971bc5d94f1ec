// UmapView: canvas scatter of decoder directions. Hover: label; click: open the feature;
// drag: lasso-select (shift adds); wheel: zoom; Pan tool or double-click to reset.
import {
  h, s, add, clear, f32, i32, fmt, HUES, css, Tooltip, listen, setTrait,
} from "./_common.js";

const HEIGHT = 460;
const GREY = [200, 204, 209];
// viridis, dark to light (legible in grey too)
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const CLUSTER_HUES = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
  [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207], [0, 0, 128], [128, 128, 0],
];

function viridis(t) {
  const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

function readData(model) {
  const xy = f32(model.get("xy"));
  const n = xy.length / 2;
  const density = model.get("has_density") ? f32(model.get("density")) : null;
  let dLo = Infinity, dHi = -Infinity;
  if (density) for (const d of density) if (d > 0) { const l = Math.log10(d); dLo = Math.min(dLo, l); dHi = Math.max(dHi, l); }
  let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    x0 = Math.min(x0, xy[2 * i]); x1 = Math.max(x1, xy[2 * i]);
    y0 = Math.min(y0, xy[2 * i + 1]); y1 = Math.max(y1, xy[2 * i + 1]);
  }
  return {
    n, xy, saeOf: i32(model.get("point_sae")), feat: i32(model.get("point_feature")),
    names: model.get("sae_names") || [], labels: model.get("labels") || [],
    density, dLo, dHi, cluster: model.get("has_cluster") ? i32(model.get("cluster")) : null,
    bounds: [x0, x1, y0, y1],
  };
}

function colourFn(data, by) {
  if (by === "density" && data.density) {
    const span = data.dHi - data.dLo || 1;
    return (i) => (data.density[i] > 0 ? viridis((Math.log10(data.density[i]) - data.dLo) / span) : GREY);
  }
  if (by === "cluster" && data.cluster) {
    return (i) => (data.cluster[i] < 0 ? GREY : CLUSTER_HUES[data.cluster[i] % CLUSTER_HUES.length]);
  }
  return (i) => HUES[data.saeOf[i] % HUES.length];
}

function insidePolygon(px, py, poly) {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > py) !== (yj > py) && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

function segmented(options, current, onPick, enabled = () => true) {
  return h("span", { class: "sk-seg" }, options.map(([value, text]) => h("button", {
    type: "button", class: value === current ? "sk-on" : "", "data-value": value, disabled: !enabled(value),
    onclick: () => onPick(value),
  }, text)));
}

function render({ model, el }) {
  const root = h("div", { class: "sk-root sk-umap" });
  el.appendChild(root);
  const tip = new Tooltip(root);
  let data = readData(model);
  let tool = "lasso";
  let view = null;           // {k, tx, ty}: screen = k * data + t (y flipped)
  let width = 600;
  let grid = new Map();      // screen-space hash for hover
  let hoverIdx = -1;
  let touched = false;       // zoomed or panned by the user: keep the view on resize

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
    h("div", { class: "sk-hint" }, "Hover a point for its top tokens · click to open the feature · drag to lasso-select (shift: add) · wheel to zoom · double-click to reset"));

  // ----- transform ---------------------------------------------------------------------
  function fit() {
    const [x0, x1, y0, y1] = data.bounds;
    const pad = 18;
    const k = Math.min((width - 2 * pad) / ((x1 - x0) || 1), (HEIGHT - 2 * pad) / ((y1 - y0) || 1));
    view = { k, tx: width / 2 - k * (x0 + x1) / 2, ty: HEIGHT / 2 + k * (y0 + y1) / 2 };
  }
  const sx = (i) => view.k * data.xy[2 * i] + view.tx;
  const sy = (i) => -view.k * data.xy[2 * i + 1] + view.ty;

  // ----- drawing -----------------------------------------------------------------------
  function draw() {
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(HEIGHT * dpr);
    canvas.style.height = `${HEIGHT}px`;
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, HEIGHT);
    const colour = colourFn(data, model.get("color_by"));
    const sel = new Set(model.get("selection") || []);
    const hi = new Set(model.get("highlight") || []);
    const focus = model.get("focus");
    const dim = sel.size > 0 || hi.size > 0;
    const r = data.n > 20000 ? 1.6 : data.n > 3000 ? 2.2 : 3.2;
    grid = new Map();
    ctx.globalAlpha = dim ? 0.22 : 0.8;
    for (let i = 0; i < data.n; i++) {
      const x = sx(i), y = sy(i);
      if (x < -5 || y < -5 || x > width + 5 || y > HEIGHT + 5) continue;
      const key = `${Math.floor(x / 10)},${Math.floor(y / 10)}`;
      let cell = grid.get(key);
      if (!cell) grid.set(key, (cell = []));
      cell.push(i);
      if (sel.has(i) || hi.has(i)) continue;
      ctx.fillStyle = css(colour(i));
      ctx.beginPath();
      ctx.arc(x, y, r, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    const emphasise = (i, radius, stroke, width_) => {
      ctx.fillStyle = css(colour(i));
      ctx.beginPath();
      ctx.arc(sx(i), sy(i), radius, 0, 2 * Math.PI);
      ctx.fill();
      if (!width_) return;
      ctx.strokeStyle = stroke;
      ctx.lineWidth = width_;
      ctx.stroke();
    };
    // Outlines help a few selected points stand out; thousands would merge into a blot.
    const selOutline = sel.size > 1500 ? 0 : 1;
    for (const i of sel) if (!hi.has(i)) emphasise(i, r + (selOutline ? 1 : 0.5), "#1f2328", selOutline);
    for (const i of hi) emphasise(i, r + 2.5, "#1f2328", 1.5);
    if (focus !== null && focus !== undefined && focus >= 0 && focus < data.n) {
      emphasise(focus, r + 3, "#c2410c", 2.5);
      ctx.strokeStyle = "#c2410c";
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.arc(sx(focus), sy(focus), r + 9, 0, 2 * Math.PI);
      ctx.stroke();
    }
    if (hoverIdx >= 0) {
      ctx.strokeStyle = "#1f2328";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.arc(sx(hoverIdx), sy(hoverIdx), r + 4, 0, 2 * Math.PI);
      ctx.stroke();
    }
    over.setAttribute("viewBox", `0 0 ${width} ${HEIGHT}`);
  }

  function nearest(x, y, maxDist = 8) {
    let best = -1, bestD = maxDist * maxDist;
    const cx = Math.floor(x / 10), cy = Math.floor(y / 10);
    for (let gx = cx - 1; gx <= cx + 1; gx++) for (let gy = cy - 1; gy <= cy + 1; gy++) {
      for (const i of grid.get(`${gx},${gy}`) || []) {
        const d = (sx(i) - x) ** 2 + (sy(i) - y) ** 2;
        if (d <= bestD) { bestD = d; best = i; }
      }
    }
    return best;
  }

  // ----- panels ------------------------------------------------------------------------
  function pointTip(i) {
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
    if (!model.get("_offline")) add(box, h("div", { class: "sk-hint" }, "click to open this feature"));
    return box;
  }

  function openPoint(i) {
    model.send({ type: "feature_click", feature: data.feat[i], sae: data.names[data.saeOf[i]] || "" });
  }

  function drawBar() {
    clear(bar);
    const hasD = !!data.density, hasC = !!data.cluster;
    add(bar,
      h("span", { class: "sk-muted" }, "Colour"),
      segmented([["sae", "dictionary"], ["density", "density"], ["cluster", "cluster"]], model.get("color_by"),
        (v) => setTrait(model, "color_by", v), (v) => v === "sae" || (v === "density" && hasD) || (v === "cluster" && hasC)),
      h("span", { class: "sk-muted", style: { "margin-left": "8px" } }, "Drag"),
      segmented([["lasso", "lasso"], ["pan", "pan"]], tool, (v) => {
        tool = v;
        plot.classList.toggle("sk-lasso", v === "lasso");
        plot.classList.toggle("sk-pan", v === "pan");
        drawBar();
      }),
      h("button", { class: "sk-btn", type: "button", onclick: () => reset() }, "Reset view"),
      h("span", { class: "sk-muted sk-num", "data-role": "count" },
        `${data.n} points · ${(model.get("selection") || []).length} selected`));
  }

  function drawLegend() {
    clear(legend);
    const by = model.get("color_by");
    if (by === "density" && data.density) {
      const ramp = h("span", { class: "sk-ramp" });
      ramp.style.background = `linear-gradient(to right, ${[0, 0.25, 0.5, 0.75, 1].map((x) => `${css(viridis(x))} ${x * 100}%`).join(", ")})`;
      add(legend, h("span", { class: "sk-muted" }, "log10 density"), Number.isFinite(data.dLo) ? fmt(data.dLo) : "–", ramp,
        Number.isFinite(data.dHi) ? fmt(data.dHi) : "–",
        h("span", {}, h("span", { class: "sk-dot", style: { background: css(GREY) } }), "never active"));
      return;
    }
    if (by === "cluster" && data.cluster) {
      const ids = [...new Set(data.cluster)].filter((c) => c >= 0).sort((a, b) => a - b);
      add(legend, h("span", { class: "sk-muted" }, `${ids.length} clusters`),
        ids.slice(0, 12).map((c) => h("span", {}, h("span", { class: "sk-dot", style: { background: css(CLUSTER_HUES[c % CLUSTER_HUES.length]) } }), String(c))),
        ids.length > 12 ? h("span", { class: "sk-muted" }, "…") : null,
        h("span", {}, h("span", { class: "sk-dot", style: { background: css(GREY) } }), "none"));
      return;
    }
    const counts = data.names.map(() => 0);
    for (const k of data.saeOf) counts[k] += 1;
    add(legend, data.names.map((name, k) => h("span", { "data-sae": name },
      h("span", { class: "sk-dot", style: { background: css(HUES[k % HUES.length]) } }), name,
      h("span", { class: "sk-muted" }, ` (${counts[k]})`))));
  }

  function itemRow(i) {
    return h("div", { class: "sk-umap-item", "data-point": i,
      onmouseenter: () => { hoverIdx = i; draw(); }, onmouseleave: () => { hoverIdx = -1; draw(); } },
    h("span", { class: "sk-swatch", style: { background: css(colourFn(data, model.get("color_by"))(i)) } }),
    h("button", { class: "sk-fid", type: "button", "data-feature": data.feat[i], title: `open ${data.names[data.saeOf[i]]} #${data.feat[i]}`,
      onclick: (ev) => { ev.stopPropagation(); openPoint(i); } }, `#${data.feat[i]}`),
    h("span", { class: "sk-tip-label", title: data.labels[i] || "" },
      data.names.length > 1 ? h("span", { class: "sk-muted" }, `${data.names[data.saeOf[i]]} `) : null, data.labels[i] || ""));
  }

  function drawSide() {
    clear(side);
    const sel = model.get("selection") || [];
    const hi = model.get("highlight") || [];
    const section = (name, list, role) => {
      const shown = list.slice(0, 300);
      return [h("div", { class: "sk-sec-title", style: { "margin-top": "4px" } }, `${name} (${list.length})`),
        h("div", { class: "sk-umap-list", "data-role": role }, shown.map(itemRow),
          list.length > shown.length ? h("div", { class: "sk-muted" }, `… ${list.length - shown.length} more`) : null)];
    };
    if (sel.length) {
      add(side, section("Selection", sel, "selection"),
        h("button", { class: "sk-btn", type: "button", style: { "margin-top": "6px", "align-self": "start" },
          onclick: () => setTrait(model, "selection", []) }, "Clear selection"));
    } else {
      add(side, h("div", { class: "sk-sec-title", style: { "margin-top": "4px" } }, "Selection"),
        h("div", { class: "sk-empty" }, "Drag on the plot to lasso-select features (shift: add to the selection)."));
    }
    if (hi.length) add(side, section("Highlighted", hi, "highlight"));
  }

  // ----- interaction -------------------------------------------------------------------
  let drag = null;   // {kind, points, x0, y0, view0, shift}
  const local = (ev) => {
    const r = canvas.getBoundingClientRect();
    return [(ev.clientX - r.left) * (width / r.width), (ev.clientY - r.top) * (HEIGHT / r.height)];
  };
  canvas.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    const [x, y] = local(ev);
    canvas.setPointerCapture(ev.pointerId);
    drag = { kind: tool, points: [[x, y]], x0: x, y0: y, view0: { ...view }, shift: ev.shiftKey };
    tip.hide();
  });
  canvas.addEventListener("pointermove", (ev) => {
    const [x, y] = local(ev);
    if (drag) {
      if (drag.kind === "pan") {
        view = { ...drag.view0, tx: drag.view0.tx + x - drag.x0, ty: drag.view0.ty + y - drag.y0 };
        touched = true;
        draw();
      } else {
        drag.points.push([x, y]);
        lassoPath.setAttribute("d", "M" + drag.points.map((p) => `${p[0].toFixed(1)},${p[1].toFixed(1)}`).join("L") + "Z");
      }
      return;
    }
    const i = nearest(x, y);
    if (i !== hoverIdx) {
      hoverIdx = i;
      draw();
      if (i >= 0) {
        anchor.style.left = `${(sx(i) * canvas.getBoundingClientRect().width) / width - 4}px`;
        anchor.style.top = `${sy(i) - 4}px`;
        tip.show(anchor, pointTip(i));
      } else {
        tip.scheduleHide();
      }
    }
  });
  canvas.addEventListener("pointerleave", () => {
    if (drag) return;
    if (hoverIdx >= 0) { hoverIdx = -1; draw(); }
    tip.scheduleHide();
  });
  canvas.addEventListener("pointerup", (ev) => {
    if (!drag) return;
    const d = drag;
    drag = null;
    lassoPath.setAttribute("d", "");
    const [x, y] = local(ev);
    const moved = Math.hypot(x - d.x0, y - d.y0) > 4 || d.points.length > 6;
    if (d.kind === "pan" && moved) return;
    if (!moved || d.points.length < 3) {
      const i = nearest(x, y);
      if (i >= 0) openPoint(i);
      else if (!d.shift && (model.get("selection") || []).length) setTrait(model, "selection", []);
      return;
    }
    const chosen = d.shift ? new Set(model.get("selection") || []) : new Set();
    for (let i = 0; i < data.n; i++) if (insidePolygon(sx(i), sy(i), d.points)) chosen.add(i);
    setTrait(model, "selection", [...chosen].sort((a, b) => a - b));
  });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const [x, y] = local(ev);
    const f = Math.exp(-ev.deltaY * 0.0015);
    view = { k: view.k * f, tx: x - f * (x - view.tx), ty: y - f * (y - view.ty) };
    touched = true;
    draw();
  }, { passive: false });
  const reset = () => { touched = false; fit(); draw(); };
  canvas.addEventListener("dblclick", reset);

  // ----- lifecycle ---------------------------------------------------------------------
  function measure() {
    const w = Math.round(plot.clientWidth) || 600;
    if (w === width && view) return false;
    const old = width;
    width = w;
    if (!view || !touched) fit();
    else view = { ...view, tx: view.tx + (w - old) / 2 };
    return true;
  }
  function drawAll() {
    const t = model.get("title");
    title.textContent = t || "";
    title.style.display = t ? "" : "none";
    measure();
    drawBar();
    drawLegend();
    drawSide();
    draw();
  }
  requestAnimationFrame(() => drawAll());
  drawAll();
  const ro = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => { if (measure()) draw(); }) : null;
  if (ro) ro.observe(plot);
  const offs = [
    listen(model, ["xy", "point_sae", "point_feature", "labels", "density", "has_density", "cluster", "has_cluster", "sae_names"],
      () => { data = readData(model); fit(); drawAll(); }),
    listen(model, ["selection", "highlight", "focus", "color_by", "title"], drawAll),
  ];
  return () => { offs.forEach((off) => off()); if (ro) ro.disconnect(); tip.destroy(); };
}

export default { render };
