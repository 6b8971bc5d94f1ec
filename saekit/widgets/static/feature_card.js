// FeatureCard: one feature's dashboard (Neuronpedia-style).
import {
  h, s, add, clear, f32, f64, u8, fmt, pct, heatRGB, css, visibleToken, tokenSpan, Tooltip,
  featureHead, logitsPanel, redrawOnChange, requestFeature,
} from "./_common.js";
import { linear, niceTicks, xAxis, yAxis } from "./_svg.js";

function statBox([name, value, kind]) {
  return h("div", { class: "sk-stat" },
    h("div", { class: "sk-stat-k" }, name),
    h("div", { class: "sk-stat-v" }, kind === "pct" ? pct(value) : fmt(value)));
}

function histogram(model) {
  const edges = f64(model.get("hist_edges"));
  const counts = f64(model.get("hist_counts"));
  if (!counts.length) return null;
  const W = 300, H = 132, L = 34, R = 8, T = 6, B = 34;
  const x = linear(edges[0], edges[edges.length - 1], L, W - R);
  const top = Math.max(...counts) || 1;
  const y = linear(0, top, H - B, T);
  const svg = s("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "histogram" });
  svg.append(yAxis(y, L, niceTicks(0, top, 3), { grid: W - L - R }));
  const positive = edges[0] >= 0;
  for (let i = 0; i < counts.length; i++) {
    const x0 = x(edges[i]), x1 = x(edges[i + 1]);
    const mid = (edges[i] + edges[i + 1]) / 2;
    const colour = positive ? heatRGB(0.2 + 0.8 * mid / edges[edges.length - 1]) : [125, 145, 190];
    const bar = s("rect", {
      x: x0 + 0.5, width: Math.max(0.5, x1 - x0 - 1), y: y(counts[i]), height: Math.max(0, y(0) - y(counts[i])),
      fill: css(colour), class: "sk-hbar",
    }, s("title", {}, `${fmt(edges[i])} – ${fmt(edges[i + 1])}: ${fmt(counts[i])}`));
    svg.append(bar);
  }
  svg.append(xAxis(x, H - B, niceTicks(edges[0], edges[edges.length - 1], 5), { label: model.get("hist_xlabel") }));
  return h("div", { class: "sk-panel sk-hist" },
    h("div", { class: "sk-sec-title" }, "Histogram"), svg);
}

function neighbours(model) {
  const rows = model.get("neighbours") || [];
  if (!rows.length) return null;
  return h("div", { class: "sk-panel" },
    h("div", { class: "sk-sec-title" }, "Nearest features (decoder cosine)"),
    rows.map(([id, cos]) => {
      const bar = h("span", { class: "sk-bar", style: { width: `${Math.max(0, Math.min(1, Math.abs(cos))) * 100}%`, background: "#7f9cf5" } });
      return h("div", { class: "sk-nb-row" },
        h("button", { class: "sk-fid", type: "button", "data-feature": id, title: `open feature ${id}`,
          onclick: (ev) => { ev.stopPropagation(); requestFeature(model, id); } }, `#${id}`),
        h("span", { class: "sk-bar-track" }, bar),
        h("span", { class: "sk-num" }, fmt(cos)));
    }));
}

function examples(model, tip) {
  const groups = model.get("groups") || [];
  const exTokens = model.get("ex_tokens") || [];
  const exGroup = model.get("ex_group") || [];
  const ex = { acts: f32(model.get("ex_acts")), mask: u8(model.get("ex_mask")), max: model.get("scale_max") || 0 };
  const out = h("div", {});
  let pos = 0, current = -1;
  exTokens.forEach((tokens, e) => {
    const g = exGroup[e];
    if (g !== current) {
      add(out, h("div", { class: "sk-group-title" }, groups[g] || ""));
      current = g;
    }
    add(out, exampleRow(tokens, pos, ex, tip));
    pos += tokens.length;
  });
  if (!exTokens.length) add(out, h("div", { class: "sk-empty" }, "No examples."));
  return out;
}

// One example (its tokens start at `base` in the flat activation and mask arrays), with its
// peak activation on the left and the peak token outlined.
function exampleRow(tokens, base, ex, tip) {
  const { acts, mask, max } = ex;
  let peak = -Infinity, peakAt = -1;
  for (let i = 0; i < tokens.length; i++) {
    if (!mask[base + i] && acts[base + i] > peak) { peak = acts[base + i]; peakAt = i; }
  }
  const text = h("div", { class: "sk-ex-text" });
  tokens.forEach((tok, i) => {
    const a = acts[base + i], masked = mask[base + i];
    const span = tokenSpan(tok, masked ? null : heatRGB(max > 0 ? Math.max(0, a) / max : 0),
      [masked && "sk-masked", i === peakAt && peak > 0 && "sk-max"]);
    tip.attach(span, () => exampleTip(tok, a, masked, max));
    add(text, span);
  });
  return h("div", { class: "sk-ex" }, h("div", { class: "sk-ex-max" }, peak > -Infinity ? fmt(peak) : "–"), text);
}

function exampleTip(tok, a, masked, max) {
  return h("div", {},
    h("div", { class: "sk-tip-head" }, h("code", { class: "sk-tip-token" }, visibleToken(tok))),
    masked ? h("div", { class: "sk-muted" }, "masked (special token)")
      : h("div", {}, "activation ", h("b", { class: "sk-num" }, fmt(a)),
        max > 0 ? h("span", { class: "sk-muted" }, ` (${Math.round((100 * a) / max)}% of max)`) : null));
}

function render({ model, el }) {
  const root = h("div", { class: "sk-root sk-card" });
  el.appendChild(root);
  const tip = new Tooltip(root);
  const content = h("div", {});
  root.append(content);
  function draw() {
    tip.hide();
    clear(content);
    add(content,
      featureHead(model),
      h("div", { class: "sk-stats" }, (model.get("stats") || []).map(statBox)),
      h("div", { class: "sk-card-grid" },
        h("div", {}, histogram(model), logitsPanel(model), neighbours(model)),
        h("div", {}, examples(model, tip))));
  }
  draw();
  const names = ["feature_id", "label", "sae_name", "stats", "groups", "ex_tokens", "ex_group", "ex_acts",
    "ex_mask", "scale_max", "hist_edges", "hist_counts", "hist_xlabel", "top_logits", "bottom_logits", "neighbours"];
  const off = redrawOnChange(model, names, draw);
  return () => { off(); tip.destroy(); };
}

export default { render };
