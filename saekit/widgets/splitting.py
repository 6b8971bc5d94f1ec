"""Feature splitting: a feature of a small dictionary and what it splits into in larger ones.

Dictionaries of increasing size stand side by side (one column each). The parent
feature sits in the first column; edges carry the decoder cosine to each child (the
children of the next dictionary whose best match it is, from
``saekit.analysis.geometry.match_features``), and each node shows its top examples.
:meth:`FeatureSplitting.link` ties the view to a :class:`~saekit.widgets.UmapView`:
the tree's features are highlighted there and a clicked node is ringed.

Example:
    >>> from saekit.widgets import FeatureSplitting, SplitNode
    >>> nodes = [SplitNode("1k", 5, "numbers"), SplitNode("4k", 9, "years"), SplitNode("4k", 17, "prices")]
    >>> view = FeatureSplitting(nodes, [(0, 1, 0.82), (0, 2, 0.64)])
    >>> print(view.to_text())
    FeatureSplitting · 1k #5 → 2 in 4k
    1k #5 'numbers'
    ├─ 4k #9 (cos 0.82) 'years'
    └─ 4k #17 (cos 0.64) 'prices'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import traitlets as t

from saekit._html import fmt_value
from saekit.errors import SaekitError
from saekit.ids import FeatureRef
from saekit.widgets._base import SaekitView, as_bytes, from_bytes
from saekit.widgets._bundle import bundle, read_css
from saekit.widgets.feature_card import example_acts

if TYPE_CHECKING:
    from saekit.analysis.results import SplittingTree
    from saekit.analysis.stats import Example
    from saekit.widgets.umap_view import UmapView

__all__ = ["FeatureSplitting", "SplitNode"]


@dataclass(frozen=True, eq=False)
class SplitNode:
    """One feature in the splitting tree: its dictionary, id, label and top examples."""

    sae: str
    feature: int
    label: str = ""
    examples: Sequence[Example] = ()
    max_act: float | None = None
    density: float | None = None


#: ``describe(sae, feature) -> SplitNode``: fills in labels and examples for a tree's nodes.
Describe = Callable[[str, int], SplitNode]


class FeatureSplitting(SaekitView):
    """A parent feature and its children across 2-3 dictionary sizes, with cosines and examples.

    Args:
        nodes: Every feature shown; ``nodes[0]`` is the root.
        edges: ``(parent_node, child_node, cosine)`` triples (indices into ``nodes``).
        columns: Dictionary names, left to right (default: in order of appearance).
        title: A title above the view.

    Synced state: ``columns``, ``nodes`` (dicts ``sae, feature, column, label, max_act,
    density``), ``edges``, ``ex_tokens``/``ex_node`` (one entry per example),
    ``ex_acts`` (float32 buffer over all example tokens), ``selected`` (node index),
    ``title``. Clicking a node selects it and calls the :meth:`on_feature_click`
    handlers with the node's :class:`~saekit.ids.FeatureRef`.
    """

    _esm = bundle("splitting.js")
    _css = read_css() + read_css("analysis_views.css")

    title = t.Unicode("").tag(sync=True)
    columns = t.List(t.Unicode()).tag(sync=True)
    nodes = t.List(t.Dict()).tag(sync=True)
    edges = t.List(t.List()).tag(sync=True)
    ex_tokens = t.List(t.List(t.Unicode())).tag(sync=True)
    ex_node = t.List(t.Int()).tag(sync=True)
    ex_acts = t.Bytes(b"").tag(sync=True)
    selected = t.Int(None, allow_none=True).tag(sync=True)

    def __init__(
        self,
        nodes: Sequence[SplitNode],
        edges: Sequence[tuple[int, int, float]],
        *,
        columns: Sequence[str] | None = None,
        title: str = "",
    ) -> None:
        if not nodes:
            raise SaekitError("FeatureSplitting needs at least the parent node.")
        cols = list(dict.fromkeys(columns if columns is not None else (n.sae for n in nodes)))
        unknown = sorted({n.sae for n in nodes} - set(cols))
        if unknown:
            raise SaekitError(f"Nodes belong to dictionaries {unknown} that are not among columns {cols}.")
        super().__init__(**_state(list(nodes), list(edges), cols), title=str(title))
        self._links: list[UmapView] = []

    @classmethod
    def from_result(
        cls,
        tree: SplittingTree,
        root: FeatureRef | tuple[str, int],
        *,
        describe: Describe | None = None,
        max_children: int = 6,
        depth: int = 2,
        title: str = "",
    ) -> FeatureSplitting:
        """The view of a :func:`saekit.analysis.match_features` tree, from ``root`` down.

        Args:
            tree: The :class:`~saekit.analysis.results.SplittingTree`.
            root: The parent feature (a ``FeatureRef`` or ``(sae, feature)``).
            describe: Fills in each node's label and examples (default: bare nodes).
            max_children: Children kept per node, highest cosine first.
            depth: Levels below the root (1 or 2 gives 2-3 dictionaries side by side).
            title: A title above the view.
        """
        ref = root if isinstance(root, FeatureRef) else FeatureRef(str(root[0]), int(root[1]))
        describe = describe or (lambda sae, f: SplitNode(sae, f))
        refs, edges = tree.subtree(ref, max_children, depth)  # the walk is the analysis' work
        nodes = [_described(describe, r.sae, r.feature) for r in refs]
        cols = [c for c in dict.fromkeys([ref.sae, *tree.saes]) if any(n.sae == c for n in nodes)]
        return cls(nodes, edges, columns=cols, title=title)

    # ----- reading back ----------------------------------------------------------------
    def node_index(self, sae: str, feature: int) -> int:
        for i, node in enumerate(self.nodes):
            if node["sae"] == str(sae) and node["feature"] == int(feature):
                return i
        raise SaekitError(f"Feature {feature} of {sae!r} is not in this splitting tree.")

    def features(self) -> list[tuple[str, int]]:
        """``(sae, feature)`` of every node, root first."""
        return [(n["sae"], int(n["feature"])) for n in self.nodes]

    def examples(self) -> list[tuple[int, list[str], np.ndarray]]:
        """``(node, tokens, acts)`` for every example."""
        acts = from_bytes(self.ex_acts, "f4")
        out, pos = [], 0
        for tokens, node in zip(self.ex_tokens, self.ex_node, strict=True):
            out.append((node, tokens, acts[pos : pos + len(tokens)]))
            pos += len(tokens)
        return out

    # ----- linking ---------------------------------------------------------------------
    def link(self, umap: UmapView) -> FeatureSplitting:
        """Highlight this tree's features in ``umap``; a clicked node is ringed there, and a
        click on one of the tree's points in ``umap`` selects the node here. Returns self."""
        umap.highlight_features(self.features(), focus=self._focus_pair(umap))
        self._links.append(umap)

        def from_umap(ref: FeatureRef) -> None:
            try:
                self.selected = self.node_index(ref.sae, ref.feature)
            except SaekitError:
                pass  # a point outside the tree

        umap.on_feature_click(from_umap)
        if len(self._links) == 1:
            self.observe(self._push_focus, names=["selected"])
        return self

    def _focus_pair(self, umap: UmapView) -> tuple[str, int] | None:
        i = self.selected if self.selected is not None else 0
        pair = self.features()[i]
        return pair if umap.points_of([pair]) else None

    def _push_focus(self, _change: Any) -> None:
        for umap in self._links:
            umap.highlight_features(self.features(), focus=self._focus_pair(umap))

    def _on_custom_msg(self, widget: Any, content: Any, buffers: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "feature_click":
            node = content.get("node")
            if isinstance(node, int) and 0 <= node < len(self.nodes):
                self.selected = node
                content = {**content, "sae": self.nodes[node]["sae"]}
        super()._on_custom_msg(widget, content, buffers)

    def request_node(self, node: int) -> None:
        """Do what a click on node ``node`` does."""
        self._on_custom_msg(self, {"type": "feature_click", "node": int(node),
                                   "feature": int(self.nodes[node]["feature"])}, [])

    # ----- text ------------------------------------------------------------------------
    def to_text(self) -> str:
        root = self.nodes[0]
        counts = [sum(1 for n in self.nodes[1:] if n["column"] == c) for c in range(len(self.columns))]
        path = " → ".join(f"{counts[c]} in {name}" for c, name in enumerate(self.columns) if counts[c])
        head = f"FeatureSplitting · {root['sae']} #{root['feature']}" + (f" → {path}" if path else "")
        lines = [f"{self.title}\n{head}" if self.title else head, _node_text(root, None)]
        children = _children(self.edges)
        lines += _subtree_text(self.nodes, children, 0, "")
        return "\n".join(lines)


def _children(edges: Sequence[Sequence[Any]]) -> dict[int, list[tuple[int, float]]]:
    out: dict[int, list[tuple[int, float]]] = {}
    for p, c, cos in edges:
        out.setdefault(int(p), []).append((int(c), float(cos)))
    return out


def _subtree_text(nodes: list[dict], children: dict, node: int, indent: str) -> list[str]:
    lines = []
    kids = children.get(node, [])
    for j, (child, cos) in enumerate(kids):
        last = j == len(kids) - 1
        lines.append(f"{indent}{'└─' if last else '├─'} {_node_text(nodes[child], cos)}")
        lines += _subtree_text(nodes, children, child, indent + ("   " if last else "│  "))
    return lines


def _node_text(node: dict, cos: float | None) -> str:
    text = f"{node['sae']} #{node['feature']}"
    if cos is not None:
        text += f" (cos {fmt_value(cos)})"
    return text + (f" {node['label']!r}" if node["label"] else "")


def _described(describe: Describe, sae: str, feature: int) -> SplitNode:
    node = describe(sae, feature)
    if not isinstance(node, SplitNode) or (node.sae, int(node.feature)) != (sae, feature):
        raise SaekitError(f"describe({sae!r}, {feature}) must return SplitNode({sae!r}, {feature}, ...).")
    return node


def _state(nodes: list[SplitNode], edges: list[tuple[int, int, float]], cols: list[str]) -> dict[str, Any]:
    n = len(nodes)
    bad = [e for e in edges if not (0 <= int(e[0]) < n and 0 <= int(e[1]) < n)]
    if bad:
        raise SaekitError(f"Edges {bad[:3]} point outside the {n} nodes.")
    ex_tokens, ex_node, acts = [], [], []
    for i, node in enumerate(nodes):
        for j, ex in enumerate(node.examples):
            a = example_acts(ex, f"node {i} ({node.sae} #{node.feature}) example {j}")
            ex_tokens.append([str(tok) for tok in ex.tokens])
            ex_node.append(i)
            acts.append(a)
    return {
        "columns": cols,
        "nodes": [{"sae": str(nd.sae), "feature": int(nd.feature), "column": cols.index(nd.sae),
                   "label": str(nd.label), "max_act": _num(nd.max_act), "density": _num(nd.density)}
                  for nd in nodes],
        "edges": [[int(p), int(c), float(cos)] for p, c, cos in edges],
        "ex_tokens": ex_tokens, "ex_node": ex_node,
        "ex_acts": as_bytes(np.concatenate(acts) if acts else np.zeros(0), "f4", name="example acts"),
    }


def _num(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)
