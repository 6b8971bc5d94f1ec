"""A view as one standalone HTML file: its state as JSON plus its ES module, inlined.

The page needs no kernel and no network: the module runs against a small in-page model
(``get``/``set``/``on``/``off``/``save_changes``/``send``) filled from the JSON payload,
and a Content-Security-Policy forbids every fetch and every inline event handler
(only the page's own module, pinned by its SHA-256, may run).

Example:
    >>> html = standalone_html(view)  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import hashlib
import re

from saekit._html import escape, json_for_script
from saekit.errors import SaekitError
from saekit.widgets._base import SaekitView

__all__ = ["standalone_html"]

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
    if (msg && msg.type === "feature_click") __model.set("requested_feature", msg.feature);
  },
};
(async () => {
  const el = document.getElementById("saekit-view");
  if (__saekit_widget.initialize) await __saekit_widget.initialize({ model: __model });
  await __saekit_widget.render({ model: __model, el });
  document.body.dataset.saekitReady = "1";
})();
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
body {{ margin: 24px; background: #f6f8fa; }}
</style>
</head>
<body>
<div id="saekit-view"></div>
<script type="application/json" id="saekit-state">{payload}</script>
<script type="module">{module}</script>
</body>
</html>
"""


def standalone_html(view: SaekitView, *, title: str | None = None) -> str:
    """Render ``view`` as a self-contained HTML page that works offline from ``file://``.

    Args:
        view: Any saekit view.
        title: The page title (escaped); defaults to the view's class name.

    Returns:
        The HTML text. Interactions that need Python (steering, clicks that open a
        card) are disabled or stay local in the page.
    """
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
    payload = {**view.view_state_json(), "_offline": True}
    return _PAGE.format(
        csp=escape(csp),
        title=escape(title or type(view).__name__),
        css=str(view._css).replace("</", "<\\/"),
        payload=json_for_script(payload),
        module=module,
    )


def _module_source(esm: str) -> str:
    if len(_DEFAULT_EXPORT.findall(esm)) != 1:
        raise SaekitError("A view module needs exactly one `export default` at a line start.")
    return _DEFAULT_EXPORT.sub("const __saekit_widget = ", esm)
