"""Run PyTorch's own sample inputs through minigrad and compare, forward and gradient, in float64.

PyTorch ships, with its CPU wheel, the inputs its own test suite feeds every op
(``op_db`` in torch.testing._internal.common_methods_invocations) and every
layer (``module_db`` in common_modules). This module runs those samples for
each op and layer that minigrad claims, the same values through both, and
sorts every sample into one of:

- ``ran``: the forward values agree, and so do the gradients of every input
  (and parameter) that requires one, for a fixed random weighting of the outputs;
  a layer's buffers (running statistics) agree after the call too;
- ``wrong``: minigrad answered with different values, shapes or gradients;
- ``raised``: minigrad raised where PyTorch answered;
- ``skipped`` with a named reason: what minigrad does not claim (an option
  the table lists as unsupported, a dtype or layout out of scope), or a sample
  PyTorch itself rejects.

The claimed ops are the tables ``OPS`` and ``MODULES`` below: one line per op,
naming how minigrad calls it and which options it does not (yet) have. Adding
an op or an option is adding or editing a line.
"""
import collections
import dataclasses
import functools
import math

import numpy as np
import torch

import minigrad as mg
import minigrad.nn.functional as F

SAMPLES_PER_OP = 120  # at most this many samples per op variant (only max_pool2d, 1440, has more), spread evenly
RTOL, ATOL, SCALE_RTOL = 1e-7, 1e-9, 1e-13


def _method(name):
    return lambda input, *args, **kwargs: getattr(input, name)(*args, **kwargs)


@dataclasses.dataclass
class Claim:
    """How minigrad runs one op: ``call(input, *args, **kwargs)``; ``unsupported`` names keyword
    options minigrad lacks (a sample that sets one to other than its default is skipped, named)."""
    family: str
    call: object
    unsupported: dict = dataclasses.field(default_factory=dict)  # option -> its default
    variants: tuple = None  # op_db variant names to run (None: all)
    skip: object = None  # skip(input, kwargs) -> the reason a sample is out of reach today, or None


OPS = {
    # tensor API
    "add": Claim("tensor api", mg.add), "sub": Claim("tensor api", mg.sub),
    "mul": Claim("tensor api", mg.mul), "div": Claim("tensor api", mg.div),
    "neg": Claim("tensor api", lambda x: -x), "pow": Claim("tensor api", lambda x, y: x ** y),
    "abs": Claim("tensor api", _method("abs")), "exp": Claim("tensor api", _method("exp")),
    "log": Claim("tensor api", _method("log")), "sqrt": Claim("tensor api", _method("sqrt")),
    "sigmoid": Claim("tensor api", _method("sigmoid")), "tanh": Claim("tensor api", _method("tanh")),
    "matmul": Claim("tensor api", lambda a, b: a @ b), "log1p": Claim("tensor api", _method("log1p")),
    "where": Claim("tensor api", lambda x, condition, other: mg.where(condition, x, other)),
    "clamp": Claim("tensor api", _method("clamp")),
    "maximum": Claim("tensor api", mg.maximum), "minimum": Claim("tensor api", mg.minimum),
    "masked_fill": Claim("tensor api", _method("masked_fill")),
    "gather": Claim("tensor api", _method("gather"), {"sparse_grad": False}),
    "softmax": Claim("tensor api", _method("softmax")), "log_softmax": Claim("tensor api", _method("log_softmax")),
    # reductions
    "sum": Claim("reductions", _method("sum"), {"dtype": None}),
    "mean": Claim("reductions", _method("mean"), {"dtype": None}),
    "max": Claim("reductions", _method("max")), "min": Claim("reductions", _method("min")),
    "amax": Claim("reductions", _method("amax")), "amin": Claim("reductions", _method("amin")),
    "argmax": Claim("reductions", _method("argmax")), "argmin": Claim("reductions", _method("argmin")),
    # shapes
    "reshape": Claim("shapes", _method("reshape")), "view": Claim("shapes", _method("view")),
    "flatten": Claim("shapes", _method("flatten")), "permute": Claim("shapes", _method("permute")),
    "transpose": Claim("shapes", _method("transpose")),
    "expand": Claim("shapes", _method("expand")), "expand_as": Claim("shapes", _method("expand_as")),
    "view_as": Claim("shapes", _method("view_as")), "reshape_as": Claim("shapes", _method("reshape_as")),
    "T": Claim("shapes", lambda x: x.T), "repeat": Claim("shapes", _method("repeat")),
    "chunk": Claim("shapes", _method("chunk")), "split": Claim("shapes", _method("split")),
    "squeeze": Claim("shapes", _method("squeeze")), "unsqueeze": Claim("shapes", _method("unsqueeze")),
    "cat": Claim("shapes", mg.cat), "stack": Claim("shapes", mg.stack),
    # activations
    "nn.functional.relu": Claim("activations", F.relu),
    "nn.functional.leaky_relu": Claim("activations", F.leaky_relu, {"inplace": False}),
    "nn.functional.gelu": Claim("activations", F.gelu),
    "nn.functional.logsigmoid": Claim("activations", F.logsigmoid),
    "nn.functional.silu": Claim("activations", F.silu, {"inplace": False}, variants=("",)),
    # losses
    "nn.functional.cross_entropy": Claim("losses", F.cross_entropy),
    "nn.functional.nll_loss": Claim("losses", F.nll_loss),
    "nn.functional.binary_cross_entropy_with_logits": Claim("losses", F.binary_cross_entropy_with_logits),
    "nn.functional.mse_loss": Claim("losses", F.mse_loss),
    "nn.functional.l1_loss": Claim("losses", F.l1_loss),
    "nn.functional.smooth_l1_loss": Claim("losses", F.smooth_l1_loss),
    "nn.functional.huber_loss": Claim("losses", F.huber_loss),
    # layers as functions
    "nn.functional.linear": Claim("layers", F.linear),
    "nn.functional.batch_norm": Claim("layers", F.batch_norm),
    "nn.functional.layer_norm": Claim("layers", F.layer_norm),
    "nn.functional.group_norm": Claim("layers", F.group_norm),
    "nn.functional.embedding": Claim("layers", lambda weight, indices, **options: F.embedding(indices, weight,
                                                                                               **options),
                                     {"scale_grad_by_freq": False, "sparse": False}),
    # convolution and pooling
    "nn.functional.conv2d": Claim("conv/pool", F.conv2d),
    "nn.functional.conv_transpose2d": Claim("conv/pool", F.conv_transpose2d),
    "nn.functional.max_pool2d": Claim("conv/pool", F.max_pool2d),
    "nn.functional.max_unpool2d": Claim("conv/pool", F.max_unpool2d),
    "nn.functional.avg_pool2d": Claim("conv/pool", F.avg_pool2d),
    "nn.functional.adaptive_avg_pool2d": Claim("conv/pool", F.adaptive_avg_pool2d),
    "nn.functional.pad": Claim("conv/pool", F.pad),
}

