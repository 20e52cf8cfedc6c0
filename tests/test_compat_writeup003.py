"""fastcnn.compat.writeup003 against write-up 003's own functions (tests/_writeup003.py):
the same values on the write-up's shapes and on others, the same training step from
the same weights, and fastcnn.reference where the write-up's own code refuses a shape."""

import types

import numpy as np
import pytest

from fastcnn import reference
from fastcnn.compat import writeup003 as compat

import _writeup003 as writeup
from _helpers import class_images, numerical_gradient

TOL = dict(rtol=1e-12, atol=1e-12)

# (x shape, field, padding, stride), all tiling the padded input as the write-up asserts
FIELDS = {
    "writeup-layer-2": ((3, 3, 32, 32), (5, 5), 2, 1),
    "writeup-layer-4": ((3, 10, 16, 16), (5, 5), 2, 1),
    "writeup-pool": ((6, 1, 32, 32), (2, 2), 0, 2),
    "odd-sizes-stride-2": ((3, 2, 9, 7), (3, 3), 1, 2),
    "stride-3": ((2, 2, 9, 9), (3, 3), 0, 3),
    "non-square-field": ((2, 2, 7, 9), (3, 5), 1, 1),
    "1x1": ((2, 4, 5, 6), (1, 1), 0, 1),
}


@pytest.mark.parametrize("case", FIELDS.values(), ids=FIELDS.keys())
def test_im2col_and_col2im_match_the_writeups(case, rng):
    shape, (fh, fw), padding, stride = case
    for ours, theirs in zip(
        compat.get_im2col_indices(shape, fh, fw, padding, stride),
        writeup.get_im2col_indices(shape, fh, fw, padding, stride),
    ):
        np.testing.assert_array_equal(ours, theirs)
    x = rng.standard_normal(shape)
    cols = compat.im2col_indices(x, fh, fw, padding, stride)
    np.testing.assert_array_equal(cols, writeup.im2col_indices(x, fh, fw, padding, stride))
    c = rng.standard_normal(cols.shape)
    back = compat.col2im_indices(c, shape, fh, fw, padding, stride)
    np.testing.assert_allclose(back, writeup.col2im_indices(c, shape, fh, fw, padding, stride), **TOL)
    # col2im is im2col's adjoint
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * back), rtol=1e-12)


CONVOLUTIONS = {
    "writeup-layer-2": ((3, 3, 32, 32), (10, 3, 5, 5), 2, 1),
    "writeup-layer-4": ((3, 10, 16, 16), (20, 10, 5, 5), 2, 1),
    "odd-sizes-stride-2": ((2, 4, 9, 11), (3, 4, 3, 3), 1, 2),
    "stride-3-no-padding": ((2, 2, 9, 9), (5, 2, 3, 3), 0, 3),
    "1x1": ((2, 3, 5, 7), (4, 3, 1, 1), 0, 1),
}


def cnn(W, x, layer):
    """A write-up CNN object with W as layer ``layer``'s weights and x as its input."""
    m = writeup.CNN()
    setattr(m, f"W{layer}", W)
    if layer == 2:
        m.images = x
    else:
        m.Z3 = x
    return m


@pytest.mark.parametrize("layer", [2, 4])
@pytest.mark.parametrize("case", CONVOLUTIONS.values(), ids=CONVOLUTIONS.keys())
def test_convolution_forward_and_backward_match_the_writeups(case, layer, rng):
    x_shape, w_shape, padding, stride = case
    x, W = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    b = rng.standard_normal((w_shape[0], 1))
    ours, theirs = types.SimpleNamespace(**{f"W{layer}": W}), cnn(W, x, layer)
    Z = compat.convolve_forward(ours, x, W, b, layer, padding, stride)
    np.testing.assert_allclose(Z, writeup.convolve_forward(theirs, x, W, b, layer, padding, stride), **TOL)
    delta = rng.standard_normal(Z.shape)
    for mine, original in zip(
        compat.conv_backward(ours, delta, layer, padding, stride),
        writeup.conv_backward(theirs, delta, layer, padding, stride),
    ):
        assert mine.shape == original.shape
        np.testing.assert_allclose(mine, original, **TOL)


def test_the_default_padding_and_stride_are_the_writeups(rng):
    x, W, b = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 5, 5)), np.zeros((4, 1))
    ours = types.SimpleNamespace(W2=W)
    np.testing.assert_allclose(
        compat.convolve_forward(ours, x, W, b, layer=2),
        writeup.convolve_forward(cnn(W, x, 2), x, W, b, layer=2),
        **TOL,
    )
    assert compat.conv_backward(ours, rng.standard_normal((2, 4, 8, 8)), layer=2)[2].shape == x.shape


