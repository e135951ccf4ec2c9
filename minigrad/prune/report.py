"""How sparse a model is: zeros per layer and in all, parameters before and after pruning.

A pruned tensor counts as its effective value ``<name>_orig * <name>_mask``
and is listed under ``<name>``; every other parameter counts as it is (an
exact zero in it counts as pruned, too).
"""
from dataclasses import dataclass

from .. import backend
from .methods import _find_container


@dataclass
class SparsityRow:
    name: str       # dotted name, e.g. "0.weight"
    shape: tuple
    numel: int      # parameters before pruning
    nonzero: int    # parameters left after pruning

    @property
    def zeros(self):
        return self.numel - self.nonzero

    @property
    def sparsity(self):
        return self.zeros / self.numel if self.numel else 0.0


class SparsityReport:
    """Rows per parameter, totals, ``table()`` as markdown and ``as_dict()`` as plain data."""

    def __init__(self, rows):
        self.rows = rows

    @property
    def numel(self):
        return sum(row.numel for row in self.rows)

    @property
    def nonzero(self):
        return sum(row.nonzero for row in self.rows)

    @property
    def sparsity(self):
        return 1.0 - self.nonzero / self.numel if self.numel else 0.0

    @property
    def compression(self):
        """Dense parameters per remaining parameter (Han et al.'s 'compression rate')."""
        return self.numel / self.nonzero if self.nonzero else float("inf")

    def as_dict(self):
        return {"layers": [{"name": row.name, "shape": list(row.shape), "parameters": row.numel,
                            "nonzero": row.nonzero, "sparsity": row.sparsity} for row in self.rows],
                "parameters": self.numel, "nonzero": self.nonzero, "sparsity": self.sparsity,
                "compression": self.compression}

    def table(self):
        lines = ["| parameter | shape | parameters | nonzero | sparsity |",
                 "|---|---|---:|---:|---:|"]
        for row in self.rows:
            shape = "x".join(str(size) for size in row.shape)
            lines.append(f"| {row.name} | {shape} | {row.numel:,} | {row.nonzero:,} | {row.sparsity:.1%} |")
        lines.append(f"| **total** | | {self.numel:,} | {self.nonzero:,} | {self.sparsity:.1%} |")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _effective_parameters(model):
    """(dotted name, array) of every parameter as the forward pass sees it."""
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        for name, parameter in module._parameters.items():
            if parameter is None:
                continue
            base = name[:-len("_orig")] if name.endswith("_orig") else name
            _, container = _find_container(module, base)
            if container is not None and name == base + "_orig":
                yield prefix + base, parameter.data * module._buffers[base + "_mask"].data
            else:
                yield prefix + name, parameter.data


def sparsity_report(model, weights_only=False):
    """Per-parameter and total counts of zeros in ``model``.

    weights_only: list only tensors of at least 2 dims (Linear and Conv2d
    weights), leaving out biases and BatchNorm parameters.
    """
    rows = []
    for name, values in _effective_parameters(model):
        if weights_only and values.ndim < 2:
            continue
        xp = backend.array_module(values)
        rows.append(SparsityRow(name, tuple(values.shape), int(values.size), int(xp.count_nonzero(values))))
    return SparsityReport(rows)
