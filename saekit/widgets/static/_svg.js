// Small SVG charting helpers: scales, nice ticks, axes (no external library).
import { s, fmt } from "./_common.js";

export function linear(d0, d1, r0, r1) {
  const span = d1 - d0 || 1;
  const f = (x) => r0 + ((x - d0) / span) * (r1 - r0);
  f.domain = [d0, d1];
  return f;
}

// About n round-numbered ticks covering [lo, hi].
export function niceTicks(lo, hi, n = 5) {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi === lo) return [lo];
  const raw = (hi - lo) / Math.max(1, n);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((st) => st >= raw) || 10 * mag;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Math.abs(v) < step * 1e-9 ? 0 : Number(v.toPrecision(12)));
  }
  return out;
}

export function xAxis(scale, y, ticks, { label, format = fmt } = {}) {
  const g = s("g", { class: "sk-axis" });
  const [a, b] = [scale(scale.domain[0]), scale(scale.domain[1])];
  g.append(s("line", { x1: a, x2: b, y1: y, y2: y }));
  for (const v of ticks) {
    const x = scale(v);
    g.append(s("line", { x1: x, x2: x, y1: y, y2: y + 4 }));
    g.append(s("text", { x, y: y + 14, "text-anchor": "middle" }, format(v)));
  }
  if (label) g.append(s("text", { x: (a + b) / 2, y: y + 28, "text-anchor": "middle" }, label));
  return g;
}

export function yAxis(scale, x, ticks, { format = fmt, grid = 0 } = {}) {
  const g = s("g", { class: "sk-axis" });
  for (const v of ticks) {
    const y = scale(v);
    if (grid) g.append(s("line", { x1: x, x2: x + grid, y1: y, y2: y, stroke: "#eef1f4", class: "sk-grid" }));
    g.append(s("text", { x: x - 5, y: y + 3.5, "text-anchor": "end" }, format(v)));
  }
  return g;
}
