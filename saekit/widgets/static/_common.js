// Shared front-end helpers for saekit's views (inlined into each view's module).
// Rule: data never reaches innerHTML. Text goes in with textContent / text nodes,
// attributes with setAttribute; `h()` below is the only way views build DOM.

const SVG_NS = "http://www.w3.org/2000/svg";

// h("div", {class: "x", onclick: fn, style: {color: "red"}}, "text", child) -> Element
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  applyAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  applyAttrs(el, attrs);
  appendAll(el, children);
  return el;
}

function applyAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "style" && typeof value === "object") {
      for (const [p, v] of Object.entries(value)) el.style.setProperty(p, String(v));
    } else {
      const text = value === true ? "" : String(value);
      el.setAttribute(key, key === "title" ? escapeHidden(text) : text);
    }
  }
}

function appendAll(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.appendChild(child instanceof Node ? child : document.createTextNode(escapeHidden(String(child))));
  }
}

// --- untrusted text -------------------------------------------------------------------
// Characters that act on the text around them or do not show: C0/C1 controls (but tab,
// newline and carriage return), bidi embeddings, overrides, isolates and marks, line and
// paragraph separators, zero-width space, word joiner and BOM. h() writes every text child
// and title with them escaped, so no string from the data can reorder or hide the page's
// text. (Zero-width (non-)joiners stay: scripts and emoji sequences need them.)
const HIDDEN = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F\u061C\u200B\u200E\u200F\u2028-\u202E\u2060-\u2069\uFEFF]/g;
const HIDDEN_ONE = new RegExp(`^${HIDDEN.source}$`);

// "a\u202Eb" -> "a⟨U+202E⟩b"
export function escapeHidden(text) {
  return text.replace(HIDDEN, hiddenName);
}

function hiddenName(ch) {
  return `⟨U+${ch.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}⟩`;
}

// el.append() would print null/false as text; add() skips them like h() does.
export function add(el, ...children) {
  appendAll(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

// Binary traits arrive as DataView (ipywidgets buffers), ArrayBuffer, or, in a
// standalone export, as already-built typed arrays.
function typed(value, Kind) {
  if (value === undefined || value === null) return new Kind(0);
  if (value instanceof Kind) return value;
  if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
    const buf = value instanceof ArrayBuffer ? value : value.buffer;
    const off = value instanceof ArrayBuffer ? 0 : value.byteOffset;
    const len = value instanceof ArrayBuffer ? value.byteLength : value.byteLength;
    if (off % Kind.BYTES_PER_ELEMENT === 0) return new Kind(buf, off, len / Kind.BYTES_PER_ELEMENT);
    return new Kind(buf.slice(off, off + len));
  }
  return Kind.from(value);
}

export const f32 = (v) => typed(v, Float32Array);
export const f64 = (v) => typed(v, Float64Array);
export const i32 = (v) => typed(v, Int32Array);
export const u8 = (v) => typed(v, Uint8Array);

// Number formatting: 3 significant digits, plain for ordinary sizes.
export function fmt(x, digits = 3) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  const a = Math.abs(x);
  if (a === 0) return "0";
  if (a >= 1e3 && a < 1e6) return x.toFixed(0);
  if (a < 1e-3 || a >= 1e6) return x.toExponential(digits - 1);
  return String(Number(x.toPrecision(digits)));
}

export function pct(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "–";
  if (x === 0) return "0%";
  const p = 100 * x;
  return (p < 0.01 ? p.toExponential(1) : Number(p.toPrecision(3))) + "%";
}

// --- colour -----------------------------------------------------------------------
// Sequential white -> orange -> red (ColorBrewer OrRd), used for activations.
const ORRD = [
  [255, 255, 255], [254, 232, 200], [253, 212, 158], [253, 187, 132],
  [252, 141, 89], [239, 101, 72], [215, 48, 31], [179, 0, 0],
];

