"""`bnn-mcu inspect MODEL --graph`: how the importer read each node of an exported program.

A refused model is shown up to the node where the reading stopped, so the user sees which of
their ops became the input scaling, a binary layer, a threshold chain, or nothing we support.
"""

from __future__ import annotations

import re

from tabulate import tabulate

from ..errors import ModelError
from .importer import GraphImporter, _opname


def read_graph(ep, name: str) -> tuple[str, ModelError | None]:
    """(table of node, op, reading; the importer's error or None)."""
    importer = GraphImporter(ep, name)
    error = None
    try:
        importer.run()
    except ModelError as e:
        error = e
    stopped = re.search(r"node '([^']+)'", str(error)) if error else None
    if stopped:
        importer.reading[stopped.group(1)] = "STOPPED HERE (see the error below)"
    rows = []
    user_inputs = set(ep.graph_signature.user_inputs)
    for node in ep.graph.nodes:
        if node.op not in ("placeholder", "call_function") or (
                node.op == "placeholder" and node.name not in user_inputs):
            continue  # parameters and buffers: read through the ops that use them
        reading = importer.reading.get(node.name)
        if reading is None:
            reading = "(not reached)" if error else "(unused)"
        rows.append([node.name, "input" if node.op == "placeholder" else _opname(node), reading])
    return tabulate(rows, headers=["node", "op", "read as"], tablefmt="simple"), error
