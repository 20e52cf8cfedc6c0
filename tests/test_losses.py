"""Losses: values against their formulas, gradients against finite differences,
integer labels against one-hot rows, stability for huge logits, and the fused
softmax_cross_entropy against a Softmax layer followed by cross_entropy."""

import numpy as np
import pytest

from fastcnn import activations, kernels, layers, losses, reference

from _helpers import numerical_gradient

PAIRS = [
    pytest.param(losses.mse, losses.mse_prime, id="mse"),
    pytest.param(losses.binary_cross_entropy, losses.binary_cross_entropy_prime, id="binary_cross_entropy"),
    pytest.param(losses.cross_entropy, losses.cross_entropy_prime, id="cross_entropy"),
    pytest.param(losses.softmax_cross_entropy, losses.softmax_cross_entropy_prime, id="softmax_cross_entropy"),
]


def predictions(loss, rng, shape):
    """Inputs each loss is defined on: logits, or probabilities (rows summing to 1 for
    cross_entropy, values in (0, 1) for binary cross-entropy)."""
    z = rng.standard_normal(shape)
    if loss is losses.cross_entropy:
        return activations.softmax(z)
    if loss is losses.binary_cross_entropy:
        return activations.sigmoid(z)
    return z


@pytest.mark.parametrize("shape", [(4, 3), (3,)], ids=["batched", "unbatched"])
@pytest.mark.parametrize("loss, loss_prime", PAIRS)
def test_gradient_matches_finite_differences(loss, loss_prime, shape, rng):
    y_pred = predictions(loss, rng, shape)
    y_true = np.eye(3)[rng.integers(0, 3, shape[:-1])]
    gradient = loss_prime(y_true, y_pred)
    assert gradient.shape == y_pred.shape and gradient.dtype == np.float64
    expected = numerical_gradient(lambda: loss(y_true, y_pred), y_pred)
    np.testing.assert_allclose(gradient, expected, rtol=1e-6, atol=1e-9)


def test_values_match_their_formulas(rng):
    logits = rng.standard_normal((5, 4))
    labels = rng.integers(0, 4, 5)
    one_hot = np.eye(4)[labels]
    p = activations.softmax(logits)
    assert losses.mse(one_hot, logits) == pytest.approx(np.mean((one_hot - logits) ** 2), rel=1e-12)
    assert losses.cross_entropy(one_hot, p) == pytest.approx(-np.log(p[np.arange(5), labels]).mean(), rel=1e-12)
    assert losses.softmax_cross_entropy(labels, logits) == pytest.approx(
        -np.log(p[np.arange(5), labels]).mean(), rel=1e-12
    )
    q = activations.sigmoid(logits)
    assert losses.binary_cross_entropy(one_hot, q) == pytest.approx(
        np.mean(-one_hot * np.log(q) - (1 - one_hot) * np.log(1 - q)), rel=1e-12
    )


@pytest.mark.parametrize("loss, loss_prime", PAIRS)
def test_integer_labels_equal_one_hot_rows(loss, loss_prime, rng):
    y_pred = predictions(loss, rng, (6, 4))
    labels = np.array([0, 3, 1, 1, 2, 3])
    one_hot = np.eye(4)[labels]
    assert loss(labels, y_pred) == pytest.approx(loss(one_hot, y_pred), rel=1e-14)
    np.testing.assert_allclose(loss_prime(labels, y_pred), loss_prime(one_hot, y_pred), rtol=1e-14)


@pytest.mark.parametrize("loss, loss_prime", PAIRS)
def test_the_loss_is_a_mean_over_the_batch(loss, loss_prime, rng):
    y_pred = predictions(loss, rng, (3, 4))
    labels = np.array([2, 0, 1])
    twice = np.concatenate([y_pred, y_pred])
    assert loss(np.tile(labels, 2), twice) == pytest.approx(loss(labels, y_pred), rel=1e-12)
    # the gradient carries 1/N: each row of a doubled batch gets half
    np.testing.assert_allclose(
        loss_prime(np.tile(labels, 2), twice)[:3], loss_prime(labels, y_pred) / 2, rtol=1e-12
    )


