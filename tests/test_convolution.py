"""conv2d's options as PyTorch has them: groups, dilation, 'same'/'valid', padding modes, the transpose.

Each option is compared with PyTorch in float64, the forward value and the
gradient of every input, on awkward shapes (odd sizes, uneven strides and
dilations); each is gradchecked, and its second derivative gradgradchecked,
since the three conv ops differentiate into each other.
"""
import numpy as np
import pytest
import torch

import minigrad as mg
import minigrad.nn as nn
import minigrad.nn.functional as F

TF = torch.nn.functional


def leaf(rng, *shape):
    return mg.tensor(rng.normal(size=shape), requires_grad=True, dtype=np.float64)


def matches_pytorch(ours, theirs, shapes, rng, atol=1e-10):
    """ours(*minigrad tensors) and theirs(*torch tensors) agree in value and in every input's gradient."""
    arrays = [rng.normal(size=shape) for shape in shapes]
    our_inputs = [mg.tensor(a, requires_grad=True) for a in arrays]
    their_inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
    our_out, their_out = ours(*our_inputs), theirs(*their_inputs)
    assert our_out.shape == tuple(their_out.shape)
    np.testing.assert_allclose(our_out.numpy(), their_out.detach().numpy(), rtol=1e-10, atol=atol)
    weights = rng.normal(size=our_out.shape)
    (our_out * mg.tensor(weights)).sum().backward()
    (their_out * torch.tensor(weights)).sum().backward()
    for position, (our_input, their_input) in enumerate(zip(our_inputs, their_inputs)):
        np.testing.assert_allclose(our_input.grad.numpy(), their_input.grad.numpy(), rtol=1e-10, atol=atol,
                                   err_msg=f"gradient of input {position}")
    return True


CONV_CASES = [  # input shape, weight shape, options
    ((2, 6, 9, 8), (9, 2, 3, 2), dict(stride=2, padding=1, dilation=2, groups=3)),
    ((2, 4, 7, 7), (4, 1, 3, 3), dict(padding=1, groups=4)),                    # depthwise
    ((1, 4, 8, 5), (8, 1, 3, 3), dict(stride=(2, 1), padding=(2, 1), groups=4)),  # depthwise, multiplier 2
    ((2, 3, 9, 7), (5, 3, 2, 3), dict(stride=(1, 2), padding=(0, 2), dilation=(3, 1))),
    ((2, 3, 7, 6), (4, 3, 4, 3), dict(padding="same", dilation=(1, 2))),        # even kernel: uneven padding
    ((2, 4, 6, 7), (6, 2, 3, 2), dict(padding="same", groups=2)),
    ((2, 3, 7, 6), (4, 3, 4, 3), dict(padding="valid", stride=2)),
    ((3, 7, 6), (4, 3, 3, 3), dict(padding=1, stride=2)),                       # unbatched (C, H, W)
]


@pytest.mark.parametrize("input_shape, weight_shape, options", CONV_CASES)
def test_conv2d_options_match_pytorch(input_shape, weight_shape, options, rng):
    with_bias = (weight_shape[0],)
    assert matches_pytorch(lambda x, w, b: F.conv2d(x, w, b, **options),
                           lambda x, w, b: TF.conv2d(x, w, b, **options), [input_shape, weight_shape, with_bias], rng)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("side_by_side", [True, False], ids=["images side by side", "one GEMM per image"])
@pytest.mark.parametrize("input_shape, weight_shape, options", CONV_CASES[:1] + CONV_CASES[3:5])
def test_conv2d_in_batch_chunks_matches_pytorch(input_shape, weight_shape, options, side_by_side, threads, rng,
                                                monkeypatch):
    """Chunks of 2 images, the last one short (a batch of 5), through both weight-gradient paths,
    on one thread and shared between two."""
    from minigrad.nn import convolution
    monkeypatch.setattr(convolution, "MIN_GEMM_DEPTH", 10 ** 9 if side_by_side else 0)
    before = mg.get_num_threads()
    mg.set_num_threads(threads)
    chunked = []

    def in_twos(array, bytes_per_image):
        chunked.append(array.shape[0])
        return [slice(start, min(array.shape[0], start + 2)) for start in range(0, array.shape[0], 2)]
    monkeypatch.setattr(convolution, "_batches", in_twos)
    batch = (5,) + input_shape[1:]
    try:
        assert matches_pytorch(lambda x, w, b: F.conv2d(x, w, b, **options),
                               lambda x, w, b: TF.conv2d(x, w, b, **options), [batch, weight_shape, (weight_shape[0],)],
                               rng)
    finally:
        mg.set_num_threads(before)
    assert chunked == [5, 5, 5]  # the forward and both gradient ops walked the batch in chunks


