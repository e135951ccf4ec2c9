"""Pictures of the autograd graph: ``to_dot(tensor)`` as Graphviz DOT text, ``render`` as PNG.

Ops are ellipses, labelled with their name; leaves are boxes with their shape,
blue when they require a gradient (parameters) and grey when they do not
(inputs). Each edge carries the shape of the tensor that flows along it.
"""
import shutil
import subprocess

from .tensor import Tensor


def _quote(text):
    return '"' + str(text).replace('"', '\\"') + '"'


def to_dot(tensor, names=None):
    """The graph that produced ``tensor``, as DOT text.

    ``names`` maps leaf tensors to labels, e.g. ``dict(model.named_parameters())``
    given as {name: tensor}.
    """
    labels = {id(value): name for name, value in (names or {}).items()}
    ids = {}

    def node(obj):
        return ids.setdefault(id(obj), f"n{len(ids)}")

    lines = ["digraph minigrad {", "  rankdir=BT;", '  node [fontname="Helvetica", fontsize=11];',
             '  edge [fontname="Helvetica", fontsize=10];']
    output_label = f"output {tuple(tensor.shape)}"
    lines.append(f"  {node(tensor)} [label={_quote(output_label)}, shape=box, style=filled, fillcolor=lightgreen];")
    if tensor._ctx is None:
        lines.append("}")
        return "\n".join(lines) + "\n"
    lines.append(f"  {node(tensor._ctx)} -> {node(tensor)};")
    stack, seen = [tensor._ctx], {id(tensor._ctx)}
    while stack:
        function = stack.pop()
        lines.append(f"  {node(function)} [label={_quote(type(function).__name__)}, shape=ellipse];")
        if function.freed:
            continue
        for value in function.inputs:
            if not isinstance(value, Tensor):
                continue
            source = value._ctx if value._ctx is not None else value
            if value._ctx is None and id(value) not in seen:
                label = labels.get(id(value), "")
                label = f"{label}\\n{tuple(value.shape)}" if label else str(tuple(value.shape))
                color = "lightblue" if value.requires_grad else "lightgrey"
                lines.append(f"  {node(value)} [label={_quote(label)}, shape=box, style=filled, fillcolor={color}];")
                seen.add(id(value))
            lines.append(f"  {node(source)} -> {node(function)} [label={_quote(tuple(value.shape))}];")
            if value._ctx is not None and id(value._ctx) not in seen:
                seen.add(id(value._ctx))
                stack.append(value._ctx)
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(tensor, path, names=None):
    """Write the graph as a PNG with Graphviz's ``dot``; a clear error if it is not installed."""
    dot = shutil.which("dot")
    if dot is None:
        raise RuntimeError("render: Graphviz's 'dot' program is not installed "
                           "(apt-get install graphviz); to_dot() still gives the DOT text")
    subprocess.run([dot, "-Tpng", "-o", str(path)], input=to_dot(tensor, names).encode(), check=True)
    return path
