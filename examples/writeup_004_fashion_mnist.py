"""Write-up 004's network, with fastcnn: conv 5x5x6 same -> ReLU -> conv 5x5x6 same ->
ReLU -> max-pool 2 -> dense 10 (softmax), on Fashion-MNIST, reporting test accuracy
and macro-F1.

The write-up trains one image at a time (SGD, batch 1, learning rate 0.005) for 3
epochs over all 60,000 images and reaches test accuracy 0.891, macro-F1 0.890 (Keras,
same setup: about the same). Here the same layers train on mini-batches of 32; the
softmax sits in the fused loss, so the last layer gives logits.

    python examples/writeup_004_fashion_mnist.py [--fast]
"""

import time

import numpy as np

from fastcnn import Network
from fastcnn.models import PRESETS

from _data import load_images, parse_args


def main():
    args = parse_args(__doc__)
    train_count, test_count, epochs = (500, 200, 2) if args.fast else (60_000, 10_000, 3)
    data = load_images(args.fast, train_count, test_count, args.seed)
    (x_train, y_train), (x_test, y_test) = data
    # the write-up's scaling: [0, 255] -> [-0.5, 0.5]
    x_train = x_train[:, None] / np.float32(255) - np.float32(0.5)
    x_test = x_test[:, None] / np.float32(255) - np.float32(0.5)

    network = Network(PRESETS["simplecnn"].layers()).use("softmax_cross_entropy")
    network.summary(input_shape=(1, 28, 28))
    started = time.perf_counter()
    network.fit(x_train, y_train, epochs=epochs, learning_rate=0.05, batch_size=32, seed=args.seed)
    print(f"{train_count} images x {epochs} epochs in {time.perf_counter() - started:.1f}s")
    scores = network.evaluate(x_test, y_test)
    print(f"test accuracy {scores['accuracy']:.3f}, macro-F1 {scores['macro_f1']:.3f}")


if __name__ == "__main__":
    main()
