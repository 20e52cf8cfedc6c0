"""Copies of the write-ups' own NumPy code, the baselines fastcnn is measured against.

Adapted only as far as the benchmark's cases need: stride and padding (which write-ups
002 and 004 do not have, or only as "same" padding) are added the way their readers
would add them, and biases are one per filter (the write-ups keep one per output pixel).
"""

import numpy as np

LEARNING_RATE = 0.005  # write-up 004's


# --------------------------------------------------------------------------- write-up 002


def writeup002_conv(x, w, bias, grad_y, stride, padding, signal, backward=True):
    """Write-up 002's scipy.signal loop over (filter, channel) pairs, one sample at a time.

    x (N, C, H, W), w (F, C, k, k), bias (F,), grad_y (N, F, Ho, Wo). Stride and padding,
    which the write-up does not have, are added the way its reader would: pad the input,
    correlate at every position and keep every stride-th; dilate grad_y to match. The
    input gradient uses signal.convolve2d where the write-up calls correlate2d, which
    skips the kernel flip; both cost the same. Returns the forward output, or with
    ``backward`` the dict of y, grad_w (summed over the batch), grad_x and grad_b.
    """
    n, channels, height, width = x.shape
    filters = w.shape[0]
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    valid_height = padded.shape[2] - w.shape[2] + 1
    valid_width = padded.shape[3] - w.shape[3] + 1
    y = np.empty((n,) + grad_y.shape[1:], x.dtype)
    grad_w = np.zeros_like(w)
    grad_x = np.zeros_like(x)
    for sample in range(n):
        output = np.empty((filters, valid_height, valid_width), x.dtype)
        output[:] = bias[:, None, None]
        for i in range(filters):
            for j in range(channels):
                output[i] += signal.correlate2d(padded[sample, j], w[i, j], "valid")
        y[sample] = output[:, ::stride, ::stride]
        if not backward:
            continue
        output_gradient = np.zeros_like(output)
        output_gradient[:, ::stride, ::stride] = grad_y[sample]
        input_gradient = np.zeros_like(padded[sample])
        for i in range(filters):
            for j in range(channels):
                grad_w[i, j] += signal.correlate2d(
                    padded[sample, j], output_gradient[i], "valid"
                )
                input_gradient[j] += signal.convolve2d(output_gradient[i], w[i, j], "full")
        grad_x[sample] = input_gradient[:, padding : padding + height, padding : padding + width]
    if not backward:
        return y
    return {"y": y, "grad_w": grad_w, "grad_x": grad_x, "grad_b": grad_y.sum(axis=(0, 2, 3))}


# --------------------------------------------------------------------------- write-up 004


def writeup004_conv_forward(image, w, bias, stride, padding):
    """Write-up 004's ConvLayer.forward: one image (C, H, W), one window at a time.

    Returns the padded image (kept for backward, as the write-up does) and (F, Ho, Wo).
    """
    k = w.shape[2]
    padded = np.pad(image, ((0, 0), (padding, padding), (padding, padding)))
    out_height = (padded.shape[1] - k) // stride + 1
    out_width = (padded.shape[2] - k) // stride + 1
    output = np.empty((w.shape[0], out_height, out_width), image.dtype)
    output[:] = bias[:, None, None]
    for i in range(out_height):
        for j in range(out_width):
            region = padded[:, i * stride : i * stride + k, j * stride : j * stride + k]
            output[:, i, j] += np.sum(region * w, axis=(1, 2, 3))
    return padded, output


def writeup004_conv_backward(padded, output_gradient, w, stride, padding):
    """Write-up 004's ConvLayer.backprop (without the update): grad_w and grad_input.

    The weight gradient adds grad * region per window and filter; the input gradient
    gathers, per input pixel and channel, the window of the (stride-dilated, padded)
    output gradient against the flipped kernels, as the write-up does for stride 1.
    """
    filters, channels, k, _ = w.shape
    out_height, out_width = output_gradient.shape[1:]
    grad_w = np.zeros_like(w)
    for i in range(out_height):
        for j in range(out_width):
            region = padded[:, i * stride : i * stride + k, j * stride : j * stride + k]
            for f in range(filters):
                grad_w[f] += output_gradient[f, i, j] * region
    # Gradient at padded row r = sum over a of dilated_grad[r - a] * w[a]; putting the
    # dilated gradient k - 1 rows down makes that a window starting at row r.
    height = padded.shape[1] - 2 * padding
    width = padded.shape[2] - 2 * padding
    spread = np.zeros((filters, padded.shape[1] + k - 1, padded.shape[2] + k - 1), padded.dtype)
    spread[
        :,
        k - 1 : k - 1 + (out_height - 1) * stride + 1 : stride,
        k - 1 : k - 1 + (out_width - 1) * stride + 1 : stride,
    ] = output_gradient
    flipped = np.rot90(np.moveaxis(w, 0, 1), 2, axes=(2, 3))
    grad_input = np.zeros((channels, height, width), padded.dtype)
    for i in range(height):
        for j in range(width):
            region = spread[:, i + padding : i + padding + k, j + padding : j + padding + k]
            for d in range(channels):
                grad_input[d, i, j] += np.sum(region * flipped[d])
    return grad_w, grad_input