def test_softmax_then_cross_entropy_gives_the_fused_gradient(rng):
    logits = 3 * rng.standard_normal((8, 10))
    labels = rng.integers(0, 10, 8)
    softmax = layers.Softmax(dtype=np.float64)
    probabilities = softmax.forward(logits)
    chained = softmax.backward(losses.cross_entropy_prime(labels, probabilities), 0.0)
    fused = losses.softmax_cross_entropy_prime(labels, logits)
    np.testing.assert_allclose(chained, fused, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(fused, (probabilities - np.eye(10)[labels]) / 8, rtol=1e-12)
    assert losses.cross_entropy(labels, probabilities) == pytest.approx(
        losses.softmax_cross_entropy(labels, logits), rel=1e-12
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_logits_give_finite_losses_and_gradients(dtype):
    logits = np.array([[1e30, -1e30, 0.0], [3e4, 3e4, -3e4], [-1e38, 0.0, 1e38]], dtype)
    labels = np.array([1, 0, 0])
    loss = losses.softmax_cross_entropy(labels, logits)
    gradient = losses.softmax_cross_entropy_prime(labels, logits)
    assert np.isfinite(loss) and loss > 1e29
    assert np.isfinite(gradient).all()
    np.testing.assert_allclose(gradient[1], [(0.5 - 1) / 3, 0.5 / 3, 0], atol=1e-7)
    assert losses.softmax_cross_entropy([0], np.array([[1e30, -1e30]], dtype)) == 0.0


def test_saturated_probabilities_give_finite_losses():
    p = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    y = np.array([[0.0, 1.0], [0.0, 1.0]], np.float32)
    for loss, prime in [
        (losses.cross_entropy, losses.cross_entropy_prime),
        (losses.binary_cross_entropy, losses.binary_cross_entropy_prime),
    ]:
        assert np.isfinite(loss(y, p))
        assert np.isfinite(prime(y, p)).all()


def test_gradients_keep_the_prediction_dtype():
    logits = np.zeros((2, 3), np.float32)
    for _, prime in [p.values for p in PAIRS]:
        assert prime(np.array([0, 2]), logits + 0.3).dtype == np.float32


def test_one_output_column_takes_binary_labels():
    p = np.array([[0.9], [0.2]])
    assert losses.binary_cross_entropy(np.array([1, 0]), p) == pytest.approx(
        -(np.log(0.9) + np.log(0.8)) / 2, rel=1e-12
    )


@pytest.mark.parametrize(
    "y_true, error, match",
    [
        (np.array([0, 3]), ValueError, r"labels must be in \[0, 2\]"),
        (np.array([0.0, 1.0]), TypeError, "integers"),
        (np.zeros((2, 4)), ValueError, r"shape \(2, 4\) do not fit predictions of shape \(2, 3\)"),
    ],
    ids=["label-out-of-range", "float-labels", "shape"],
)
def test_bad_targets_are_refused(y_true, error, match):
    with pytest.raises(error, match=match):
        losses.softmax_cross_entropy(y_true, np.zeros((2, 3)))


def test_get_by_name_and_by_function():
    assert losses.get("mse") == (losses.mse, losses.mse_prime)
    assert losses.get(losses.softmax_cross_entropy)[1] is losses.softmax_cross_entropy_prime
    with pytest.raises(ValueError, match="unknown loss 'hinge'"):
        losses.get("hinge")
    with pytest.raises(ValueError, match="no derivative"):
        losses.get(lambda y, p: 0.0)


@pytest.mark.parametrize("dtype, tolerance", [(np.float32, 1e-6), (np.float64, 1e-13)],
                         ids=["float32", "float64"])
@pytest.mark.parametrize("rows, classes", [(1, 10), (64, 10), (7, 2), (3, 1000)])
def test_the_fused_kernel_matches_the_formulas(rng, rows, classes, dtype, tolerance):
    logits = (4 * rng.standard_normal((rows, classes))).astype(dtype)
    labels = rng.integers(0, classes, rows)
    labels[0] = logits[0].argmax()  # at least one row classified right
    loss, gradient, correct = kernels.softmax_cross_entropy(logits, labels)
    expected_loss, expected_gradient, expected_correct = reference.softmax_cross_entropy(
        logits, labels)
    assert isinstance(loss, float) and isinstance(correct, int)
    assert loss == pytest.approx(expected_loss, rel=tolerance)
    assert gradient.dtype == dtype and gradient.shape == (rows, classes)
    np.testing.assert_allclose(gradient, expected_gradient, rtol=tolerance, atol=tolerance / rows)
    assert correct == expected_correct >= 1


def test_the_public_losses_and_fit_take_the_kernel_for_integer_labels(rng):
    logits = rng.standard_normal((5, 3)).astype(np.float32)
    labels = rng.integers(0, 3, 5).astype(np.int32)
    loss, gradient, _ = kernels.softmax_cross_entropy(logits, labels)
    assert losses.softmax_cross_entropy(labels, logits) == loss
    np.testing.assert_array_equal(losses.softmax_cross_entropy_prime(labels, logits), gradient)
    # one sample: (K,) logits and a scalar label
    one = losses.softmax_cross_entropy_prime(labels[0], logits[0])
    assert one.shape == (3,)
    np.testing.assert_array_equal(one, kernels.softmax_cross_entropy(logits[:1], labels[:1])[1][0])


def test_the_fused_kernel_masks_minus_infinity_and_keeps_nan():
    logits = np.array([[0.0, -np.inf, 1.0], [np.nan, 0.0, 1.0]])
    loss, gradient, _ = kernels.softmax_cross_entropy(logits[:1], np.array([2]))
    assert np.isfinite(loss) and gradient[0, 1] == 0
    assert np.isnan(kernels.softmax_cross_entropy(logits, np.array([2, 1]))[0])
    assert kernels.softmax_cross_entropy(logits[:1], np.array([1]))[0] == np.inf


@pytest.mark.parametrize(
    "logits, labels, error, match",
    [
        (np.zeros((2, 3)), np.array([0, 3]), ValueError, r"labels must be in \[0, 2\].*row 1"),
        (np.zeros((2, 3)), np.array([-1, 0]), ValueError, r"labels must be in \[0, 2\]"),
        (np.zeros((2, 3)), np.array([0.0, 1.0]), TypeError, "integers"),
        (np.zeros((2, 3)), np.array([0, 1, 2]), ValueError, r"\(N,\) = \(2,\)"),
        (np.zeros((2, 3), np.int64), np.array([0, 1]), TypeError, "float32 or float64"),
        (np.zeros(3), np.array([0]), ValueError, "2-D"),
        (np.zeros((0, 3)), np.zeros(0, np.int64), ValueError, "one or more"),
        (np.zeros((2, 3)), [0, 1], TypeError, "numpy array"),
    ],
    ids=["label-too-big", "negative-label", "float-labels", "label-count", "int-logits",
         "1-D-logits", "no-rows", "list-labels"],
)
def test_the_fused_kernel_refuses_bad_input(logits, labels, error, match):
    with pytest.raises(error, match=match):
        kernels.softmax_cross_entropy(logits, labels)
