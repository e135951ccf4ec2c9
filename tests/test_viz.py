"""to_dot draws the autograd graph: ops, leaves with shapes, edges with the shapes that flow."""
import re
import shutil

import numpy as np
import pytest

import minigrad as mg


def test_graph_of_a_linear_layer_has_the_expected_nodes_and_edges():
    layer = mg.nn.Linear(4, 3)
    out = mg.functional.relu(layer(mg.tensor(np.ones((5, 4), dtype=np.float32)))).sum()
    dot = mg.viz.to_dot(out, dict(layer.named_parameters()))
    labels = dict(re.findall(r'^  (n\d+) \[label="([^"]*)"', dot, re.MULTILINE))
    edges = set(re.findall(r"(n\d+) -> (n\d+)", dot))
    by_label = {label: node for node, label in labels.items()}
    assert set(labels.values()) == {"output ()", "Sum", "ReLU", "Linear", "(5, 4)", "weight\\n(3, 4)", "bias\\n(3,)"}
    chain = ["(5, 4)", "Linear", "ReLU", "Sum", "output ()"]
    assert {(by_label[a], by_label[b]) for a, b in zip(chain, chain[1:])} <= edges
    assert (by_label["weight\\n(3, 4)"], by_label["Linear"]) in edges
    assert len(edges) == 6
    assert 'fillcolor=lightblue' in dot and 'fillcolor=lightgrey' in dot


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_render_writes_a_png(tmp_path):
    x = mg.tensor([1.0, 2.0], requires_grad=True)
    path = mg.viz.render((x * x).sum(), tmp_path / "graph.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
