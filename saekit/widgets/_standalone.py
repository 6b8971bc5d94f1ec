"""A view as one standalone HTML file: its state as JSON plus its ES module, inlined.

The page needs no kernel and no network: the module runs against a small in-page model
(``get``/``set``/``on``/``off``/``save_changes``/``send``) filled from the JSON payload,
and a Content-Security-Policy forbids every fetch and every inline event handler
(only the page's own module, pinned by its SHA-256, may run).

A click on a feature in the page (a UMAP point, a card's neighbour, a splitting node, a
feature id) is caught by that model: when the export has a page for the feature
(:class:`PageLinks`), the browser goes there; otherwise a note in the page says so and
how to open the feature in a notebook. A click never does nothing.

Example:
    >>> html = standalone_html(view)  # doctest: +SKIP
    >>> html = standalone_html(umap, links=PageLinks({FeatureRef("topk-4608", 7): "cards/topk-4608-7.html"}))
    ... # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from saekit._html import escape, json_for_script
from saekit.errors import SaekitError
from saekit.ids import FeatureRef
from saekit.widgets._base import SaekitView

__all__ = ["PageLinks", "standalone_html"]

_RELATIVE_URL = re.compile(r"^(?![a-zA-Z][a-zA-Z0-9+.-]*:)(?!/)[^\s\\]+$")  # no scheme, not absolute


@dataclass(frozen=True)
class PageLinks:
    """Where a standalone page's feature clicks and navigation links lead.

    Attributes:
        cards: ``FeatureRef -> URL`` of that feature's page, relative to this page
            (e.g. ``"cards/topk-4608-7.html"``); clicks on other features show a note.
        sae: The dictionary of clicks that name only a feature id (a token view of one
            SAE); a card's own ``sae_name`` is used when the view has one.
        nav: ``(relative URL, text)`` links shown above the view (e.g. back to the index).
    """

    cards: Mapping[FeatureRef, str] = field(default_factory=dict)
    sae: str = ""
    nav: Sequence[tuple[str, str]] = ()

    def __post_init__(self) -> None:
        bad = [ref for ref in self.cards if not isinstance(ref, FeatureRef)]
        if bad:
            raise SaekitError(f"PageLinks.cards needs FeatureRef keys; got {bad[:3]}. "
                              "Use saekit.ids.FeatureRef(sae, feature).")
        urls = [*self.cards.values(), *(href for href, _ in self.nav)]
        wrong = [u for u in urls if not isinstance(u, str) or not _RELATIVE_URL.match(u)]
        if wrong:
            raise SaekitError(f"Page links must be relative URLs (no scheme, no leading /); got {wrong[:3]}.")

    def payload(self) -> dict[str, Any]:
        """The JSON the page's model reads: ``{"cards": [[sae, feature, url], ...], "sae": name}``."""
        cards = [[ref.sae, ref.feature, url] for ref, url in sorted(self.cards.items())]
        return {"cards": cards, "sae": self.sae}

_DEFAULT_EXPORT = re.compile(r"^export default\s+", re.M)

_SHIM = """
const __payload = JSON.parse(document.getElementById("saekit-state").textContent);
function __decode(v) {
  const isB64 = v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 1;
  if (isB64 && "$b64" in v) {
    const bin = atob(v.$b64);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    return new DataView(bytes.buffer);
  }
  return v;
}
const __data = {};
for (const [k, v] of Object.entries(__payload)) __data[k] = __decode(v);
// Feature clicks: a message {type: "feature_click", feature: id | {sae, feature}, sae?} or
// {ref: {sae, feature}}. They open the feature's page in this export, or say in the page
// that there is none.
const __links = __payload._links || { cards: [], sae: "" };
const __cards = new Map((__links.cards || []).map(([s, f, url]) => [JSON.stringify([s, f]), url]));
function __asRef(value, sae) {
  const isRef = value && typeof value === "object" && !Array.isArray(value);
  if (isRef) return __asRef(value.feature, value.sae || sae);
  if (!Number.isInteger(value) || value < 0) return null;
  const name = sae || __data.sae_name || __links.sae || "";
  return { sae: String(name), feature: value };
}
function __note(text) {
  const box = document.getElementById("saekit-note");
  box.querySelector("[data-role=text]").textContent = text;
  box.hidden = false;
}
function __open(ref) {
  if (!ref) { __note("This link names no feature of this export, so there is nothing to open."); return; }
  const url = __cards.get(JSON.stringify([ref.sae, ref.feature]));
  if (url) { window.location.assign(url); return; }
  const who = ref.sae ? `${ref.sae} #${ref.feature}` : `feature #${ref.feature}`;
  const sae = ref.sae ? `saes[${JSON.stringify(ref.sae)}]` : "sae";
  __note(`No card for ${who} in this export; open it in a notebook with ` +
    `saekit.explore.feature_card(stats, ${sae}, ${ref.feature}).`);
}
document.querySelector("#saekit-note [data-role=close]").addEventListener("click", () => {
  document.getElementById("saekit-note").hidden = true;
});
const __listeners = {};
const __model = {
  get: (k) => __data[k],
  set: (k, v) => {
    const old = __data[k];
    __data[k] = v;
    if (old !== v) for (const f of (__listeners["change:" + k] || []).slice()) f();
  },
  save_changes: () => {},
  on: (ev, f) => { (__listeners[ev] = __listeners[ev] || []).push(f); },
  off: (ev, f) => { if (ev) __listeners[ev] = (__listeners[ev] || []).filter((g) => g !== f); },
  send: (msg) => {
    if (msg && msg.type === "feature_click") __open(__asRef(msg.ref || msg.feature, msg.sae));
  },
};
(async () => {
  const el = document.getElementById("saekit-view");
  if (__saekit_widget.initialize) await __saekit_widget.initialize({ model: __model });
  await __saekit_widget.render({ model: __model, el });
  document.body.dataset.saekitReady = "1";
})();
"""

