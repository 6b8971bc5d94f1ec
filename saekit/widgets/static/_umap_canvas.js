// UmapView's plot: the points' data, the data-to-screen transform, the canvas painting and
// the hover lookup. The view's state object `st` (see umap_view.js) is passed in.
import { f32, i32, HUES, css } from "./_common.js";

export const HEIGHT = 460;
export const GREY = [200, 204, 209];
// viridis, dark to light (legible in grey too)
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
export const CLUSTER_HUES = [
  [31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189], [140, 86, 75],
  [227, 119, 194], [127, 127, 127], [188, 189, 34], [23, 190, 207], [0, 0, 128], [128, 128, 0],
];

export function viridis(t) {
  const x = Math.max(0, Math.min(1, t)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const f = x - i;
  return VIRIDIS[i].map((c, k) => Math.round(c + f * (VIRIDIS[i + 1][k] - c)));
}

export function readData(model) {
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

export function colourFn(data, by) {
  if (by === "density" && data.density) {
    const span = data.dHi - data.dLo || 1;
    return (i) => (data.density[i] > 0 ? viridis((Math.log10(data.density[i]) - data.dLo) / span) : GREY);
  }
  if (by === "cluster" && data.cluster) {
    return (i) => (data.cluster[i] < 0 ? GREY : CLUSTER_HUES[data.cluster[i] % CLUSTER_HUES.length]);
  }
  return (i) => HUES[data.saeOf[i] % HUES.length];
}

export function insidePolygon(px, py, poly) {
  let inside = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > py) !== (yj > py) && px < ((xj - xi) * (py - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

// ----- transform -----------------------------------------------------------------------
export function fit(st) {
  const [x0, x1, y0, y1] = st.data.bounds;
  const pad = 18;
  const k = Math.min((st.width - 2 * pad) / ((x1 - x0) || 1), (HEIGHT - 2 * pad) / ((y1 - y0) || 1));
  st.view = { k, tx: st.width / 2 - k * (x0 + x1) / 2, ty: HEIGHT / 2 + k * (y0 + y1) / 2 };
}

export const sx = (st, i) => st.view.k * st.data.xy[2 * i] + st.view.tx;
export const sy = (st, i) => -st.view.k * st.data.xy[2 * i + 1] + st.view.ty;

// ----- drawing the points ----------------------------------------------------------------
export function drawPoints(st) {
  const ctx = prepareCanvas(st);
  const colour = colourFn(st.data, st.model.get("color_by"));
  const sel = new Set(st.model.get("selection") || []);
  const hi = new Set(st.model.get("highlight") || []);
  const r = st.data.n > 20000 ? 1.6 : st.data.n > 3000 ? 2.2 : 3.2;
  ctx.globalAlpha = sel.size > 0 || hi.size > 0 ? 0.22 : 0.8;
  paintPlain(st, ctx, colour, (i) => sel.has(i) || hi.has(i), r);
  ctx.globalAlpha = 1;
  paintEmphasis(st, ctx, colour, sel, hi, r);
  st.el.over.setAttribute("viewBox", `0 0 ${st.width} ${HEIGHT}`);
}

function prepareCanvas(st) {
  const { canvas } = st.el;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(st.width * dpr);
  canvas.height = Math.round(HEIGHT * dpr);
  canvas.style.height = `${HEIGHT}px`;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, st.width, HEIGHT);
  return ctx;
}

// Every visible point goes into the hover grid; those not skipped are painted.
function paintPlain(st, ctx, colour, skip, r) {
  st.grid = new Map();
  for (let i = 0; i < st.data.n; i++) {
    const x = sx(st, i), y = sy(st, i);
    if (x < -5 || y < -5 || x > st.width + 5 || y > HEIGHT + 5) continue;
    const key = `${Math.floor(x / 10)},${Math.floor(y / 10)}`;
    let cell = st.grid.get(key);
    if (!cell) st.grid.set(key, (cell = []));
    cell.push(i);
    if (skip(i)) continue;
    dot(ctx, x, y, r, css(colour(i)));
  }
}

function paintEmphasis(st, ctx, colour, sel, hi, r) {
  const emphasise = (i, radius, stroke, lineWidth) => {
    dot(ctx, sx(st, i), sy(st, i), radius, css(colour(i)));
    if (!lineWidth) return;
    ctx.strokeStyle = stroke;
    ctx.lineWidth = lineWidth;
    ctx.stroke();
  };
  // Outlines help a few selected points stand out; thousands would merge into a blot.
  const selOutline = sel.size > 1500 ? 0 : 1;
  for (const i of sel) if (!hi.has(i)) emphasise(i, r + (selOutline ? 1 : 0.5), "#1f2328", selOutline);
  for (const i of hi) emphasise(i, r + 2.5, "#1f2328", 1.5);
  const focus = st.model.get("focus");
  if (focus !== null && focus !== undefined && focus >= 0 && focus < st.data.n) {
    emphasise(focus, r + 3, "#c2410c", 2.5);
    ring(ctx, sx(st, focus), sy(st, focus), r + 9, "#c2410c", 1.5);
  }
  if (st.hoverIdx >= 0) ring(ctx, sx(st, st.hoverIdx), sy(st, st.hoverIdx), r + 4, "#1f2328", 2);
}

function dot(ctx, x, y, r, fill) {
  ctx.fillStyle = fill;
  ctx.beginPath();
  ctx.arc(x, y, r, 0, 2 * Math.PI);
  ctx.fill();
}

function ring(ctx, x, y, r, stroke, lineWidth) {
  ctx.strokeStyle = stroke;
  ctx.lineWidth = lineWidth;
  ctx.beginPath();
  ctx.arc(x, y, r, 0, 2 * Math.PI);
  ctx.stroke();
}

export function nearest(st, x, y, maxDist = 8) {
  let best = -1, bestD = maxDist * maxDist;
  const cx = Math.floor(x / 10), cy = Math.floor(y / 10);
  for (let gx = cx - 1; gx <= cx + 1; gx++) for (let gy = cy - 1; gy <= cy + 1; gy++) {
    for (const i of st.grid.get(`${gx},${gy}`) || []) {
      const d = (sx(st, i) - x) ** 2 + (sy(st, i) - y) ** 2;
      if (d <= bestD) { bestD = d; best = i; }
    }
  }
  return best;
}
