"""Write-up 002's script as published, with only its imports changed to fastcnn.compat:
the same classes, the same one-sample-at-a-time ``train``, the same column vectors.
(The write-up loads MNIST through Keras; this uses fastcnn.datasets' Fashion-MNIST.)

For mini-batches and the speed that comes with them, see writeup_002_conv_sigmoid.py,
the same network written with fastcnn's own API.

    python examples/writeup_002_compat_port.py [--fast]
"""

import time

import numpy as np

from fastcnn.compat import (
    Convolutional,
    Dense,
    Reshape,
    Sigmoid,
    Tanh,
    binary_cross_entropy,
    binary_cross_entropy_prime,
    predict,
    train,
)

from _data import load_images, parse_args

args = parse_args(__doc__)
limit, test_limit, epochs = (100, 20, 2) if args.fast else (1000, 20, 15)
(x_train, y_train), (x_test, y_test) = load_images(args.fast, limit, test_limit, args.seed)


# -- from here on, the write-up's own code -------------------------------------------
def preprocess_data(x, y, limit):
    # reshape and normalize input data
    x = x.reshape(len(x), 1, 28, 28)
    x = x.astype("float32") / 255
    # encode output which is a number in range [0,9] into a vector of size 10
    # e.g. number 3 will become [0, 0, 0, 1, 0, 0, 0, 0, 0, 0]
    y = np.eye(10)[y]
    y = y.reshape(y.shape[0], 10, 1)
    return x[:limit], y[:limit]


x_train, y_train = preprocess_data(x_train, y_train, limit)
x_test, y_test = preprocess_data(x_test, y_test, test_limit)

network = [
    Convolutional((1, 28, 28), 3, 6),
    Sigmoid(),
    Reshape((6, 26, 26), (6 * 26 * 26, 1)),
    Dense(6 * 26 * 26, 100),
    Tanh(),
    Dense(100, 10),
    Sigmoid(),
]

started = time.perf_counter()
train(network, binary_cross_entropy, binary_cross_entropy_prime, x_train, y_train, epochs=epochs)
print(f"{len(x_train)} images x {epochs} epochs in {time.perf_counter() - started:.1f}s")

pred_test = [predict(network, input) for input in x_test]
error = 0.0
for y, y_hat in zip(y_test, pred_test):
    error += binary_cross_entropy(y, y_hat)
print("Total Average Error:", error / len(y_test))