# avg_pool2d's samples pass its options positionally: (kernel, stride, padding, ceil_mode, count_include_pad, divisor)
POSITIONAL_OPTIONS = {"nn.functional.avg_pool2d": ("kernel_size", "stride", "padding", "ceil_mode",
                                                   "count_include_pad", "divisor_override")}

MODULES = {
    "Linear": Claim("layers", mg.nn.Linear),
    "BatchNorm1d": Claim("layers", mg.nn.BatchNorm1d), "BatchNorm2d": Claim("layers", mg.nn.BatchNorm2d),
    "LayerNorm": Claim("layers", mg.nn.LayerNorm), "GroupNorm": Claim("layers", mg.nn.GroupNorm),
    "Embedding": Claim("layers", mg.nn.Embedding),
    "ReLU": Claim("activations", mg.nn.ReLU, {"inplace": False}),
    "LeakyReLU": Claim("activations", mg.nn.LeakyReLU, {"inplace": False}),
    "Sigmoid": Claim("activations", mg.nn.Sigmoid), "Tanh": Claim("activations", mg.nn.Tanh),
    "GELU": Claim("activations", mg.nn.GELU), "SiLU": Claim("activations", mg.nn.SiLU, {"inplace": False}),
    "Softmax": Claim("activations", mg.nn.Softmax), "LogSoftmax": Claim("activations", mg.nn.LogSoftmax),
    "CrossEntropyLoss": Claim("losses", mg.nn.CrossEntropyLoss), "NLLLoss": Claim("losses", mg.nn.NLLLoss),
    "BCEWithLogitsLoss": Claim("losses", mg.nn.BCEWithLogitsLoss), "MSELoss": Claim("losses", mg.nn.MSELoss),
    "L1Loss": Claim("losses", mg.nn.L1Loss), "SmoothL1Loss": Claim("losses", mg.nn.SmoothL1Loss),
    "HuberLoss": Claim("losses", mg.nn.HuberLoss),
    "Conv2d": Claim("conv/pool", mg.nn.Conv2d), "ConvTranspose2d": Claim("conv/pool", mg.nn.ConvTranspose2d),
    "MaxPool2d": Claim("conv/pool", mg.nn.MaxPool2d), "MaxUnpool2d": Claim("conv/pool", mg.nn.MaxUnpool2d),
    "AvgPool2d": Claim("conv/pool", mg.nn.AvgPool2d),
    "AdaptiveAvgPool2d": Claim("conv/pool", mg.nn.AdaptiveAvgPool2d),
}
MODULE_POSITIONAL_OPTIONS = {
    "Conv2d": ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "bias",
               "padding_mode"),
    "MaxPool2d": ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode"),
    "AvgPool2d": ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override"),
}


