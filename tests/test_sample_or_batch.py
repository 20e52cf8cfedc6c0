"""One sample or a batch is never misread: the write-ups' per-sample loop on fresh
layers gives what one batched call gives, and what cannot be decided is refused."""

import numpy as np
import pytest

from fastcnn import Network, layers

SEED = 7


def writeup_001_mlp():
    # the write-up feeds flat (784,) vectors
    return [layers.Dense(100, seed=1), layers.Tanh(),
            layers.Dense(50, seed=2), layers.Tanh(), layers.Dense(10, seed=3)]


def writeup_001_mlp_on_images():
    # a Flatten in front cannot tell one (1, 28, 28) image from a batch of one 28 x 28
    # image by itself: input_shape says which
    return [layers.Flatten(input_shape=(1, 28, 28))] + writeup_001_mlp()


def writeup_001_cnn():
    return [layers.Convolutional(5, 3, stride=2, padding=1, seed=1), layers.Tanh(),
            layers.Flatten(), layers.Dense(10, seed=2)]


def writeup_002():
    return [layers.Convolutional(5, 3, seed=1), layers.Sigmoid(), layers.Reshape((5 * 26 * 26,)),
            layers.Dense(100, seed=2), layers.Sigmoid(), layers.Dense(2, seed=3), layers.Sigmoid()]


def issue_example():
    return [layers.Convolutional(5, 3, seed=1), layers.Sigmoid(), layers.Flatten(),
            layers.Dense(100, seed=2), layers.Sigmoid(), layers.Dense(10, seed=3)]


def writeup_003():
    return [layers.Convolutional(10, 5, padding=2, seed=1), layers.ReLU(), layers.MaxPool2D(2),
            layers.Convolutional(20, 5, padding=2, seed=2), layers.ReLU(), layers.MaxPool2D(2),
            layers.Flatten(), layers.Dense(10, seed=3), layers.Softmax()]


def writeup_004():
    return [layers.Convolutional(6, 5, padding=2, seed=1), layers.ReLU(),
            layers.Convolutional(6, 5, padding=2, seed=2), layers.ReLU(), layers.MaxPool2D(2),
            layers.Flatten(), layers.Dense(10, seed=3)]


NETWORKS = [
    pytest.param(writeup_001_mlp, (784,), id="001-mlp"),
    pytest.param(writeup_001_mlp_on_images, (1, 28, 28), id="001-mlp-flatten"),
    pytest.param(writeup_001_cnn, (1, 28, 28), id="001-cnn"),
    pytest.param(writeup_002, (1, 28, 28), id="002-reshape"),
    pytest.param(issue_example, (1, 28, 28), id="002-flatten"),
    pytest.param(writeup_003, (3, 16, 16), id="003"),
    pytest.param(writeup_004, (1, 28, 28), id="004"),
]


def run(chain, x, output_gradient):
    for layer in chain:
        x = layer.forward(x)
    output = x
    gradient = output_gradient
    for layer in reversed(chain):
        gradient = layer.backward(gradient, 0.0)
    return output, gradient


@pytest.mark.parametrize("make, sample_shape", NETWORKS)
def test_the_per_sample_loop_on_fresh_layers_equals_one_batched_call(make, sample_shape):
    rng = np.random.default_rng(SEED)
    images = rng.random((4, *sample_shape))
    batched = [layer.astype(np.float64) for layer in make()]
    probe = images
    for layer in batched:
        probe = layer.forward(probe)
    out_width = probe.shape[1]
    gradients = rng.standard_normal((4, out_width))
    batched_out, batched_grad = run(batched, images, gradients)

    per_sample = [layer.astype(np.float64) for layer in make()]
    outputs, input_gradients = [], []
    for image, gradient in zip(images, gradients):
        output, input_gradient = run(per_sample, image, gradient)
        assert output.shape == (out_width,), "one sample in, one sample out"
        assert input_gradient.shape == sample_shape
        outputs.append(output)
        input_gradients.append(input_gradient)
    np.testing.assert_allclose(np.stack(outputs), batched_out, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(np.stack(input_gradients), batched_grad, rtol=1e-10, atol=1e-12)
    for one, many in zip(per_sample, batched):
        for name, parameter in one.parameters.items():
            assert parameter.shape == many.parameters[name].shape, "the same network was built"


def test_the_issue_example_builds_the_dense_layer_for_all_feature_maps():
    chain = issue_example()
    output = np.zeros((1, 28, 28))
    for layer in chain:
        output = layer.forward(output)
    assert output.shape == (10,)
    assert chain[3].weights.shape == (5 * 26 * 26, 100)


@pytest.mark.parametrize("batch_size", [1, 7, 32])
def test_fit_refuses_images_without_the_channel_axis_for_every_batch_size(batch_size):
    network = Network([layers.Convolutional(32, 3), layers.Flatten(), layers.Dense(10)])
    network.use("softmax_cross_entropy")
    x = np.zeros((64, 28, 28), np.float32)
    with pytest.raises(ValueError, match="channel axis"):
        network.fit(x, np.zeros(64, np.int64), 1, 0.1, batch_size=batch_size, verbose=0)


def test_predict_of_one_sample_before_fit_uses_the_first_layers_input_shape():
    network = Network([layers.Convolutional(2, 3, input_shape=(1, 5, 5)), layers.Flatten(),
                       layers.Dense(3)])
    one = network.predict(np.ones((1, 5, 5)))
    assert one.shape == (3,)
    batch = network.predict(np.ones((4, 1, 5, 5)))
    assert batch.shape == (4, 3)
    np.testing.assert_allclose(batch[0], one, rtol=1e-5, atol=1e-6)


def test_a_standalone_convolution_reads_rank_3_as_one_sample_and_rank_4_as_a_batch():
    conv = layers.Convolutional(2, 3, seed=0)
    assert conv.forward(np.zeros((1, 5, 5))).shape == (2, 3, 3)
    assert conv.forward(np.zeros((4, 1, 5, 5))).shape == (4, 2, 3, 3)


def test_a_batch_of_flat_samples_into_a_convolution_names_the_missing_axis():
    network = Network([layers.Convolutional(2, 3), layers.Flatten(), layers.Dense(2)])
    with pytest.raises(ValueError, match="channel axis"):
        network.predict(np.zeros((5, 6, 6)))


def test_summary_with_an_input_shape_builds_the_chain_so_one_sample_is_read_right():
    chain = issue_example()
    network = Network(chain)
    network.summary(input_shape=(1, 28, 28))
    assert all(getattr(layer, "input_shape", "") != None for layer in chain)  # noqa: E711
    x = np.zeros((5, 26, 26), np.float32)  # one sample of 5 feature maps
    assert chain[2].forward(chain[1].forward(x)).shape in ((5 * 26 * 26,),)