@pytest.mark.parametrize("input_shape, weight_shape, options", CONV_CASES[:2] + CONV_CASES[4:5] + CONV_CASES[7:])
def test_conv2d_options_gradcheck_twice(input_shape, weight_shape, options, rng):
    small = input_shape[:-2] + tuple(min(size, 6) for size in input_shape[-2:])
    x, weight, bias = leaf(rng, *small), leaf(rng, *weight_shape), leaf(rng, weight_shape[0])
    conv = lambda x, w, b: F.conv2d(x, w, b, **options)  # noqa: E731
    assert mg.gradcheck(conv, [x, weight, bias])
    assert mg.gradgradcheck(conv, [x, weight, bias])


TRANSPOSED_CASES = [  # input shape, weight shape (C_in, C_out / groups, KH, KW), options
    ((2, 4, 5, 4), (4, 3, 3, 2), dict(stride=(2, 3), padding=1, output_padding=(1, 2), groups=2, dilation=2)),
    ((2, 3, 4, 5), (3, 2, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    ((2, 3, 4, 4), (3, 5, 2, 2), dict()),
    ((3, 4, 5), (3, 2, 3, 3), dict(stride=2)),                                  # unbatched
    ((2, 2, 4, 4), (2, 2, 4, 5), dict(stride=(3, 2), padding=(1, 2), output_padding=(2, 3), groups=2,
                                      dilation=4)),                             # output_padding > padding
]


@pytest.mark.parametrize("input_shape, weight_shape, options", TRANSPOSED_CASES)
def test_conv_transpose2d_matches_pytorch(input_shape, weight_shape, options, rng):
    bias = (weight_shape[1] * options.get("groups", 1),)
    assert matches_pytorch(lambda x, w, b: F.conv_transpose2d(x, w, b, **options),
                           lambda x, w, b: TF.conv_transpose2d(x, w, b, **options),
                           [input_shape, weight_shape, bias], rng)


@pytest.mark.parametrize("input_shape, weight_shape, options", TRANSPOSED_CASES[:2] + TRANSPOSED_CASES[4:])
def test_conv_transpose2d_gradcheck_twice(input_shape, weight_shape, options, rng):
    x, weight = leaf(rng, *input_shape), leaf(rng, *weight_shape)
    deconv = lambda x, w: F.conv_transpose2d(x, w, **options)  # noqa: E731
    assert mg.gradcheck(deconv, [x, weight])
    assert mg.gradgradcheck(deconv, [x, weight])


def _layer_pair(ours_class, theirs_class, *args, **options):
    torch.manual_seed(0)
    theirs = theirs_class(*args, **options).double()
    ours = ours_class(*args, **options).to(np.float64)
    ours.load_state_dict({key: value.detach().numpy() for key, value in theirs.state_dict().items()})
    return ours, theirs


@pytest.mark.parametrize("padding_mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("padding", [(2, 1), "same"])
def test_conv2d_layer_padding_modes_match_pytorch(padding_mode, padding, rng):
    ours, theirs = _layer_pair(nn.Conv2d, torch.nn.Conv2d, 4, 6, (3, 4), padding=padding, padding_mode=padding_mode,
                               groups=2, dilation=(2, 1))
    assert matches_pytorch(ours, theirs, [(2, 4, 7, 6)], rng)
    for (name, ours_parameter), theirs_parameter in zip(ours.named_parameters(), theirs.parameters()):
        np.testing.assert_allclose(ours_parameter.grad.numpy(), theirs_parameter.grad.numpy(), rtol=1e-10,
                                   atol=1e-10, err_msg=name)


def test_conv_layers_take_pytorchs_positional_order(rng):
    conv = nn.Conv2d(4, 6, 3, 2, 1, 2, 2, False, "reflect")  # stride, padding, dilation, groups, bias, padding_mode
    assert (conv.stride, conv.padding, conv.dilation, conv.groups, conv.bias, conv.padding_mode) == \
        ((2, 2), (1, 1), (2, 2), 2, None, "reflect")
    assert conv.weight.shape == (6, 2, 3, 3)
    deconv = nn.ConvTranspose2d(4, 6, 3, 2, 1, 1, 2, False, 1)  # ..., output_padding, groups, bias, dilation
    assert (deconv.output_padding, deconv.groups, deconv.bias, deconv.weight.shape) == ((1, 1), 2, None, (4, 3, 3, 3))


def test_conv_transpose2d_layer_with_output_size_matches_pytorch(rng):
    ours, theirs = _layer_pair(nn.ConvTranspose2d, torch.nn.ConvTranspose2d, 3, 4, 3, stride=2, padding=1)
    assert matches_pytorch(lambda x: ours(x, output_size=(8, 9)), lambda x: theirs(x, output_size=(8, 9)),
                           [(2, 3, 4, 5)], rng)
    with pytest.raises(ValueError, match=r"ConvTranspose2d: requested an output size of \(9, 9\), "
                                         r"but valid sizes range from \(7, 9\) to \(8, 10\)"):
        ours(mg.tensor(np.zeros((2, 3, 4, 5))), output_size=(9, 9))


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("widths, shape", [((1, 2), (3, 4, 5)), ((1, 2, 2, 0), (2, 3, 4, 5)), ((0, 3, 1, 1), (3, 4, 5))])
def test_pad_matches_pytorch_and_gradchecks_twice(mode, widths, shape, rng):
    assert matches_pytorch(lambda x: F.pad(x, widths, mode=mode), lambda x: TF.pad(x, widths, mode=mode), [shape], rng)
    assert mg.gradgradcheck(lambda x: F.pad(x, widths, mode=mode) ** 2, [leaf(rng, 2, 4, 4)])


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("widths", [(-1, 1, -2, 1), (2, -1, 1, -1)])
def test_negative_pad_crops_as_pytorch_does(mode, widths, rng):
    assert matches_pytorch(lambda x: F.pad(x, widths, mode=mode), lambda x: TF.pad(x, widths, mode=mode),
                           [(1, 3, 4, 5)], rng)


def test_pad_constant_value_matches_pytorch(rng):
    assert matches_pytorch(lambda x: F.pad(x, (1, 1, 2, 0), value=-1.5),
                           lambda x: TF.pad(x, (1, 1, 2, 0), value=-1.5), [(2, 3, 3)], rng)


def test_conv_errors_name_the_op_and_shapes(rng):
    x, weight = mg.tensor(rng.normal(size=(2, 4, 6, 6))), mg.tensor(rng.normal(size=(6, 2, 3, 3)))
    with pytest.raises(ValueError, match="padding='same' is not supported for strided convolutions"):
        F.conv2d(x, weight, stride=2, padding="same", groups=2)
    with pytest.raises(ValueError, match="conv2d: invalid padding string 'full'"):
        F.conv2d(x, weight, padding="full", groups=2)
    with pytest.raises(ValueError, match=r"conv2d: input has 4 channels .* weight expects 6 .*groups=3"):
        F.conv2d(x, weight, groups=3)
    with pytest.raises(ValueError, match=r"conv2d: kernel \(3, 3\) \(dilation \(4, 4\)\) is larger"):
        F.conv2d(x, weight, dilation=4, groups=2)
    with pytest.raises(ValueError, match="Conv2d: in_channels 4 and out_channels 6 must both be divisible by groups=4"):
        nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="conv_transpose2d: output_padding"):
        F.conv_transpose2d(x, mg.tensor(rng.normal(size=(4, 2, 3, 3))), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="pad: padding size should be less than the corresponding input dimension"):
        F.pad(x, (6, 0), mode="reflect")


@pytest.mark.parametrize("kernel, dilation, padding", [((3, 3), (1, 1), ((1, 1), (1, 1))),
                                                       ((4, 3), (1, 2), ((1, 2), (2, 2))),
                                                       ((2, 5), (2, 1), ((0, 0), (3, 0)))])
def test_fold_by_planes_gives_folds_bits(kernel, dilation, padding, rng):
    """The input gradient's plane fold (stride 1, padding >= 0) against windows.fold, on float32
    values of odd sizes: the same sums in the same order, so the same bits, and its zeroed planes
    serve a second call."""
    from minigrad.nn import windows
    n, c, h, w = 3, 5, 11, 7
    (top, bottom), (left, right) = padding
    padded = (h + top + bottom, w + left + right)
    out_size = tuple(windows.output_size(size, k, 1, d) for size, k, d in zip(padded, kernel, dilation))
    planes = np.zeros((kernel[0] * kernel[1], n, c) + padded, dtype=np.float32)
    for _ in range(2):
        cols = rng.normal(size=(n, c) + kernel + out_size).astype(np.float32)
        expected = windows.fold(cols, np.zeros((n, c, h, w), dtype=np.float32), (1, 1), dilation, padding)
        out = windows.fold_by_planes(cols, np.empty((n, c, h, w), dtype=np.float32), planes, dilation, padding)
        np.testing.assert_array_equal(out, expected)
