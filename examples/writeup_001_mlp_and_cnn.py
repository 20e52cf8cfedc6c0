"""Write-up 001's two networks, with fastcnn: the tanh MLP 100-50-10 and the strided
conv net (conv 3x3x5, stride 2, padding 1 -> tanh -> max-pool 2 -> 100 -> 50 -> 10).

The write-up trains them one sample at a time with MSE on tanh and softmax outputs
(its softmax derivative is wrong, and its MLP ends at 5 % accuracy). Here the same
layers end in logits and train with the fused softmax cross-entropy, on mini-batches.

    python examples/writeup_001_mlp_and_cnn.py [--fast]
"""

import time

import numpy as np

from fastcnn import Convolutional, Dense, Flatten, MaxPool2D, Network, Tanh
from fastcnn.models import PRESETS

from _data import load_images, parse_args


def mlp():
    return Network(PRESETS["mlp"].layers())


def conv_net():
    return Network(
        [
            Convolutional(5, 3, stride=2, padding=1),
            Tanh(),
            MaxPool2D(2),
            Flatten(),
            Dense(100),
            Tanh(),
            Dense(50),
            Tanh(),
            Dense(10),
        ]
    )


def main():
    args = parse_args(__doc__)
    train_count, test_count, epochs = (600, 200, 3) if args.fast else (4000, 1000, 30)
    data = load_images(args.fast, train_count, test_count, args.seed)
    (x_train, y_train), (x_test, y_test) = data
    x_train = x_train[:, None] / np.float32(255)
    x_test = x_test[:, None] / np.float32(255)

    for name, network in [("MLP 100-50-10", mlp()), ("conv net", conv_net())]:
        network.use("softmax_cross_entropy")
        started = time.perf_counter()
        network.fit(x_train, y_train, epochs=epochs, learning_rate=0.1, verbose=0, seed=args.seed)
        seconds = time.perf_counter() - started
        scores = network.evaluate(x_test, y_test)
        print(
            f"{name}: {epochs} epochs in {seconds:.1f}s, test accuracy {scores['accuracy']:.3f}, "
            f"macro-F1 {scores['macro_f1']:.3f}"
        )


if __name__ == "__main__":
    main()
