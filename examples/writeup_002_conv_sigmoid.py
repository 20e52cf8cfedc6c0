"""Write-up 002's network, with fastcnn: conv 3x3x6 -> sigmoid -> dense 100 -> tanh ->
dense 10 -> sigmoid, trained with binary cross-entropy on one-hot targets.

The write-up limits MNIST to 1,000 images "to avoid extreme training times"; here the
same network trains on ten times as many Fashion-MNIST images, on mini-batches. (Sigmoid
outputs under binary cross-entropy sit on a plateau for the first updates: the short
--fast run does not get past it.)

    python examples/writeup_002_conv_sigmoid.py [--fast]
"""

import time

import numpy as np

from fastcnn import Convolutional, Dense, Flatten, Network, Sigmoid, Tanh
from fastcnn.datasets import one_hot

from _data import load_images, parse_args


def main():
    args = parse_args(__doc__)
    train_count, test_count, epochs = (500, 200, 3) if args.fast else (10_000, 2_000, 15)
    data = load_images(args.fast, train_count, test_count, args.seed)
    (x_train, y_train), (x_test, y_test) = data
    x_train = x_train[:, None] / np.float32(255)
    x_test = x_test[:, None] / np.float32(255)

    network = Network(
        [
            Convolutional(6, 3),
            Sigmoid(),
            Flatten(),
            Dense(100),
            Tanh(),
            Dense(10),
            Sigmoid(),
        ]
    ).use("binary_cross_entropy")
    started = time.perf_counter()
    network.fit(
        x_train, one_hot(y_train, 10), epochs=epochs, learning_rate=0.5, batch_size=16,
        validation_data=(x_test, one_hot(y_test, 10)), seed=args.seed,
    )
    print(f"{train_count} images x {epochs} epochs in {time.perf_counter() - started:.1f}s")
    network.summary()
    scores = network.evaluate(x_test, one_hot(y_test, 10))
    print(
        f"test loss {scores['loss']:.4f}, accuracy {scores['accuracy']:.3f}, "
        f"macro-F1 {scores['macro_f1']:.3f}"
    )


if __name__ == "__main__":
    main()
