"""Walking the dependency graph: edges are (source, target) pairs meaning "source depends on target".

The ontology builds the graph (:meth:`cms_dagster.domain.model.Ontology.dependency_edges`); detection
(alarm episodes) and root-cause analysis walk it with these helpers. Plain Python; no Dagster.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Iterable, Mapping

__all__ = ["dependency_closure", "reach", "related_nodes"]


def reach(adjacency: Mapping[str, list[str]], node: str, blocked: Container[str] = ()) -> set[str]:
    """Everything ``node`` transitively depends on; paths do not continue past ``blocked`` nodes."""
    seen: set[str] = set()
    queue = deque(adjacency.get(node, ()))
    while queue:
        nxt = queue.popleft()
        if nxt in seen or nxt == node:
            continue
        seen.add(nxt)
        if nxt not in blocked:
            queue.extend(adjacency.get(nxt, ()))
    return seen


def dependency_closure(edges: Iterable[tuple[str, str]], node: str) -> set[str]:
    """``node`` and everything it transitively depends on (edges are (source, target) = source depends on target)."""
    adjacency: dict[str, list[str]] = {}
    for source, target in edges:
        adjacency.setdefault(source, []).append(target)
    return reach(adjacency, node) | {node}


def related_nodes(edges: Iterable[tuple[str, str]]) -> dict[str, set[str]]:
    """Per node of the graph: itself, everything it transitively depends on and everything that
    transitively depends on it (not its siblings: two stages sharing a database are not related)."""
    forward: dict[str, list[str]] = {}
    backward: dict[str, list[str]] = {}
    for source, target in edges:
        forward.setdefault(source, []).append(target)
        backward.setdefault(target, []).append(source)
    return {n: {n} | reach(forward, n) | reach(backward, n) for n in set(forward) | set(backward)}