def writeup004_conv(x, w, bias, grad_y, stride, padding, backward=True):
    """writeup004_conv_forward (and _backward) over a batch, like writeup002_conv."""
    y = np.empty((x.shape[0],) + grad_y.shape[1:], x.dtype)
    grad_w = np.zeros_like(w)
    grad_x = np.empty_like(x)
    for sample in range(x.shape[0]):
        padded, y[sample] = writeup004_conv_forward(x[sample], w, bias, stride, padding)
        if backward:
            sample_grad_w, grad_x[sample] = writeup004_conv_backward(
                padded, grad_y[sample], w, stride, padding
            )
            grad_w += sample_grad_w
    if not backward:
        return y
    return {"y": y, "grad_w": grad_w, "grad_x": grad_x, "grad_b": grad_y.sum(axis=(0, 2, 3))}


def writeup004_maxpool_forward(image, size=2):
    """Write-up 004's MaxPool.forward: the max of each window of one image (C, H, W)."""
    channels, height, width = image.shape
    output = np.zeros((channels, height // size, width // size), image.dtype)
    for i in range(height // size):
        for j in range(width // size):
            region = image[:, i * size : i * size + size, j * size : j * size + size]
            output[:, i, j] = np.amax(region, axis=(1, 2))
    return output


def writeup004_maxpool_backward(image, output_gradient, size=2):
    """Write-up 004's MaxPool.backprop: find each window's max again, pixel by pixel."""
    grad_input = np.zeros_like(image)
    for i in range(image.shape[1] // size):
        for j in range(image.shape[2] // size):
            region = image[:, i * size : i * size + size, j * size : j * size + size]
            largest = np.amax(region, axis=(1, 2))
            for i2 in range(size):
                for j2 in range(size):
                    for f2 in range(image.shape[0]):
                        if region[f2, i2, j2] == largest[f2]:
                            gradient = output_gradient[f2, i, j]
                            grad_input[f2, i * size + i2, j * size + j2] = gradient
    return grad_input


def writeup004_maxpool(x, grad_y):
    """writeup004_maxpool_forward and _backward over a batch: {"y", "grad_x"}."""
    y = np.empty_like(grad_y)
    grad_x = np.empty_like(x)
    for sample in range(x.shape[0]):
        y[sample] = writeup004_maxpool_forward(x[sample])
        grad_x[sample] = writeup004_maxpool_backward(x[sample], grad_y[sample])
    return {"y": y, "grad_x": grad_x}


class WriteUp004SimpleCNN:
    """Write-up 004's SimpleCNN, trained one image at a time with its own loops.

    conv 5x5x6 same -> ReLU -> conv 5x5x6 same -> ReLU -> maxpool 2 -> dense 10 +
    softmax; float64 and the write-up's initialisation (its untied biases are tied here,
    as in every other implementation in this benchmark).
    """

    def __init__(self, rng):
        self.kernels1 = rng.standard_normal((6, 1, 5, 5)) / 25
        self.kernels2 = rng.standard_normal((6, 6, 5, 5)) / 25
        self.bias1 = rng.standard_normal(6) / (32 * 32)
        self.bias2 = rng.standard_normal(6) / (32 * 32)
        self.weights = rng.standard_normal((6 * 14 * 14, 10)) / (6 * 14 * 14)
        self.bias = np.zeros(10)

    def train_step(self, image, label, learn_rate=LEARNING_RATE):
        """Forward, softmax cross-entropy, backward and update for one uint8 image (28, 28)."""
        x = image[np.newaxis] / 255 - 0.5
        padded1, out1 = writeup004_conv_forward(x, self.kernels1, self.bias1, 1, 2)
        relu1 = np.maximum(0, out1)
        padded2, out2 = writeup004_conv_forward(relu1, self.kernels2, self.bias2, 1, 2)
        relu2 = np.maximum(0, out2)
        pooled = writeup004_maxpool_forward(relu2)
        flat = pooled.flatten()
        exp = np.exp(flat @ self.weights + self.bias)
        probabilities = exp / np.sum(exp)
        # The write-up's softmax Jacobian row times -1 / p[label] is p - one_hot(label).
        grad_totals = probabilities.copy()
        grad_totals[label] -= 1
        grad_flat = self.weights @ grad_totals
        self.weights -= learn_rate * np.outer(flat, grad_totals)
        self.bias -= learn_rate * grad_totals
        grad_relu2 = writeup004_maxpool_backward(relu2, grad_flat.reshape(pooled.shape))
        grad_out2 = grad_relu2 * (relu2 > 0)
        grad_w2, grad_relu1 = writeup004_conv_backward(padded2, grad_out2, self.kernels2, 1, 2)
        grad_out1 = grad_relu1 * (relu1 > 0)
        grad_w1, _ = writeup004_conv_backward(padded1, grad_out1, self.kernels1, 1, 2)
        self.kernels2 -= learn_rate * grad_w2
        self.bias2 -= learn_rate * grad_out2.sum(axis=(1, 2))
        self.kernels1 -= learn_rate * grad_w1
        self.bias1 -= learn_rate * grad_out1.sum(axis=(1, 2))
