"""A rewrite driver that finds "the first node in topological order where a rule matches"
without re-sorting the graph and re-trying every rule after each rewrite.

The plain driver (``for n in graph.topo(): try every rule; restart after a rewrite``) is
quadratic: every rewrite re-sorts the graph and re-tries the rules on every node before it.
This one gives the same rewrites in the same order, in about linear time:

- It keeps the state of the topological sort ``Graph.topo`` performs (Kahn's algorithm
  taking the earliest-inserted ready node first) as a cursor that emits nodes one by one.
- A rewrite only changes nodes near the match: the region R (the node, two levels of
  operands, and every user of those). Before the rewrite the cursor is rolled back to the
  first emitted node of R. The sort's prefix before that point cannot change: every node
  whose operands change gets an operand in R (or a new node), so it cannot become ready
  before R's first node is emitted.
- Rules read a node, its operands and their users. A node keeps its "no rule matches"
  verdict unless it lies within two users of a node of R or a new node.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable

from snncc.ir import Graph, Node

Rule = Callable[[Graph, Node], bool]


class _Cursor:
    """Kahn's algorithm over `graph`, one node at a time, with roll-back."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.key = {name: k for k, name in enumerate(graph.names())}
        self.next_key = len(self.key)
        self.emitted: list[str] = []
        self.pos: dict[str, int] = {}
        self.released: list[list[str]] = []  # per emitted node: the users it counted down
        self.waiting: dict[str, int] = {}  # distinct operands not yet emitted
        self.ready: list[tuple[int, str]] = []
        for name in self.key:
            self.enter(name)

    def enter(self, name: str) -> None:
        """(Re)count `name`'s unemitted operands; queue it if it is ready."""
        left = sum(1 for i in set(self.graph.node(name).inputs) if i not in self.pos)
        self.waiting[name] = left
        if left == 0:
            heapq.heappush(self.ready, (self.key[name], name))

    def add(self, name: str) -> None:
        """A node created by a rewrite: the latest inserted."""
        self.key[name] = self.next_key
        self.next_key += 1
        self.enter(name)

    def drop(self, name: str) -> None:
        del self.key[name], self.waiting[name]

    def next(self) -> Node | None:
        """Emit the next node of the order, or None at the end."""
        while self.ready:
            key, name = heapq.heappop(self.ready)
            if self.key.get(name) != key or name in self.pos or self.waiting[name]:
                continue  # a stale entry
            self.pos[name] = len(self.emitted)
            self.emitted.append(name)
            users = [u.name for u in self.graph.users(name)]
            self.released.append(users)
            for user in users:
                self.waiting[user] -= 1
                if self.waiting[user] == 0:
                    heapq.heappush(self.ready, (self.key[user], user))
            return self.graph.node(name)
        return None

    def rewind(self, position: int) -> None:
        """Un-emit every node from `position` on, undoing exactly what emitting did."""
        while len(self.emitted) > position:
            name = self.emitted.pop()
            del self.pos[name]
            for user in self.released.pop():
                if user in self.waiting:
                    self.waiting[user] += 1
            if name in self.key:
                heapq.heappush(self.ready, (self.key[name], name))


def _with_new_chains(graph: Graph, cursor: _Cursor, names: set[str]) -> set[str]:
    """`names` and the users of its new nodes, and of theirs: a rewrite may make a chain
    of new nodes, of which only the first reads a node of the region."""
    found, todo = set(names), [n for n in names if n not in cursor.key]
    while todo:
        for u in graph.users(todo.pop()):
            if u.name not in found:
                found.add(u.name)
                if u.name not in cursor.key:
                    todo.append(u.name)
    return found


def _region(graph: Graph, node: Node) -> set[str]:
    """The node, its operands and theirs, and every user of those."""
    core = {node.name}
    for i in node.inputs:
        core.add(i)
        core.update(graph.node(i).inputs)
    return core | {u.name for c in core for u in graph.users(c)}


def _downstream(graph: Graph, names: set[str], levels: int) -> set[str]:
    """`names` and every node at most `levels` users away from one."""
    found, frontier = set(names), set(names)
    for _ in range(levels):
        frontier = {u.name for f in frontier for u in graph.users(f)} - found
        found |= frontier
    return found


def rewrite_to_fixed_point(graph: Graph, rules: tuple[Rule, ...]) -> bool:
    """Apply the first rule that matches at the first node (in ``graph.topo()`` order),
    again and again until none matches; True if any did."""
    cursor = _Cursor(graph)
    clean: set[str] = set()  # nodes no rule matches (until their neighbourhood changes)
    changed = False
    while (n := cursor.next()) is not None:
        if n.name in clean:
            continue
        before = _region(graph, n)
        if not any(rule(graph, n) for rule in rules):
            clean.add(n.name)
            continue
        changed = True
        cursor.rewind(min(cursor.pos[r] for r in before if r in cursor.pos))
        alive = {r for r in before if r in graph}
        for gone in before - alive:
            cursor.drop(gone)
        after = _with_new_chains(graph, cursor, alive | {u.name for r in alive
                                                         for u in graph.users(r)})
        for name in after:
            if name not in cursor.key:
                cursor.add(name)
            elif name not in cursor.pos:
                cursor.enter(name)
        clean -= before
        clean -= _downstream(graph, after, 2)
    return changed
