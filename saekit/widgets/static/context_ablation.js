// ContextAblation: context tokens coloured by the change in the feature's activation at the
// last token when each token is removed. Red = activated less without the token, blue = more.
import {
  h, add, f32, u8, fmt, signedRGB, css, inkFor, visibleToken, tokenSpan, featureHead, mountView,
} from "./_common.js";

const TRAITS = ["tokens", "delta", "ablated", "activation_full", "feature_id", "sae_name", "label", "vmax",
  "mode", "title"];

function readData(model) {
  const tokens = model.get("tokens") || [];
  const delta = f32(model.get("delta"));
  const ablated = u8(model.get("ablated"));
  let max = model.get("vmax");
  if (!(max > 0)) {
    max = 0;
    for (let i = 0; i < tokens.length; i++) if (ablated[i]) max = Math.max(max, Math.abs(delta[i]));
  }
  return { tokens, delta, ablated, max, full: model.get("activation_full") || 0 };
}

// Red for "less without the token" (negative delta), blue for more: signedRGB maps
// positive to red, so the sign is flipped.
const colourOf = (d, max) => signedRGB(max > 0 ? -d / max : 0);

function legend(data) {
  const ramp = h("span", { class: "sk-ramp" });
  const stops = [-1, -0.5, 0, 0.5, 1].map((x, i) => `${css(signedRGB(-x))} ${i * 25}%`);
  ramp.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  return h("div", { class: "sk-legend" },
    h("span", { class: "sk-muted" }, "less without token"),
    fmt(-data.max), ramp, `+${fmt(data.max)}`,
    h("span", { class: "sk-muted" }, "more without token"),
    h("span", { class: "sk-legend-item sk-ca-lastkey" }, h("span", { class: "sk-ca-last-swatch" }), "read here"));
}

function tipContent(data, i) {
  const last = data.tokens.length - 1;
  const box = h("div", {},
    h("div", { class: "sk-tip-head" },
      h("code", { class: "sk-tip-token" }, visibleToken(data.tokens[i])),
      h("span", { class: "sk-muted" }, `position ${i}`)));
  if (i === last) {
    add(box, h("div", {}, "feature activation here: ", h("b", { class: "sk-num" }, fmt(data.full))),
      h("div", { class: "sk-muted" }, "the activation is read at this (last) token"));
    return box;
  }
  if (!data.ablated[i]) {
    add(box, h("div", { class: "sk-muted" }, "not ablated (special token)"));
    return box;
  }
  const d = data.delta[i];
  const without = data.full + d;
  const share = data.full !== 0 ? ` (${d > 0 ? "+" : ""}${Math.round((100 * d) / Math.abs(data.full))}%)` : "";
  add(box,
    h("div", { class: "sk-kv" }, h("span", { class: "sk-muted" }, "activation with token"), h("span", { class: "sk-num" }, fmt(data.full))),
    h("div", { class: "sk-kv" }, h("span", { class: "sk-muted" }, "without token"), h("span", { class: "sk-num" }, fmt(without))),
    h("div", { class: "sk-kv" }, h("span", { class: "sk-muted" }, "change"), h("b", { class: "sk-num" }, `${d > 0 ? "+" : ""}${fmt(d)}${share}`)),
    h("div", { class: "sk-muted", style: { "margin-top": "3px" } },
      d < 0 ? "the feature is weaker without this token" : d > 0 ? "the feature is stronger without this token" : "no change"));
  return box;
}

function ranking(data, spans, tip) {
  const rows = [];
  for (let i = 0; i < data.tokens.length; i++) if (data.ablated[i] && data.delta[i] !== 0) rows.push(i);
  rows.sort((a, b) => data.delta[a] - data.delta[b]);
  const needed = rows.filter((i) => data.delta[i] < 0).slice(0, 6);
  const against = rows.filter((i) => data.delta[i] > 0).reverse().slice(0, 6);
  const column = (title, list) => h("div", {},
    h("div", { class: "sk-sec-title" }, title),
    list.length ? list.map((i) => {
      const rgb = colourOf(data.delta[i], data.max);
      const chip = h("span", { class: "sk-logit-tok", style: { background: css(rgb), color: inkFor(rgb) } },
        visibleToken(data.tokens[i]));
      return h("div", {
        class: "sk-logit-row sk-ca-rank", "data-pos": i,
        onmouseenter: () => { spans[i].classList.add("sk-ca-hot"); tip.show(spans[i], tipContent(data, i)); },
        onmouseleave: () => { spans[i].classList.remove("sk-ca-hot"); tip.scheduleHide(); },
      }, h("span", {}, chip, h("span", { class: "sk-muted sk-num" }, ` @${i}`)), h("span", { class: "sk-num" }, fmt(data.delta[i])));
    }) : h("div", { class: "sk-empty" }, "none"));
  return h("div", { class: "sk-logits sk-ca-ranking" },
    column("Needed most (activation drops)", needed), column("Works against (activation rises)", against));
}

function render({ model, el }) {
  return mountView(model, el, "sk-ca", TRAITS, (root, tip) => {
    const data = readData(model);
    const last = data.tokens.length - 1;
    const title = model.get("title");
    if (title) add(root, h("div", { class: "sk-title" }, title));
    add(root, featureHead(model, model.get("mode") === "replace"
      ? "context ablation (tokens replaced)" : "context ablation (tokens removed)"));
    add(root, h("div", { class: "sk-ca-sub" },
      "activation at the last token ",
      h("code", { class: "sk-tip-token" }, visibleToken(data.tokens[last] ?? "")),
      ": ", h("b", { class: "sk-num" }, fmt(data.full))));
    add(root, legend(data));
    const text = h("div", { class: "sk-doc-text sk-ca-text" });
    const spans = data.tokens.map((tok, i) => {
      const span = tokenSpan(tok, data.ablated[i] ? colourOf(data.delta[i], data.max) : null,
        [i === last && "sk-ca-last", !(data.ablated[i] || i === last) && "sk-masked"], { "data-i": i });
      tip.attach(span, () => tipContent(data, i), { pin: true });
      add(text, span);
      return span;
    });
    add(root, text, ranking(data, spans, tip),
      h("div", { class: "sk-hint" }, "Hover a token for the activation without it · click to pin"));
  });
}

export default { render };
