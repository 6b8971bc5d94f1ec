// TokenHighlight: tokens coloured by a feature's activation (or several, overlaid).
import {
  h, add, clear, f32, i32, u8, fmt, heatRGB, HUES, tintRGB, css, inkFor,
  tokenSpan, visibleToken, Tooltip, listen, setTrait, requestFeature,
} from "./_common.js";

function readData(model) {
  const tokens = model.get("tokens") || [];
  const total = tokens.reduce((n, doc) => n + doc.length, 0);
  return {
    tokens,
    total,
    fids: model.get("feature_ids") || [],
    labels: model.get("feature_labels") || {},
    acts: f32(model.get("acts")),
    mask: u8(model.get("mask")),
    k: model.get("top_k") || 0,
    topIds: i32(model.get("top_ids")),
    topVals: f32(model.get("top_values")),
  };
}

// Activations of feature f for every token: its column, else the per-token top-k lists.
function featureValues(data, f) {
  const out = new Float32Array(data.total);
  const col = data.fids.indexOf(f);
  const nf = data.fids.length;
  if (col >= 0) {
    for (let t = 0; t < data.total; t++) out[t] = data.acts[t * nf + col];
    return out;
  }
  for (let t = 0; t < data.total; t++) {
    for (let j = 0; j < data.k; j++) {
      if (data.topIds[t * data.k + j] === f) out[t] = data.topVals[t * data.k + j];
    }
  }
  return out;
}

function shownFeatures(model) {
  const overlay = model.get("overlay") || [];
  if (overlay.length) return overlay;
  const sel = model.get("selected_feature");
  return sel === null || sel === undefined ? [] : [sel];
}

function scaleMax(model, data, values) {
  const vmax = model.get("vmax");
  if (vmax !== null && vmax !== undefined && vmax > 0) return vmax;
  let m = 0;
  for (let t = 0; t < data.total; t++) if (!data.mask[t] && values[t] > m) m = values[t];
  return m;
}

// Several features: one horizontal band per active feature, each in its own hue.
function paintBands(span, hueValues) {
  const active = hueValues.filter(([, v]) => v > 0.02).map(([hue, v]) => tintRGB(hue, v));
  if (!active.length) { span.style.background = ""; span.style.color = ""; return; }
  if (active.length === 1) {
    span.style.background = css(active[0]);
  } else {
    const step = 100 / active.length;
    const bands = active.map((c, i) => `${css(c)} ${i * step}% ${(i + 1) * step}%`);
    span.style.background = `linear-gradient(to bottom, ${bands.join(", ")})`;
  }
  span.style.color = inkFor(averageRGB(active));
}

function averageRGB(colours) {
  return [0, 1, 2].map((k) => colours.reduce((a, c) => a + c[k], 0) / colours.length);
}

// ----- state ---------------------------------------------------------------------------
// One object holds what the view changes over its life:
//   data      the tokens and activations (readData), replaced when those traits change
//   spans     one <span> per token, in reading order over all documents
//   shown     the features coloured now: [{id, values, max, hue}]
//   tipToken  the token whose tooltip was shown last (-1: none)
function createState(model, root) {
  const st = { model, data: readData(model), spans: [], shown: [], tipToken: -1, tip: new Tooltip(root) };
  st.el = {
    head: h("div", { class: "sk-head" }),
    legend: h("div", { class: "sk-legend" }),
    body: h("div", { class: "sk-docs" }),
  };
  add(root, st.el.head, st.el.legend, st.el.body,
    h("div", { class: "sk-hint" },
      "Hover a token for its top features · click a token to pin · click a feature id to highlight it · shift-click to overlay"));
  return st;
}

// Click on a feature id: show only it; shift-click: add it to (or drop it from) the overlay.
function select(st, id, ev) {
  const { model } = st;
  const overlay = model.get("overlay") || [];
  if (ev && ev.shiftKey) {
    const cur = overlay.length ? overlay.slice() : shownFeatures(model).slice();
    const i = cur.indexOf(id);
    if (i >= 0) cur.splice(i, 1); else cur.push(id);
    setTrait(model, "overlay", cur);
    return;
  }
  model.set("overlay", []);
  setTrait(model, "selected_feature", id);
}

