"""Pruning (``mg.prune``): w = 0 where |w| is small, then retrain with the mask held.

PyTorch's ``torch.nn.utils.prune`` API and semantics (``methods.py``), the
radix select that ranks magnitudes on the CPU and the GPU (``selection.py``,
kernels/prune.cu), Zhu and Gupta's gradual schedule (``schedule.py``), a
sparsity report (``report.py``) and ``compact``, which turns structured
pruning into a smaller, faster dense model (``compact.py``).

    import minigrad as mg
    layer = mg.nn.Linear(784, 300)
    mg.prune.l1_unstructured(layer, "weight", amount=0.9)   # 90% of |w| smallest -> 0
    layer.weight_orig, layer.weight_mask                    # trained values, 0/1 mask
    mg.prune.remove(layer, "weight")                        # make it permanent
"""
from .compact import compact, count_flops
from .methods import (BasePruningMethod, CustomFromMask, Identity, L1Unstructured, LnStructured,
                      PruningContainer, RandomStructured, RandomUnstructured, Threshold,
                      custom_from_mask, global_unstructured, identity, is_pruned, l1_unstructured,
                      ln_structured, prunable_parameters, random_structured, random_unstructured,
                      remove, threshold)
from .report import SparsityReport, sparsity_report
from .schedule import GradualPruner, cubic_sparsity

__all__ = ["BasePruningMethod", "CustomFromMask", "Identity", "L1Unstructured", "LnStructured",
           "PruningContainer", "RandomStructured", "RandomUnstructured", "Threshold", "custom_from_mask",
           "global_unstructured", "identity", "is_pruned", "l1_unstructured", "ln_structured",
           "prunable_parameters", "random_structured", "random_unstructured", "remove", "threshold",
           "compact", "count_flops", "SparsityReport", "sparsity_report", "GradualPruner", "cubic_sparsity"]