function lerpStops(stops, t) {
  const x = Math.max(0, Math.min(1, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return stops[i].map((c, k) => Math.round(c + f * (stops[i + 1][k] - c)));
}

export function heatRGB(t) {
  return lerpStops(ORRD, t);
}

// Categorical hues for overlaid features (Okabe-Ito, colour-blind safe).
export const HUES = [
  [230, 97, 1], [0, 114, 178], [0, 158, 115], [204, 121, 167],
  [86, 180, 233], [213, 94, 0], [240, 228, 66], [0, 0, 0],
];

export function tintRGB(hue, t) {
  const a = Math.max(0, Math.min(1, t)) * 0.85;
  return hue.map((c) => Math.round(255 + a * (c - 255)));
}

export function css(rgb) {
  return `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})`;
}

export function inkFor(rgb) {
  const lum = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2];
  return lum < 140 ? "#fff" : "#111";
}

// Diverging blue <- white -> red for signed values (logit effects).
export function signedRGB(t) {
  const a = Math.max(-1, Math.min(1, t));
  const end = a >= 0 ? [215, 48, 31] : [33, 102, 172];
  return tintRGB(end, Math.abs(a) / 0.85);
}

// --- tokens -------------------------------------------------------------------------
// Tokens longer than this (in visible characters) are cut short with an ellipsis; the
// full text is in the token's title and tooltip.
export const LONG_TOKEN = 48;

// A token as DOM: text with visible markers for newlines (↵ + line break; no break with
// breaks=false), tabs (⇥) and hidden characters (⟨U+202E⟩).
export function tokenContent(token, { breaks = true } = {}) {
  if (token === "") return [h("span", { class: "sk-tok-mark" }, "∅")];
  const out = [];
  const parts = String(token).replace(/\r/g, "").split("\n");
  parts.forEach((part, i) => {
    if (part) {
      for (const [j, seg] of part.split("\t").entries()) {
        if (j > 0) out.push(h("span", { class: "sk-tok-mark" }, "⇥"));
        if (seg) out.push(...markHidden(seg));
      }
    }
    if (i < parts.length - 1) out.push(h("span", { class: "sk-tok-mark" }, "↵"), breaks ? h("br") : null);
  });
  return out;
}

// Text pieces with each hidden character as a marker span.
function markHidden(text) {
  return text.split(new RegExp(`(${HIDDEN.source})`)).filter(Boolean)
    .map((piece) => (HIDDEN_ONE.test(piece) ? h("span", { class: "sk-tok-mark" }, hiddenName(piece)) : piece));
}

export function visibleToken(token) {
  if (token === "") return "∅";
  return escapeHidden(String(token).replace(/\r/g, "").replace(/\n/g, "↵").replace(/\t/g, "⇥"));
}

// Background rgb, with ink that stays readable on it.
export function fill(el, rgb) {
  el.style.background = css(rgb);
  el.style.color = inkFor(rgb);
  return el;
}

// One token of a text strip: <span class="sk-tok ...classes"> filled with rgb (null: unfilled).
// attrs may hold listeners (onclick...). A long token is cut short (class sk-tok-long) and
// carries its full visible text as its title.
export function tokenSpan(token, rgb, classes = [], attrs = {}) {
  const shown = visibleToken(token);
  const long = shown.length > LONG_TOKEN;
  const span = h("span", {
    class: ["sk-tok", ...classes, long && "sk-tok-long"].filter(Boolean).join(" "), ...attrs,
    title: long ? shown : null,
  }, tokenContent(token, { breaks: !long }));
  if (rgb) fill(span, rgb);
  return span;
}

// --- tooltip ------------------------------------------------------------------------
// One floating box per view, attached to <body> with position: fixed so that no
// notebook output area (overflow: hidden/auto) can clip it. Hover shows it; a click
// pins it until a click elsewhere.
export class Tooltip {
  constructor(root) {
    this.root = root;
    this.box = h("div", { class: "sk-root sk-tip", role: "tooltip" });
    this.box.style.display = "none";
    this.pinned = false;
    this.anchor = null;
    this._hideTimer = null;
    this.box.addEventListener("mouseenter", () => clearTimeout(this._hideTimer));
    this.box.addEventListener("mouseleave", () => this.scheduleHide());
    (root.ownerDocument || document).body.appendChild(this.box);
    this._outside = (ev) => {
      if (!this.pinned || this.box.contains(ev.target)) return;
      if (this.anchor && this.anchor.contains(ev.target)) return;
      this.unpin();
    };
    this._onScroll = () => { if (this.anchor) this.place(); };
    document.addEventListener("mousedown", this._outside);
    window.addEventListener("scroll", this._onScroll, true);
  }
  show(anchor, content, { pin = false } = {}) {
    const same = anchor === this.anchor;
    if (this.pinned && !pin && !same) return;
    clearTimeout(this._hideTimer);
    this.pinned = pin || (this.pinned && same);
    this.anchor = anchor;
    clear(this.box).appendChild(content);
    this.box.classList.toggle("sk-pinned", this.pinned);
    this.box.style.display = "block";
    this.place();
  }
  place() {
    if (!this.anchor || !this.anchor.isConnected) { this.hide(); return; }
    const r = this.anchor.getBoundingClientRect();
    const w = this.box.offsetWidth, hgt = this.box.offsetHeight;
    const left = Math.max(4, Math.min(r.left, window.innerWidth - w - 8));
    const below = r.bottom + 6;
    const top = below + hgt > window.innerHeight - 4 && r.top - hgt - 6 > 4 ? r.top - hgt - 6 : below;
    this.box.style.left = `${left}px`;
    this.box.style.top = `${top}px`;
  }
  // Hover over anchor shows content(); with pin, a click pins it there and a second unpins.
  attach(anchor, content, { pin = false } = {}) {
    anchor.addEventListener("mouseenter", () => this.show(anchor, content()));
    anchor.addEventListener("mouseleave", () => this.scheduleHide());
    if (!pin) return;
    anchor.addEventListener("click", (ev) => {
      ev.stopPropagation();
      this.togglePin(anchor, content);
    });
  }
  togglePin(anchor, content) {
    if (this.pinned && this.anchor === anchor) this.unpin();
    else this.show(anchor, content(), { pin: true });
  }
  scheduleHide() {
    if (this.pinned) return;
    clearTimeout(this._hideTimer);
    this._hideTimer = setTimeout(() => this.hide(), 250);
  }
  hide() {
    this.box.style.display = "none";
    this.anchor = null;
    this.pinned = false;
  }
  unpin() {
    this.pinned = false;
    this.hide();
  }
  destroy() {
    document.removeEventListener("mousedown", this._outside);
    window.removeEventListener("scroll", this._onScroll, true);
    clearTimeout(this._hideTimer);
    this.box.remove();
  }
}

// --- one-feature views -----------------------------------------------------------------
// Header: "Feature #id", the SAE's name and the label when set, then an optional note.
export function featureHead(model, note) {
  const sae = model.get("sae_name"), label = model.get("label");
  return h("div", { class: "sk-card-head" },
    h("span", { class: "sk-card-id" }, `Feature #${model.get("feature_id")}`),
    sae ? h("span", { class: "sk-card-sae", title: sae }, sae) : null,
    label ? h("span", { class: "sk-card-label", title: label }, label) : null,
    note ? h("span", { class: "sk-muted" }, note) : null);
}

// The feature's direct logit effects: traits top_logits / bottom_logits ([token, value]
// rows), both columns coloured on one scale. null when there are none.
export function logitsPanel(model) {
  const top = model.get("top_logits") || [];
  const bottom = model.get("bottom_logits") || [];
  if (!top.length && !bottom.length) return null;
  const maxAbs = Math.max(0, ...top.map((r) => Math.abs(r[1])), ...bottom.map((r) => Math.abs(r[1])));
  return h("div", { class: "sk-panel" },
    h("div", { class: "sk-logits" },
      logitColumn("Negative logits", bottom, maxAbs),
      logitColumn("Positive logits", top, maxAbs)));
}

function logitColumn(title, rows, maxAbs) {
  return h("div", {},
    h("div", { class: "sk-sec-title" }, title),
    rows.length ? rows.map(([tok, v]) => {
      const rgb = signedRGB(maxAbs > 0 ? v / maxAbs : 0);
      return h("div", { class: "sk-logit-row" },
        h("span", { class: "sk-logit-tok", title: visibleToken(tok),
          style: { background: css(rgb), color: inkFor(rgb) } }, visibleToken(tok)),
        h("span", { class: "sk-num" }, fmt(v)));
    }) : h("div", { class: "sk-empty" }, "none"));
}

// --- model helpers --------------------------------------------------------------------
export function listen(model, names, fn) {
  const handlers = names.map((n) => [`change:${n}`, () => fn(n)]);
  for (const [ev, cb] of handlers) model.on(ev, cb);
  return () => { for (const [ev, cb] of handlers) model.off(ev, cb); };
}

// Call draw() once after a burst of trait changes (update() sets many traits at once).
export function redrawOnChange(model, names, draw) {
  let pending = false;
  return listen(model, names, () => {
    if (pending) return;
    pending = true;
    queueMicrotask(() => { pending = false; draw(); });
  });
}

// A view's life: a root <div class="sk-root cls"> with its tooltip; paint(root, tip) fills
// the root now and again after the named traits change. Returns the view's cleanup.
export function mountView(model, el, cls, names, paint) {
  const root = h("div", { class: `sk-root ${cls}` });
  el.appendChild(root);
  const tip = new Tooltip(root);
  const draw = () => {
    tip.hide();
    clear(root);
    paint(root, tip);
  };
  draw();
  const off = redrawOnChange(model, names, draw);
  return () => { off(); tip.destroy(); };
}

export function setTrait(model, name, value) {
  model.set(name, value);
  model.save_changes();
}

export function requestFeature(model, id) {
  model.send({ type: "feature_click", feature: id });
}
