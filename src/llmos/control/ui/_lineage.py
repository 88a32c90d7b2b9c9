"""A model's lineage as a graph: versions and where each came from, laid out and drawn as SVG.

Edges come from the tags every registered version carries: a compressed child names its parent
(`parent_name`, `parent_version`); a fine-tuned model names its base model (`base_model`). Layout is
plain layering: a node's column is its distance from a root; rows follow first appearance.
"""

from __future__ import annotations

from html import escape
from typing import Any

__all__ = ["lineage_edges", "lineage_layout", "lineage_svg"]

_W, _H, _GAP_X, _GAP_Y, _PAD = 170, 44, 60, 16, 10


def lineage_edges(name: str, versions: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(parent, child) node ids, `NAME/VERSION` or a base model's name, from each version's tags."""
    edges = []
    for v in versions:
        tags, child = v.get("tags", {}), f"{name}/{v['version']}"
        if tags.get("parent_name") and tags.get("parent_version"):
            edges.append((f"{tags['parent_name']}/{tags['parent_version']}", child))
        elif tags.get("base_model"):
            edges.append((tags["base_model"], child))
    return edges


def lineage_layout(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """node -> (column, row): column = longest path from a root (cycles are cut), rows in order."""
    parents: dict[str, list[str]] = {}
    for parent, child in edges:
        parents.setdefault(child, []).append(parent)
    order = list(dict.fromkeys([*nodes, *(p for p, _ in edges), *(c for _, c in edges)]))
    column: dict[str, int] = {}

    def depth(node: str, seen: frozenset[str]) -> int:
        if node not in column:
            above = [p for p in parents.get(node, []) if p not in seen]
            column[node] = 1 + max((depth(p, seen | {node}) for p in above), default=-1)
        return column[node]

    for node in order:
        depth(node, frozenset())
    rows: dict[int, int] = {}
    at = {}
    for node in order:
        at[node] = (column[node], rows.get(column[node], 0))
        rows[column[node]] = rows.get(column[node], 0) + 1
    return at


def lineage_svg(nodes: list[str], edges: list[tuple[str, str]], labels: dict[str, str] | None = None,
                links: dict[str, str] | None = None) -> str:
    """The graph as an inline SVG document (no script, no external reference)."""
    at = lineage_layout(nodes, edges)
    if not at:
        return ""
    labels, links = labels or {}, links or {}

    def box(node: str) -> tuple[int, int]:
        col, row = at[node]
        return _PAD + col * (_W + _GAP_X), _PAD + row * (_H + _GAP_Y)

    width = _PAD * 2 + (max(c for c, _ in at.values()) + 1) * (_W + _GAP_X) - _GAP_X
    height = _PAD * 2 + (max(r for _, r in at.values()) + 1) * (_H + _GAP_Y) - _GAP_Y
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="lineage" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="lineage graph">',
             '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
             'orient="auto"><path d="M0,0 L10,5 L0,10 z"/></marker></defs>']
    for parent, child in edges:
        (x1, y1), (x2, y2) = box(parent), box(child)
        parts.append(f'<line x1="{x1 + _W}" y1="{y1 + _H // 2}" x2="{x2}" y2="{y2 + _H // 2}" '
                     'marker-end="url(#arrow)"/>')
    for node in at:
        x, y = box(node)
        text = escape(node if len(node) <= 24 else node[:23] + "…")
        sub = escape(labels.get(node, ""))
        shape = (f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" rx="6"/>'
                 f'<text x="{x + 8}" y="{y + 18}">{text}</text>'
                 f'<text x="{x + 8}" y="{y + 35}" class="sub">{sub}</text>')
        link = links.get(node)
        parts.append(f'<a href="{escape(link)}">{shape}</a>' if link else f"<g>{shape}</g>")
    parts.append("</svg>")
    return "".join(parts)
