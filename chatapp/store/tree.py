"""A conversation's message tree: the branch to a leaf, a message's alternatives, the newest leaf.

Pure functions over the tree's skeleton (id, parent, role, creation time), loaded
in one query; the store then loads the full rows of the one branch it shows.
"Oldest first" is creation time, ties broken by id, so every reader sees one order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    parent_id: str | None
    role: str
    created_at: datetime

    @property
    def order(self) -> tuple[datetime, str]:
        return (self.created_at, self.id)


class Tree:
    def __init__(self, nodes: Iterable[Node]) -> None:
        self.nodes = {node.id: node for node in nodes}
        self._children: dict[str | None, list[Node]] = defaultdict(list)
        for node in sorted(self.nodes.values(), key=lambda n: n.order):
            self._children[node.parent_id].append(node)

    def __contains__(self, message_id: object) -> bool:
        return message_id in self.nodes

    def path_to(self, leaf_id: str) -> list[Node]:
        """The messages from the root to `leaf_id`, root first."""
        path: list[Node] = []
        node: Node | None = self.nodes[leaf_id]
        while node is not None:
            path.append(node)
            node = self.nodes.get(node.parent_id) if node.parent_id is not None else None
        path.reverse()
        return path

    def alternatives(self, message_id: str) -> tuple[str, ...]:
        """Ids of the messages with the same parent and role as this one, itself included, oldest first."""
        node = self.nodes[message_id]
        return tuple(n.id for n in self._children[node.parent_id] if n.role == node.role)

    def newest_leaf_under(self, message_id: str) -> str:
        """The most recently created message in the subtree of `message_id` (itself when it has none).

        Children are created after their parents, so the newest descendant is a leaf.
        """
        newest = self.nodes[message_id]
        stack = [newest]
        while stack:
            node = stack.pop()
            if node.order > newest.order:
                newest = node
            stack.extend(self._children.get(node.id, ()))
        return newest.id

    def newest_leaf(self) -> str | None:
        """The end of the most recently written branch: the leaf shown when none was chosen."""
        if not self.nodes:
            return None
        return max(self.nodes.values(), key=lambda n: n.order).id
