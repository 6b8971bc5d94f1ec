// LogitAttribution: activation as each token's background, the feature's effect on the
// token's log-likelihood (from ablation) as a coloured underline; logit effects and an
// attribution ranking beside it. Blue = the feature makes the token more likely.
import {
  h, add, f32, i32, u8, fmt, heatRGB, signedRGB, css, visibleToken, tokenSpan, featureHead, logitsPanel,
  mountView, requestFeature,
} from "./_common.js";

const TRAITS = ["tokens", "acts", "mask", "effect", "has_effect", "act_max", "effect_max", "feature_id",
  "sae_name", "label", "title", "top_logits", "bottom_logits", "attr_target", "attr_token", "attr_features",
  "attr_values", "attr_acts", "feature_labels", "can_choose", "busy", "error"];

function readData(model) {
  return {
    tokens: model.get("tokens") || [],
    acts: f32(model.get("acts")),
    mask: u8(model.get("mask")),
    effect: f32(model.get("effect")),
    has: u8(model.get("has_effect")),
    actMax: model.get("act_max") || 0,
    effMax: model.get("effect_max") || 0,
  };
}

// effect = log p(ablated) - log p(clean): negative means the feature helped -> blue.
function underline(effect, max) {
  if (!(max > 0) || Math.abs(effect) < 0.02 * max) return null;
  const m = Math.min(1, Math.abs(effect) / max);
  const rgb = signedRGB(Math.sign(effect) * (0.35 + 0.65 * m));
  return { rgb, px: 1 + Math.round(3 * m) };
}

function signed(x) {
  return `${x > 0 ? "+" : ""}${fmt(x)}`;
}

function legend(data) {
  const ramp = h("span", { class: "sk-ramp" });
  const stops = [0, 0.25, 0.5, 0.75, 1].map((x) => `${css(heatRGB(x))} ${x * 100}%`);
  ramp.style.background = `linear-gradient(to right, ${stops.join(", ")})`;
  const key = (sign, text) => h("span", { class: "sk-legend-item" },
    h("span", { class: "sk-la-under", style: { "border-color": css(signedRGB(sign)) } }), text);
  return h("div", { class: "sk-legend" },
    h("span", { class: "sk-muted" }, "activation"), "0", ramp, fmt(data.actMax),
    h("span", { style: { width: "10px" } }),
    key(-1, "feature makes token more likely"), key(1, "less likely"),
    h("span", { class: "sk-muted" }, `(max |Δ log p| ${fmt(data.effMax)})`));
}

function tipContent(model, data, i) {
  const box = h("div", {},
    h("div", { class: "sk-tip-head" },
      h("code", { class: "sk-tip-token" }, visibleToken(data.tokens[i])),
      h("span", { class: "sk-muted" }, `position ${i}`)));
  if (data.mask[i]) add(box, h("div", { class: "sk-muted" }, "special token"));
  const a = data.acts[i];
  add(box, h("div", { class: "sk-kv" }, h("span", { class: "sk-muted" }, "activation"),
    h("span", { class: "sk-num" }, fmt(a), data.actMax > 0 && a > 0 ? h("span", { class: "sk-muted" }, ` (${Math.round((100 * a) / data.actMax)}% of max)`) : null)));
  if (data.has[i]) {
    const e = data.effect[i];
    add(box,
      h("div", { class: "sk-kv" }, h("span", { class: "sk-muted" }, "Δ log p when ablated"), h("b", { class: "sk-num" }, signed(e))),
      h("div", { class: "sk-muted", style: { "margin-top": "3px" } },
        e < 0 ? "the feature makes this token more likely" : e > 0 ? "the feature makes this token less likely" : "no effect on this token",
        ` (predicted at position ${i - 1})`));
  } else {
    add(box, h("div", { class: "sk-muted" }, "nothing predicts this token"));
  }
  if (model.get("can_choose") && i >= 1 && !model.get("_offline")) {
    add(box, h("div", { class: "sk-hint" }, "click: rank features for predicting this token"));
  }
  return box;
}