def test_convolution_gradients_match_finite_differences(rng):
    x, W, b = rng.standard_normal((2, 2, 5, 6)), rng.standard_normal((3, 2, 3, 3)), rng.standard_normal((3, 1))
    m = types.SimpleNamespace(W4=W)
    weights = rng.standard_normal((2, 3, 3, 3))

    def loss():
        return float(np.sum(compat.convolve_forward(m, x, W, b, 4, 1, 2) * weights))

    expected = [numerical_gradient(loss, W), numerical_gradient(loss, b), numerical_gradient(loss, x)]
    compat.convolve_forward(m, x, W, b, 4, 1, 2)
    for actual, wanted in zip(compat.conv_backward(m, weights, 4, 1, 2), expected):
        np.testing.assert_allclose(actual, wanted, rtol=1e-6, atol=1e-8)


def test_windows_that_do_not_tile_the_input_are_accepted(rng):
    x, W, b = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal((4, 1))
    with pytest.raises(AssertionError):
        writeup.get_im2col_indices(x.shape, 3, 3, 0, 2)
    m = types.SimpleNamespace(W2=W)
    Z = compat.convolve_forward(m, x, W, b, 2, 0, 2)
    np.testing.assert_allclose(Z, reference.correlate2d(x, W, b[:, 0], 2, 0), **TOL)
    delta = rng.standard_normal(Z.shape)
    _, _, outp = compat.conv_backward(m, delta, 2, 0, 2)
    np.testing.assert_allclose(outp, reference.convolve2d_full(delta, W, (8, 8), 2, 0), **TOL)
    cols = compat.im2col_indices(x, 3, 3, 0, 2)
    assert cols.shape == (27, 3 * 3 * 2)


POOLS = {
    "writeup-pool-3": ((3, 10, 32, 32), 2, 2),
    "writeup-pool-5": ((3, 20, 16, 16), 2, 2),
    "size-3-stride-3": ((2, 3, 9, 9), 3, 3),
    "overlapping-3-stride-2": ((2, 2, 7, 7), 3, 2),
}


@pytest.mark.parametrize("case", POOLS.values(), ids=POOLS.keys())
def test_maxpool_forward_matches_the_writeups(case, rng):
    shape, size, stride = case
    x = rng.standard_normal(shape)
    outp, argmaxes = compat.maxpool_forward(x, size, stride)
    expected_outp, expected_argmaxes = writeup.maxpool_forward(x, size, stride)
    np.testing.assert_array_equal(outp, expected_outp)
    np.testing.assert_array_equal(argmaxes, expected_argmaxes)


def test_maxpool_forward_numbers_ties_as_the_writeup():
    x = np.array([[[[1.0, 1.0, 0.0, 2.0], [1.0, 0.0, 2.0, 2.0]]]])
    np.testing.assert_array_equal(compat.maxpool_forward(x)[1], writeup.maxpool_forward(x)[1])
    np.testing.assert_array_equal(compat.maxpool_forward(x)[1], [[[[0, 1]]]])


@pytest.mark.parametrize(
    "grad_shape, outshape",
    [((3, 10, 16, 16), (3, 10, 32, 32)), ((2, 3, 4, 5), (2, 3, 9, 11))],
    ids=["writeup-layer-3", "odd-outshape"],
)
def test_maxpool_backward_matches_the_writeups(grad_shape, outshape, rng):
    argmaxes = rng.integers(0, 4, grad_shape)
    grad = rng.standard_normal(grad_shape)
    np.testing.assert_array_equal(
        compat.maxpool_backward(argmaxes, grad, outshape),
        writeup.maxpool_backward(argmaxes, grad, outshape),
    )


def test_maxpool_backward_is_the_gradient_of_maxpool_forward(rng):
    x = rng.standard_normal((2, 3, 6, 8))
    weights = rng.standard_normal((2, 3, 3, 4))
    _, argmaxes = compat.maxpool_forward(x)
    expected = numerical_gradient(lambda: float(np.sum(compat.maxpool_forward(x)[0] * weights)), x)
    np.testing.assert_allclose(compat.maxpool_backward(argmaxes, weights, x.shape), expected, rtol=1e-6)


