"""The offline explorer's links: every card is reachable, every link target exists, nothing leaves its folder.

(The clicks themselves, in a real browser: tests/browser/test_explorer_browser.py.)
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest
from _explorer import build_explorer

from saekit._demo_outputs import card_file
from saekit.errors import SaekitError
from saekit.ids import FeatureRef
from saekit.widgets._standalone import PageLinks, standalone_html


class _Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hrefs += [v for k, v in attrs if tag == "a" and k == "href" and v]


def _hrefs(page: Path) -> list[str]:
    parser = _Hrefs()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.hrefs


def _payload(page: Path) -> dict:
    text = page.read_text(encoding="utf-8")
    return json.loads(re.search(r'id="saekit-state">(.*?)</script>', text, re.S).group(1))


def _target(page: Path, href: str) -> Path:
    return (page.parent / unquote(href)).resolve()


@pytest.fixture(scope="module")
def explorer(tiny_llama, tmp_path_factory):  # type: ignore[no-untyped-def]
    return build_explorer(tmp_path_factory.mktemp("explorer") / "out", tiny_llama)


def test_index_links_every_page_and_every_card(explorer) -> None:  # type: ignore[no-untyped-def]
    out = explorer.out
    targets = {_target(explorer.index, h) for h in _hrefs(explorer.index)}
    pages = {(out / name).resolve() for name in ("umap.html", "splitting.html", "highlight.html")}
    cards = {p.resolve() for p in (out / "cards").glob("*.html")}
    assert len(cards) == len(explorer.cards) == 3
    assert targets == pages | cards  # nothing missing, nothing dangling


def test_each_page_knows_every_card_and_links_back(explorer) -> None:  # type: ignore[no-untyped-def]
    out = explorer.out
    views = [out / n for n in ("umap.html", "splitting.html", "highlight.html")]
    for page in views + sorted((out / "cards").glob("*.html")):
        links = _payload(page)["_links"]
        refs = {FeatureRef(s, f): _target(page, url) for s, f, url in links["cards"]}
        assert set(refs) == explorer.cards, page.name
        assert all(target.is_file() and target.parent == out / "cards" for target in refs.values())
        nav = [_target(page, h) for h in _hrefs(page)]
        assert (out / "index.html").resolve() in nav and all(t.is_file() for t in nav), page.name
    assert _payload(out / "highlight.html")["_links"]["sae"] == explorer.large  # token views name no SAE
    card = out / "cards" / card_file(explorer.carded)
    assert _payload(card)["sae_name"] == explorer.large and _payload(card)["_links"]["sae"] == explorer.large


def test_sae_names_with_dot_dot_stay_inside_the_explorer(tiny_llama, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    root = tmp_path / "root"
    out = root / "explorer"
    ex = build_explorer(out, tiny_llama, small="../../small", large="../escape/<b>large</b>")
    written = [p for p in root.rglob("*") if p.is_file()]
    assert written and all(p.resolve().is_relative_to(out.resolve()) for p in written)
    assert not list(tmp_path.glob("escape*")) and [p.name for p in tmp_path.iterdir()] == ["root"]
    cards = sorted(p.name for p in (out / "cards").iterdir())
    assert len(cards) == 3 and all("/" not in c and not c.startswith(".") for c in cards)
    index = ex.index.read_text(encoding="utf-8")
    assert "&lt;b&gt;large&lt;/b&gt;" in index and "<b>large</b>" not in index
    test_each_page_knows_every_card_and_links_back(ex)


def test_page_links_accept_relative_urls_only() -> None:
    ref = FeatureRef("a", 1)
    assert PageLinks({ref: "cards/a-1.html"}).payload() == {"cards": [["a", 1, "cards/a-1.html"]], "sae": ""}
    for url in ("javascript:alert(1)", "/etc/passwd", "https://example.com/x", "file:///x", "a b.html", ""):
        with pytest.raises(SaekitError, match="relative URLs"):
            PageLinks({ref: url})
    with pytest.raises(SaekitError, match="relative URLs"):
        PageLinks(nav=[("javascript:alert(1)", "x")])
    with pytest.raises(SaekitError, match="FeatureRef keys"):
        PageLinks({("a", 1): "x.html"})  # type: ignore[dict-item]


def test_a_page_without_links_still_has_its_note_and_an_empty_map() -> None:
    from _figure_cases import feature_view

    from saekit.widgets import FeatureCard

    html = standalone_html(FeatureCard.from_result(feature_view("topk-4608")))
    assert 'id="saekit-note" role="status"' in html and "saekit-nav" not in html.split("<body>")[1]
    payload = json.loads(re.search(r'id="saekit-state">(.*?)</script>', html, re.S).group(1))
    assert payload["_links"] == {"cards": [], "sae": ""}