class Skip(Exception):
    """A sample out of scope; its message is the reason."""


# ----- moving values between the two ------------------------------------------------------------
_DTYPES = {torch.float64: np.float64, torch.float32: np.float32, torch.int64: np.int64, torch.bool: np.bool_}


def to_minigrad(value):
    """A torch value as minigrad's: tensors copied (keeping requires_grad), dtypes mapped, containers walked."""
    if isinstance(value, torch.Tensor):
        if value.is_complex() or value.is_sparse:
            raise Skip("complex or sparse tensor")
        array = value.detach().numpy().copy()
        return mg.tensor(array, requires_grad=value.requires_grad, dtype=array.dtype)
    if isinstance(value, torch.dtype):
        if value not in _DTYPES:
            raise Skip(f"dtype {value}")
        return _DTYPES[value]
    if isinstance(value, torch.Size):
        return tuple(value)
    if isinstance(value, (list, tuple)):
        return type(value)(to_minigrad(item) for item in value)
    if isinstance(value, dict):
        return {key: to_minigrad(item) for key, item in value.items()}
    return value


def _tensors(value):
    """The tensors in a (nested) value, in order."""
    if isinstance(value, (torch.Tensor, mg.Tensor)):
        return [value]
    if isinstance(value, (list, tuple)):
        return [tensor for item in value for tensor in _tensors(item)]
    if isinstance(value, dict):
        return [tensor for item in value.values() for tensor in _tensors(item)]
    return []


def _numpy(tensor):
    return tensor.detach().numpy() if isinstance(tensor, torch.Tensor) else tensor.numpy()


def _check_close(what, theirs, ours):
    theirs, ours = _numpy(theirs), _numpy(ours) if ours is not None else np.zeros_like(_numpy(theirs))
    if theirs.shape != ours.shape:
        raise AssertionError(f"{what}: shape {ours.shape}, PyTorch {theirs.shape}")
    if theirs.dtype.kind in "iub":
        if not np.array_equal(theirs, ours):
            raise AssertionError(f"{what}: values differ ({ours.ravel()[:6]} vs {theirs.ravel()[:6]})")
        return
    finite = np.abs(theirs[np.isfinite(theirs)])
    # relative to each value, and to the output's scale (rounding differs where values cancel, e.g. a + alpha * b)
    atol = ATOL + SCALE_RTOL * (finite.max() if finite.size else 0.0)
    if not np.allclose(ours, theirs, rtol=RTOL, atol=atol, equal_nan=True):
        worst = np.nanmax(np.abs(ours - theirs)) if ours.size else 0
        raise AssertionError(f"{what}: values differ by up to {worst:.3g}")


def compare(theirs_outputs, ours_outputs, theirs_leaves, ours_leaves):
    """Compare outputs, then the gradients of sum(w * output) for fixed random weights w."""
    theirs_outputs, ours_outputs = _tensors(theirs_outputs), _tensors(ours_outputs)
    if len(theirs_outputs) != len(ours_outputs):
        raise AssertionError(f"{len(ours_outputs)} outputs, PyTorch {len(theirs_outputs)}")
    for position, (theirs, ours) in enumerate(zip(theirs_outputs, ours_outputs)):
        _check_close(f"output {position}", theirs, ours)
    # an output that is an input itself (flatten of a 1-D tensor) is differentiated through a view of it
    differentiable = [(theirs.view_as(theirs) if theirs.grad_fn is None else theirs, ours)
                      for theirs, ours in zip(theirs_outputs, ours_outputs) if theirs.requires_grad]
    wanted = [(theirs, ours) for theirs, ours in zip(theirs_leaves, ours_leaves) if theirs.requires_grad]
    if not differentiable or not wanted:
        return
    rng = np.random.default_rng(0)
    weights = [rng.standard_normal(theirs.shape) for theirs, _ in differentiable]
    try:
        theirs_grads = torch.autograd.grad([t for t, _ in differentiable], [t for t, _ in wanted],
                                           [torch.from_numpy(w) for w in weights], allow_unused=True)
    except RuntimeError as error:
        raise Skip(f"PyTorch raises in backward ({type(error).__name__})") from None
    ours_differentiable = [(o, w) for (_, o), w in zip(differentiable, weights) if o.requires_grad]
    if not ours_differentiable:
        if any(g is not None and g.abs().sum() > 0 for g in theirs_grads):
            raise AssertionError("minigrad's output does not require grad, PyTorch's has gradients")
        return
    ours_grads = mg.grad([o for o, _ in ours_differentiable], [o for _, o in wanted],
                         [mg.tensor(w, dtype=o.dtype) for o, w in ours_differentiable], allow_unused=True)
    for position, (theirs, ours) in enumerate(zip(theirs_grads, ours_grads)):
        if theirs is not None:
            _check_close(f"gradient of input {position}", theirs, ours)