// ----- header and legend -------------------------------------------------------------------
function featureChip(st, id, { compact = false } = {}) {
  const label = st.data.labels[String(id)];
  const idx = st.shown.findIndex((s) => s.id === id);
  const multi = st.shown.length > 1;
  const swatch = h("span", { class: "sk-swatch" });
  if (idx >= 0) swatch.style.background = css(multi ? HUES[idx % HUES.length] : heatRGB(0.75));
  return h("button", {
    class: "sk-chip" + (idx >= 0 ? " sk-on" : ""), type: "button", "data-feature": id,
    title: `feature ${id}${label ? ": " + label : ""} (click: highlight, shift-click: overlay)`,
    onclick: (ev) => { ev.stopPropagation(); select(st, id, ev); },
  }, swatch, `#${id}`, !compact && label ? h("span", { class: "sk-chip-label" }, label) : null);
}

function drawHead(st) {
  const head = clear(st.el.head);
  const title = st.model.get("title");
  if (title) add(head, h("div", { class: "sk-title" }, title));
  const ids = st.data.fids.slice();
  for (const s of st.shown) if (!ids.includes(s.id)) ids.push(s.id);
  add(head, h("div", { class: "sk-chips" }, h("span", { class: "sk-muted" }, "Features"),
    ids.map((id) => featureChip(st, id))));
}

function drawLegend(st) {
  const legend = clear(st.el.legend);
  const { shown } = st;
  if (!shown.length) add(legend, h("span", { class: "sk-muted" }, "No feature selected"));
  else if (shown.length === 1) add(legend, rampLegend(st.data, shown[0]));
  else add(legend, shown.map(hueLegendItem));
}

function rampLegend(data, one) {
  const bar = h("span", { class: "sk-ramp" });
  const stops = [0, 0.25, 0.5, 0.75, 1].map((x) => `${css(heatRGB(x))} ${x * 100}%`);
  bar.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  return [h("span", { class: "sk-muted" }, `#${one.id}`), "0", bar, fmt(one.max),
    data.fids.includes(one.id) ? null
      : h("span", { class: "sk-muted" }, " (from per-token top-k: 0 where not in a token's top k)")];
}

function hueLegendItem(s) {
  const sw = h("span", { class: "sk-swatch" });
  sw.style.background = css(s.hue);
  return h("span", { class: "sk-legend-item" }, sw, `#${s.id}`, h("span", { class: "sk-muted" }, ` max ${fmt(s.max)}`));
}

// ----- tokens --------------------------------------------------------------------------------
function buildTokens(st) {
  const body = clear(st.el.body);
  st.spans = [];
  let t = 0;
  st.data.tokens.forEach((doc, d) => {
    const labels = st.model.get("doc_labels") || [];
    const text = h("div", { class: "sk-doc-text" });
    for (let p = 0; p < doc.length; p++, t++) add(text, tokenEl(st, t, d, p, doc[p]));
    add(body, h("div", { class: "sk-doc" },
      h("div", { class: "sk-doc-label", title: labels[d] || String(d) }, labels[d] || String(d)), text));
  });
}

// Token i (document d, position p): hover shows its tooltip, a click pins it.
function tokenEl(st, i, d, p, token) {
  const { tip } = st;
  const span = tokenSpan(token, null, [st.data.mask[i] && "sk-masked"], {
    "data-i": i,
    onmouseenter: () => showTip(st, i, false),
    onmouseleave: () => tip.scheduleHide(),
    onclick: (ev) => {
      ev.stopPropagation();
      if (tip.pinned && tip.anchor === st.spans[i]) tip.unpin(); else showTip(st, i, true);
    },
  });
  span.dataset.doc = d;
  span.dataset.pos = p;
  st.spans.push(span);
  return span;
}

function recolour(st) {
  const { model, data, tip } = st;
  st.shown = shownFeatures(model).map((id, j) => {
    const values = featureValues(data, id);
    return { id, values, max: scaleMax(model, data, values), hue: HUES[j % HUES.length] };
  });
  st.spans.forEach((span, t) => colourToken(st, span, t));
  drawHead(st);
  drawLegend(st);
  if (st.tipToken >= 0 && tip.anchor) showTip(st, st.tipToken, tip.pinned);
}

