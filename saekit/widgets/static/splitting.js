// FeatureSplitting: one column per dictionary size, the parent on the left, edges with
// decoder cosines to its children, each node with its top examples. Click selects a node
// (and, through Python, rings it in a linked UMAP view).
import {
  h, s, add, clear, f32, fmt, pct, heatRGB, tokenSpan, visibleToken, Tooltip, redrawOnChange, setTrait,
} from "./_common.js";

function examplesByNode(model) {
  const tokens = model.get("ex_tokens") || [];
  const owner = model.get("ex_node") || [];
  const acts = f32(model.get("ex_acts"));
  const out = new Map();
  let pos = 0;
  tokens.forEach((toks, e) => {
    const list = out.get(owner[e]) || [];
    list.push({ tokens: toks, acts: acts.subarray(pos, pos + toks.length) });
    out.set(owner[e], list);
    pos += toks.length;
  });
  return out;
}

function snippet(ex, max, tip) {
  let m = max;
  if (!(m > 0)) for (const a of ex.acts) m = Math.max(m, a);
  const line = h("div", { class: "sk-node-ex" });
  ex.tokens.forEach((tok, i) => {
    const a = ex.acts[i];
    const span = tokenSpan(tok, a > 0 && m > 0 ? heatRGB(Math.min(1, a / m)) : null);
    span.addEventListener("mouseenter", () => tip.show(span, h("div", {},
      h("div", { class: "sk-tip-head" }, h("code", { class: "sk-tip-token" }, visibleToken(tok))),
      h("div", {}, "activation ", h("b", { class: "sk-num" }, fmt(a))))));
    span.addEventListener("mouseleave", () => tip.scheduleHide());
    add(line, span);
  });
  return line;
}

// ----- state ---------------------------------------------------------------------------
// One object holds what the view changes over its life:
//   nodeEls  one element per node, by node index (rebuilt by draw)
//   edgeEls  the drawn edges: [{p, c, path}] (redrawn after every layout change)
//   cols     the columns' container; null before the first draw
function createState(model, root) {
  return { model, root, tip: new Tooltip(root), svg: s("svg", { class: "sk-split-edges" }), nodeEls: [], edgeEls: [], cols: null };
}

function select(st, i) {
  const node = (st.model.get("nodes") || [])[i];
  if (!node) return;
  setTrait(st.model, "selected", i);
  st.model.send({ type: "feature_click", feature: node.feature, node: i, sae: node.sae });
}

// ----- edges (measured from the laid-out nodes) -----------------------------------------------
function drawEdges(st) {
  const { svg } = st;
  clear(svg);
  st.edgeEls = [];
  if (!st.cols) return;
  const base = st.root.getBoundingClientRect();
  const sel = st.model.get("selected");
  for (const [p, c, cos] of st.model.get("edges") || []) {
    const a = st.nodeEls[p], b = st.nodeEls[c];
    if (!a || !b) continue;
    const { path, label } = edgeEl(a.getBoundingClientRect(), b.getBoundingClientRect(), base, cos, sel === p || sel === c);
    path.setAttribute("data-edge", `${p}-${c}`);
    svg.append(path, label);
    st.edgeEls.push({ p, c, path });
  }
  svg.setAttribute("viewBox", `0 0 ${base.width} ${base.height}`);
}

// A curve from the parent's right side to the child's left, its width and opacity by cosine.
function edgeEl(ra, rb, base, cos, on) {
  const x1 = ra.right - base.left, y1 = ra.top + ra.height / 2 - base.top;
  const x2 = rb.left - base.left, y2 = rb.top + Math.min(rb.height / 2, 22) - base.top;
  const mx = (x1 + x2) / 2;
  const path = s("path", {
    d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, fill: "none",
    stroke: on ? "#c2410c" : "#8c959f", "stroke-width": (0.8 + 3.2 * Math.max(0, cos) ** 2).toFixed(2),
    "stroke-opacity": (0.35 + 0.6 * Math.max(0, cos)).toFixed(2),
  });
  const lx = x2 - 26, ly = y2 - 6;
  const text = s("text", { x: lx, y: ly, "text-anchor": "middle" }, fmt(cos, 2));
  const label = s("g", {}, s("rect", { x: lx - 15, y: ly - 10, width: 30, height: 13, rx: 3 }), text);
  return { path, label };
}