def _unsupported_option(claim, input, kwargs):
    """The reason minigrad cannot run this sample today (an option it lacks), or None."""
    for option, default in claim.unsupported.items():
        if option in kwargs and not _same_option(kwargs[option], default):
            return f"option {option}={kwargs[option]!r}"
    return claim.skip(input, kwargs) if claim.skip else None


def _without_defaults(claim, kwargs):
    """kwargs less the options minigrad lacks, each of which is at its default here."""
    return {key: value for key, value in kwargs.items() if key not in claim.unsupported}


def _same_option(value, default):
    if isinstance(value, (list, tuple)) and isinstance(default, int):
        return all(item == default for item in value)
    return value == default or (value is None and default is None)


# ----- running op_db and module_db ----------------------------------------------------------------
Result = collections.namedtuple("Result", "family name outcome detail")


def _spread(samples, limit):
    """At most ``limit`` samples, taken evenly over the list (so late, unusual samples are in it)."""
    if len(samples) <= limit:
        return samples
    return [samples[round(i * (len(samples) - 1) / (limit - 1))] for i in range(limit)]


def _run_one(run_theirs, run_ours, theirs_leaves, ours_leaves):
    try:
        theirs = run_theirs()
    except Exception as error:  # noqa: BLE001  (a sample PyTorch rejects is out of scope)
        raise Skip(f"PyTorch raises ({type(error).__name__})") from None
    try:
        ours = run_ours()
    except Skip:
        raise
    except Exception as error:  # noqa: BLE001
        return "raised", f"{type(error).__name__}: {error}"
    try:
        compare(theirs, ours, theirs_leaves(), ours_leaves())
    except AssertionError as error:
        return "wrong", str(error)
    except Skip:
        raise
    except Exception as error:  # noqa: BLE001  (minigrad's backward raised)
        return "raised", f"backward: {type(error).__name__}: {error}"
    return "ran", ""


def _op_sample(name, claim, op, sample):
    kwargs = dict(sample.kwargs)
    for option, value in zip(POSITIONAL_OPTIONS.get(name, ()), sample.args):
        kwargs.setdefault(option, value)
    reason = _unsupported_option(claim, sample.input, kwargs)
    if reason:
        raise Skip(reason)
    theirs_values = [sample.input, *sample.args, *sample.kwargs.values()]
    ours_input, ours_args, ours_kwargs = to_minigrad((sample.input, sample.args,
                                                      _without_defaults(claim, sample.kwargs)))
    ours_values = [ours_input, *ours_args, *ours_kwargs.values()]
    return _run_one(lambda: op.op(sample.input, *sample.args, **sample.kwargs),
                    lambda: claim.call(ours_input, *ours_args, **ours_kwargs),
                    lambda: _tensors(theirs_values), lambda: _tensors(ours_values))


def _op_samples(op):
    """The op's reference inputs (its sample inputs and more, awkward values included), else its samples."""
    samples = []
    try:
        for sample in op.reference_inputs("cpu", torch.float64, requires_grad=op.supports_autograd):
            samples.append(sample)
    except (RuntimeError, ValueError):  # a few ops' reference inputs stop at an integer tensor made to require grad
        samples += op.sample_inputs("cpu", torch.float64, requires_grad=op.supports_autograd)
    return samples


def run_op_db(results):
    from torch.testing._internal.common_methods_invocations import op_db
    for op in op_db:
        claim = OPS.get(op.name)
        if claim is None or (claim.variants is not None and op.variant_test_name not in claim.variants):
            continue
        label = op.name + (f".{op.variant_test_name}" if op.variant_test_name else "")
        samples = _op_samples(op)
        for sample in _spread(samples, SAMPLES_PER_OP):
            try:
                outcome, detail = _op_sample(op.name, claim, op, sample)
            except Skip as reason:
                outcome, detail = "skipped", str(reason)
            results.append(Result(claim.family, label, outcome, detail))