function attribution(model) {
  const target = model.get("attr_target");
  const status = model.get("busy") ? h("span", { class: "sk-muted" }, "ranking…") : null;
  if (!target) {
    if (!model.get("can_choose") || model.get("_offline")) return status;
    return h("div", { class: "sk-panel" }, h("div", { class: "sk-sec-title" }, "Attribution"),
      h("div", { class: "sk-empty" }, "Click a token to rank the features that predict it."), status);
  }
  const rows = attributionRows(model);
  return h("div", { class: "sk-panel sk-attr" },
    h("div", { class: "sk-sec-title" }, "Attribution"),
    h("div", { class: "sk-attr-head" }, "predicting", h("code", { class: "sk-tip-token" }, target), status),
    h("div", { class: "sk-muted", style: { "font-size": "11.5px", "margin-bottom": "4px" } },
      "activation × gradient of the logit; blue supports the prediction"),
    rows.length ? rows : h("div", { class: "sk-empty" }, "no active features"));
}

function attributionRows(model) {
  const feats = i32(model.get("attr_features"));
  const vals = f32(model.get("attr_values"));
  const acts = f32(model.get("attr_acts"));
  const ctx = { labels: model.get("feature_labels") || {}, self: model.get("feature_id"), max: 0 };
  for (const v of vals) ctx.max = Math.max(ctx.max, Math.abs(v));
  return Array.from(feats, (id, j) => attributionRow(model, ctx, id, vals[j], acts[j]));
}

// One feature's attribution: a bar left (against) or right (for) of the middle line.
function attributionRow(model, ctx, id, v, act) {
  const bar = h("span", { class: "sk-attr-bar" });
  const w = ctx.max > 0 ? (50 * Math.abs(v)) / ctx.max : 0;
  bar.style.left = v >= 0 ? "50%" : `${50 - w}%`;
  bar.style.width = `${w}%`;
  bar.style.background = css(signedRGB(v >= 0 ? -0.8 : 0.8));
  const open = (ev) => { ev.stopPropagation(); requestFeature(model, id); };
  return h("div", { class: "sk-attr-row" + (id === ctx.self ? " sk-self" : ""), "data-feature": id,
    title: `activation ${fmt(act)}, attribution ${signed(v)}` },
  h("button", { class: "sk-fid", type: "button", "data-feature": id, title: `show feature ${id}`, onclick: open }, `#${id}`),
  h("span", { class: "sk-tip-label" }, ctx.labels[String(id)] || ""),
  h("span", { class: "sk-attr-track" }, h("span", { class: "sk-attr-mid" }), bar),
  h("span", { class: "sk-num" }, signed(v)),
  h("button", { class: "sk-open", type: "button", title: `open feature ${id}`, onclick: open }, "↗"));
}

// The text: activation as background, effect as underline; hover for details, click to
// rank the features predicting a token (when Python can) or to pin the tooltip.
function tokenText(model, data, tip, choose) {
  const text = h("div", { class: "sk-doc-text sk-la-text" + (choose ? " sk-la-clickable" : "") });
  const target = model.get("attr_token");
  data.tokens.forEach((tok, i) => {
    const rgb = data.mask[i] ? null : heatRGB(data.actMax > 0 ? Math.max(0, data.acts[i]) / data.actMax : 0);
    const span = tokenSpan(tok, rgb, [data.mask[i] && "sk-masked", i === target && "sk-la-target"], { "data-i": i });
    const u = data.has[i] ? underline(data.effect[i], data.effMax) : null;
    if (u) {
      span.style.boxShadow = `inset 0 -${u.px}px 0 ${css(u.rgb)}`;
      span.dataset.effect = data.effect[i] < 0 ? "up" : "down";
    }
    const content = () => tipContent(model, data, i);
    tip.attach(span, content);
    span.addEventListener("click", (ev) => {
      ev.stopPropagation();
      if (choose && i >= 1) model.send({ type: "choose_prediction", token: i });
      else tip.togglePin(span, content);
    });
    add(text, span);
  });
  return text;
}

function render({ model, el }) {
  return mountView(model, el, "sk-la", TRAITS, (root, tip) => {
    const data = readData(model);
    const title = model.get("title");
    if (title) add(root, h("div", { class: "sk-title" }, title));
    add(root, featureHead(model, "logit attribution"));
    add(root, legend(data));
    const choose = model.get("can_choose") && !model.get("_offline");
    const err = model.get("error");
    add(root, h("div", { class: "sk-la-grid" },
      h("div", {}, tokenText(model, data, tip, choose), err ? h("div", { class: "sk-error" }, err) : null),
      h("div", {}, logitsPanel(model), attribution(model))),
    h("div", { class: "sk-hint" }, choose
      ? "Hover a token for its activation and effect · click a token to rank the features that predict it · click a feature id to show it"
      : "Hover a token for its activation and effect · click a feature id to open it"));
  });
}

export default { render };