function colourToken(st, span, t) {
  const { shown } = st;
  if (st.data.mask[t] || !shown.length) { span.style.background = ""; span.style.color = ""; return; }
  if (shown.length === 1) {
    const s = shown[0];
    const rgb = heatRGB(s.max > 0 ? Math.max(0, s.values[t]) / s.max : 0);
    span.style.background = css(rgb);
    span.style.color = inkFor(rgb);
  } else {
    paintBands(span, shown.map((s) => [s.hue, s.max > 0 ? Math.max(0, s.values[t]) / s.max : 0]));
  }
}

// ----- tooltip -------------------------------------------------------------------------------
function featureRow(st, id, value, max, hueIdx) {
  const label = st.data.labels[String(id)];
  const bar = h("span", { class: "sk-bar" });
  bar.style.width = `${max > 0 ? Math.max(0, Math.min(1, value / max)) * 100 : 0}%`;
  if (hueIdx !== null) bar.style.background = css(st.shown.length > 1 ? HUES[hueIdx % HUES.length] : heatRGB(0.8));
  return h("div", { class: "sk-tip-row" },
    h("button", {
      class: "sk-fid", type: "button", "data-feature": id, title: "highlight this feature (shift: overlay)",
      onclick: (ev) => { ev.stopPropagation(); select(st, id, ev); },
    }, `#${id}`),
    h("span", { class: "sk-tip-label" }, label || ""),
    h("span", { class: "sk-bar-track" }, bar),
    h("span", { class: "sk-num" }, fmt(value)),
    h("button", {
      class: "sk-open", type: "button", title: `open feature ${id}'s card`,
      onclick: (ev) => { ev.stopPropagation(); requestFeature(st.model, id); },
    }, "↗"));
}

function tipContent(st, t) {
  const { data, shown } = st;
  const span = st.spans[t];
  const doc = Number(span.dataset.doc), pos = Number(span.dataset.pos);
  const box = h("div", {},
    h("div", { class: "sk-tip-head" },
      h("code", { class: "sk-tip-token" }, visibleToken(data.tokens[doc][pos])),
      h("span", { class: "sk-muted" }, `doc ${doc} · position ${pos}`)));
  if (data.mask[t]) add(box, h("div", { class: "sk-muted" }, "masked (special token): not coloured"));
  if (shown.length) {
    add(box, h("div", { class: "sk-tip-sec" }, shown.length > 1 ? "Shown features" : "Shown feature"));
    shown.forEach((s, j) => add(box, featureRow(st, s.id, s.values[t], s.max, j)));
  }
  add(box, topFeatureRows(st, t));
  return box;
}

// The token's own top-k features, strongest first.
function topFeatureRows(st, t) {
  const { data } = st;
  const rows = [];
  for (let j = 0; j < data.k; j++) {
    const id = data.topIds[t * data.k + j];
    const v = data.topVals[t * data.k + j];
    if (id >= 0 && v !== 0) rows.push([id, v]);
  }
  rows.sort((a, b) => b[1] - a[1]);
  if (!rows.length) return data.k ? h("div", { class: "sk-muted" }, "no active features") : null;
  const top = rows[0][1];
  return [h("div", { class: "sk-tip-sec" }, "Top features at this token"),
    rows.map(([id, v]) => featureRow(st, id, v, top, null))];
}

function showTip(st, t, pin) {
  st.tipToken = t;
  st.tip.show(st.spans[t], tipContent(st, t), { pin });
}

// ----- lifecycle -------------------------------------------------------------------------------
function rebuild(st) {
  st.data = readData(st.model);
  buildTokens(st);
  recolour(st);
}

function render({ model, el }) {
  const root = h("div", { class: "sk-root sk-th" });
  el.appendChild(root);
  const st = createState(model, root);
  rebuild(st);
  const off = listen(model,
    ["tokens", "acts", "mask", "top_ids", "top_values", "top_k", "feature_ids", "doc_labels", "feature_labels"],
    () => rebuild(st));
  const off2 = listen(model, ["selected_feature", "overlay", "vmax", "title"], () => recolour(st));
  return () => { off(); off2(); st.tip.destroy(); };
}

export default { render };