def _module_sample(name, claim, info, module_input, training):
    constructor = module_input.constructor_input
    kwargs = dict(constructor.kwargs)
    for option, value in zip(MODULE_POSITIONAL_OPTIONS.get(name, ()), constructor.args):
        kwargs.setdefault(option, value)
    forward = module_input.forward_input
    reason = _unsupported_option(claim, (_tensors(forward.args) or [None])[0], kwargs)
    if reason:
        raise Skip(reason)
    torch.manual_seed(0)
    theirs_module = info.module_cls(*constructor.args, **constructor.kwargs).to(torch.float64)
    ours_args, ours_kwargs = to_minigrad((constructor.args, _without_defaults(claim, constructor.kwargs)))
    ours_module = claim.call(*ours_args, **ours_kwargs)
    state = {key: value.detach().numpy().copy() for key, value in theirs_module.state_dict().items()}
    ours_module.load_state_dict(state)
    ours_module.to(dtype=np.float64) if hasattr(ours_module, "to") else None
    theirs_module.train(training), ours_module.train(training)
    ours_forward_args, ours_forward_kwargs = to_minigrad((forward.args, forward.kwargs))

    def theirs_leaves():
        return _tensors((forward.args, forward.kwargs)) + list(theirs_module.parameters())

    def ours_leaves():
        return _tensors((ours_forward_args, ours_forward_kwargs)) + list(ours_module.parameters())

    outcome = _run_one(lambda: theirs_module(*forward.args, **forward.kwargs),
                       lambda: ours_module(*ours_forward_args, **ours_forward_kwargs), theirs_leaves, ours_leaves)
    if outcome[0] == "ran":
        try:
            for key, value in theirs_module.state_dict().items():
                _check_close(f"state {key}", value, ours_module.state_dict()[key])
        except (AssertionError, KeyError) as error:
            return "wrong", f"after the call: {error}"
    return outcome


def run_module_db(results):
    from torch.testing._internal.common_modules import module_db
    for info in module_db:
        name = info.module_cls.__name__
        claim = MODULES.get(name)
        if claim is None:
            continue
        for training in ((True, False) if info.train_and_eval_differ else (True,)):
            inputs = info.module_inputs_func(info, device="cpu", dtype=torch.float64, requires_grad=True,
                                             training=training)
            for module_input in _spread(inputs, SAMPLES_PER_OP):
                try:
                    outcome, detail = _module_sample(name, claim, info, module_input, training)
                except Skip as reason:
                    outcome, detail = "skipped", str(reason)
                results.append(Result(claim.family, f"{name}({'train' if training else 'eval'})", outcome, detail))


@functools.lru_cache(maxsize=1)
def run_all():
    """Every sample of every claimed op and layer, as a list of Results (computed once per process)."""
    results = []
    torch.manual_seed(0)  # the samples are drawn at random: the same ones every run
    with np.errstate(all="ignore"):
        run_op_db(results)
        run_module_db(results)
    return tuple(results)


def coverage_table(results):
    """Lines: per family, samples run / skipped (by reason) / wrong / raised, and the share run."""
    lines = []
    families = sorted({result.family for result in results})
    for family in families + ["all"]:
        chosen = [r for r in results if family in ("all", r.family)]
        counts = collections.Counter(r.outcome for r in chosen)
        share = share_run(chosen)
        lines.append(f"{family:12s} ran {counts['ran']:5d}  wrong {counts['wrong']:3d}  raised {counts['raised']:3d}"
                     f"  skipped {counts['skipped']:4d}  ({share:.1%} of the in-scope samples run)")
        reasons = collections.Counter(_reason_kind(r.detail) for r in chosen if r.outcome == "skipped")
        for reason, count in reasons.most_common():
            lines.append(f"{'':14s}skipped {count:4d}: {reason}")
    return lines


OUT_OF_SCOPE = ("complex or sparse tensor", "dtype ", "PyTorch raises")


def share_run(results):
    """Samples run / samples in scope: every sample except complex, sparse, other dtypes and those
    PyTorch rejects. A skipped option minigrad lacks counts against it."""
    in_scope = [r for r in results if not (r.outcome == "skipped" and r.detail.startswith(OUT_OF_SCOPE))]
    return sum(r.outcome == "ran" for r in in_scope) / len(in_scope) if in_scope else math.nan


def _reason_kind(detail):
    return detail.split("=")[0] if detail.startswith("option ") else detail
