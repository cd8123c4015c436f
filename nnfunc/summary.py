"""A model summary table: each layer's position, name, output shape and parameter count.

A stateful model's table has one more column, each layer's model-state size
(batch norm's running statistics), and a total of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from nnfunc import random, tree
from nnfunc._validate import describe, type_fail
from nnfunc.layer import Layer
from nnfunc.typing import Key, ShapeTree

__all__ = ["Summary", "SummaryRow", "summary"]


class SummaryRow(NamedTuple):
    """One row: dotted position (``"2.1"`` inside a nested combinator), name, shape, count."""

    position: str
    name: str
    out_shape: ShapeTree
    params: int
    state: int = 0  # elements of the layer's model state


class Summary(NamedTuple):
    """The rows of :func:`summary` and the total parameter count; ``str()`` renders a table.

    ``total_state`` counts the model state's elements (0 for a stateless model,
    whose table has no state column).
    """

    rows: tuple[SummaryRow, ...]
    total: int
    in_shape: ShapeTree
    total_state: int = 0

    def __str__(self) -> str:
        with_state = self.total_state > 0
        head = ("#", "layer", "output shape", "params", *(("state",) if with_state else ()))
        body = [(r.position, r.name, str(r.out_shape), f"{r.params:,}",
                 *((f"{r.state:,}",) if with_state else ())) for r in self.rows]
        widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(
                c.rjust(w) if i >= 3 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths))
            ).rstrip()

        rule = "-" * len(line(head))
        totals = [f"total params: {self.total:,}"]
        if with_state:
            totals.append(f"total state: {self.total_state:,}")
        return "\n".join([f"input shape: {self.in_shape}", rule, line(head), rule,
                          *map(line, body), rule, *totals])


def _init(layer: Layer, key: Key, in_shape: ShapeTree) -> tuple[ShapeTree, Any, Any]:
    if layer.init_with_state is not None:
        return layer.init_with_state(key, in_shape)
    return (*layer.init(key, in_shape), ())


def _rows(layer: Layer, params: Any, state: Any, key: Key, in_shape: ShapeTree,
          prefix: str) -> list[SummaryRow]:
    """Rows for the children of a ``serial`` model (recursively), else one row."""
    if layer.name == "serial" and layer.children:
        rows: list[SummaryRow] = []
        shape = in_shape
        keys = random.split(key, len(layer.children))
        states = state if layer.init_with_state is not None else ((),) * len(layer.children)
        for i, (child, p, st, k) in enumerate(zip(layer.children, params, states, keys)):
            child_in = shape
            shape, _, _ = _init(child, k, shape)
            position = f"{prefix}{i}"
            if child.name == "serial" and child.children:
                rows.extend(_rows(child, p, st, k, child_in, position + "."))
            else:
                rows.append(SummaryRow(position, child.name, shape, tree.size(p),
                                       tree.size(st)))
        return rows
    out_shape, _, _ = _init(layer, key, in_shape)
    return [SummaryRow(prefix or "0", layer.name, out_shape, tree.size(params),
                       tree.size(state))]


def summary(model: Layer, in_shape: ShapeTree, *, key: Key | None = None,
            print_fn: Callable[[str], Any] | None = print) -> Summary:
    """Describe ``model`` for an input of ``in_shape`` (batch axis excluded).

    Initialises the model (with ``key``, default ``random.key(0)``) to infer
    every shape, prints the table with ``print_fn`` (``None`` prints nothing)
    and returns it as a :class:`Summary`. Layers of nested ``serial`` models
    get dotted positions.

    Raises:
        TypeError: if ``model`` is not a layer.
        ValueError: if the model cannot take ``in_shape`` (as ``init`` would).

    >>> from nnfunc.combinators import serial
    >>> from nnfunc.layers import dense
    >>> from nnfunc.activations import relu
    >>> s = summary(serial(dense(4), relu, dense(2)), (3,), print_fn=None)
    >>> [(r.name, r.out_shape, r.params) for r in s.rows], s.total
    ([('dense(4)', (4,), 16), ('relu', (4,), 0), ('dense(2)', (2,), 10)], 26)
    """
    if not isinstance(model, Layer):
        raise type_fail("summary", "model", "must be an nnfunc Layer", describe(model))
    k = random.key(0) if key is None else random.check_key(key, "summary")
    _, params, state = _init(model, k, in_shape)
    rows = tuple(_rows(model, params, state, k, in_shape, ""))
    result = Summary(rows, tree.size(params), in_shape, tree.size(state))
    if print_fn is not None:
        print_fn(str(result))
    return result