_PAGE_CSS = """
body { margin: 24px; background: #f6f8fa; }
#saekit-nav { font: 14px/1.5 system-ui, sans-serif; margin: 0 0 12px; }
#saekit-nav a { margin-right: 1.2em; }
#saekit-note { position: fixed; top: 12px; left: 50%; transform: translateX(-50%); z-index: 1000;
  max-width: min(92vw, 52em); padding: 10px 36px 10px 14px; background: #fff8c5; color: #1f2328;
  border: 1px solid #d4a72c; border-radius: 6px; box-shadow: 0 2px 10px rgba(0, 0, 0, 0.18);
  font: 14px/1.45 system-ui, sans-serif; overflow-wrap: anywhere; }
#saekit-note[hidden] { display: none; }
#saekit-note button { position: absolute; top: 4px; right: 6px; border: 0; background: none;
  font-size: 18px; cursor: pointer; color: #57606a; }
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="generator" content="saekit">
<title>{title}</title>
<style>
{css}
{page_css}
</style>
</head>
<body>
{nav}<div id="saekit-note" role="status" aria-live="polite" hidden><span data-role="text"></span>\
<button type="button" data-role="close" aria-label="Dismiss">×</button></div>
<div id="saekit-view"></div>
<script type="application/json" id="saekit-state">{payload}</script>
<script type="module">{module}</script>
</body>
</html>
"""


def standalone_html(view: SaekitView, *, title: str | None = None, links: PageLinks | None = None) -> str:
    """Render ``view`` as a self-contained HTML page that works offline from ``file://``.

    Args:
        view: Any saekit view.
        title: The page title (escaped); defaults to the view's class name.
        links: Pages of this export that feature clicks open, and links shown above the
            view. Without them every feature click shows a note in the page.

    Returns:
        The HTML text. Interactions that need Python (steering) are disabled; a click on
        a feature opens its page in the export or says in the page that there is none.
    """
    links = links or PageLinks()
    module = _module_source(str(view._esm)) + _SHIM
    for bad in ("</script", "<!--"):
        if bad in module.lower():
            raise SaekitError(f"The view module contains {bad!r}; it cannot be inlined safely.")
    digest = base64.b64encode(hashlib.sha256(module.encode("utf-8")).digest()).decode("ascii")
    csp = (
        "default-src 'none'; "
        f"script-src 'sha256-{digest}'; "
        "style-src 'unsafe-inline'; img-src data:; font-src data:"
    )
    payload = {**view.view_state_json(), "_offline": True, "_links": links.payload()}
    return _PAGE.format(
        csp=escape(csp),
        title=escape(title or type(view).__name__),
        css=str(view._css).replace("</", "<\\/"),
        page_css=_PAGE_CSS,
        nav=_nav_html(links.nav),
        payload=json_for_script(payload),
        module=module,
    )


def _module_source(esm: str) -> str:
    if len(_DEFAULT_EXPORT.findall(esm)) != 1:
        raise SaekitError("A view module needs exactly one `export default` at a line start.")
    return _DEFAULT_EXPORT.sub("const __saekit_widget = ", esm)


def _nav_html(nav: Sequence[tuple[str, str]]) -> str:
    if not nav:
        return ""
    items = "".join(f'<a href="{escape(href)}">{escape(text)}</a>' for href, text in nav)
    return f'<nav id="saekit-nav">{items}</nav>\n'