function highlightEdges(st, i) {
  st.edgeEls.forEach((e) => { if (e.p === i || e.c === i) e.path.setAttribute("stroke", "#c2410c"); });
}

// ----- nodes and columns ---------------------------------------------------------------------
function nodeEl(st, node, i, ctx) {
  const parent = ctx.cosTo.get(i);
  const exs = (ctx.examples.get(i) || []);
  return h("div", { class: "sk-node" + (i === ctx.sel ? " sk-sel" : ""), "data-node": i, "data-feature": node.feature,
    role: "button", tabindex: 0, title: `${node.sae} #${node.feature}: click to select and open`,
    onclick: () => select(st, i), onkeydown: (ev) => { if (ev.key === "Enter") select(st, i); },
    onmouseenter: () => highlightEdges(st, i),
    onmouseleave: () => drawEdges(st),
  },
  h("div", { class: "sk-node-head" },
    h("span", { class: "sk-fid" }, `#${node.feature}`),
    h("span", { class: "sk-card-sae" }, node.sae),
    node.density !== null && node.density !== undefined ? h("span", { class: "sk-muted sk-num", style: { "margin-left": "auto" } }, pct(node.density)) : null),
  node.label ? h("div", { class: "sk-node-label", title: node.label }, node.label) : null,
  parent ? h("div", { class: "sk-muted", style: { "font-size": "11px" } }, `cos ${fmt(parent[1], 3)} to #${ctx.nodes[parent[0]].feature}`) : null,
  exs.slice(0, 3).map((ex) => snippet(ex, node.max_act, st.tip)));
}

function columnsEl(st) {
  const { model } = st;
  const columns = model.get("columns") || [];
  const ctx = {
    nodes: model.get("nodes") || [], sel: model.get("selected"), examples: examplesByNode(model),
    cosTo: new Map((model.get("edges") || []).map(([p, c, cos]) => [c, [p, cos]])),
  };
  const cols = h("div", { class: "sk-split-cols" });
  cols.style.gridTemplateColumns = `repeat(${Math.max(1, columns.length)}, minmax(0, 1fr))`;
  const colEls = columns.map((name, k) => h("div", { class: "sk-split-col" + (k === 0 ? " sk-root-col" : "") },
    h("div", { class: "sk-split-coltitle" }, name)));
  const body = colEls.map(() => h("div", { class: "sk-split-colbody" }));
  colEls.forEach((c, k) => add(c, body[k]));
  st.nodeEls = ctx.nodes.map((node, i) => {
    const el = nodeEl(st, node, i, ctx);
    add(body[node.column] || body[0], el);
    return el;
  });
  return add(cols, colEls);
}

function draw(st) {
  const { root, model } = st;
  st.tip.hide();
  clear(root);
  const title = model.get("title");
  if (title) add(root, h("div", { class: "sk-title" }, title));
  st.cols = columnsEl(st);
  add(root, st.svg, st.cols,
    h("div", { class: "sk-hint" }, "Edges: decoder cosine between a feature and the larger dictionary's features it matches best · click a node to select it (and ring it in a linked UMAP)"));
  requestAnimationFrame(() => drawEdges(st));
}

// ----- lifecycle -------------------------------------------------------------------------------
function render({ model, el }) {
  const root = h("div", { class: "sk-root sk-split" });
  el.appendChild(root);
  const st = createState(model, root);
  draw(st);
  const ro = typeof ResizeObserver !== "undefined" ? new ResizeObserver(() => drawEdges(st)) : null;
  if (ro) ro.observe(root);
  const off = redrawOnChange(model, ["columns", "nodes", "edges", "ex_tokens", "ex_node", "ex_acts", "title", "selected"],
    () => draw(st));
  return () => { off(); if (ro) ro.disconnect(); st.tip.destroy(); };
}

export default { render };