def test_maxpool_backward_refuses_what_the_writeups_loop_gets_wrong(rng):
    grad = rng.standard_normal((1, 2, 2, 2))
    with pytest.raises(ValueError, match="integers 0..3"):
        compat.maxpool_backward(np.full((1, 2, 2, 2), 4), grad, (1, 2, 4, 4))
    with pytest.raises(ValueError, match=r"H >= 4"):
        compat.maxpool_backward(np.zeros((1, 2, 2, 2), int), grad, (1, 2, 3, 4))
    with pytest.raises(ValueError, match="argmaxes and inpt"):
        compat.maxpool_backward(np.zeros((1, 2, 2, 1), int), grad, (1, 2, 4, 4))


def test_activations_match_the_writeups(rng):
    z = rng.standard_normal((6, 10)) * 3
    np.testing.assert_array_equal(compat.ReLU(z), writeup.ReLU(z))
    np.testing.assert_array_equal(compat.derivative_ReLU(z), writeup.derivative_ReLU(z))
    np.testing.assert_allclose(compat.Softmax(z), writeup.Softmax(z), **TOL)
    np.testing.assert_allclose(compat.derivative_Softmax(z[0]), writeup.derivative_Softmax(z[0]), **TOL)
    # a batch is taken row by row, as the write-up's loop does sample by sample
    rows = np.stack([writeup.derivative_Softmax(row) for row in z])
    np.testing.assert_allclose(compat.derivative_Softmax(z), rows, **TOL)


def test_activations_stay_finite_where_the_writeups_do_not():
    z = np.array([[0.0, 1.0], [-2000.0, -2001.0]])
    with np.errstate(all="ignore"):
        assert np.isnan(writeup.Softmax(z)[1]).all()
        assert np.isnan(writeup.ReLU(np.array([-np.inf]))).all()
    np.testing.assert_allclose(compat.Softmax(z)[1], compat.Softmax(z[:1] + 0.0)[0][::-1])
    np.testing.assert_array_equal(compat.ReLU(np.array([-np.inf, np.inf])), [0.0, np.inf])


def run_training_step(functions, seed, images, labels, batch):
    """Write-up 003's cells 2 and 8, verbatim, on ``functions`` (its own or compat's),
    with cell 7's data replaced by ``images`` and one-hot ``labels``."""
    names = {name: getattr(functions, name) for name in compat.__all__}
    namespace = {"np": np, **names}
    np.random.seed(seed)
    namespace["m"] = writeup.CNN()
    exec(writeup.INITIALISATION, namespace)
    namespace["N"], namespace["imap"] = batch, list(range(batch))
    namespace["m"].images = images - images.mean(axis=0)
    namespace["labels"] = labels
    namespace["Y"] = list(np.argmax(labels, axis=1))
    exec(writeup.TRAINING_LOOP, namespace)
    return namespace


def test_one_training_step_of_the_writeups_loop_matches(capsys):
    images, classes = class_images(6, size=32, channels=3, seed=4)
    labels = np.eye(10)[classes]
    ours = run_training_step(compat, 9, images.astype(np.float64), labels, 6)
    ours_printed = capsys.readouterr().out
    theirs = run_training_step(writeup, 9, images.astype(np.float64), labels, 6)
    assert capsys.readouterr().out == ours_printed
    assert ours_printed.startswith("Iteration 0 loss ")
    for name in ("Z2", "Z4", "Z5", "Z7", "Yhat", "delta7", "dW7", "dW6", "outerr5", "outerr4",
                 "dW4", "db4", "outerr3", "dW2", "db2", "outerr1", "W6", "W7", "b2", "b4", "b6", "b7"):
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(ours["m"].W2, theirs["m"].W2, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours["m"].W4, theirs["m"].W4, rtol=1e-10, atol=1e-12)


def test_conv_backward_without_its_forward_pass_says_so(rng):
    m = types.SimpleNamespace(W2=rng.standard_normal((2, 1, 3, 3)), Xcol2=[])
    with pytest.raises(ValueError, match=r"convolve_forward\(m, \.\.\., layer=2\)"):
        compat.conv_backward(m, np.zeros((1, 2, 4, 4)), layer=2)
    x = rng.standard_normal((1, 1, 4, 4))
    compat.convolve_forward(m, x, m.W2, np.zeros((2, 1)), layer=2)
    with pytest.raises(ValueError, match=r"\(1, 2, 6, 6\), got \(1, 2, 3, 3\)"):
        compat.conv_backward(m, np.zeros((1, 2, 3, 3)), layer=2)
    with pytest.raises(ValueError, match="one bias per filter"):
        compat.convolve_forward(m, x, m.W2, np.zeros((3, 1)), layer=2)
