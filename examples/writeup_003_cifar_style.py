"""Write-up 003's network, with fastcnn: conv 5x5x10 pad 2 -> ReLU -> max-pool 2 ->
conv 5x5x20 pad 2 -> ReLU -> max-pool 2 -> dense 100 (ReLU, dropout 0.5) -> 10,
cross-entropy and an L2 penalty of 0.001, on 3 x 32 x 32 images.

The write-up hand-writes im2col and every backward pass for one full-batch step on
1,000 CIFAR-10 images. CIFAR-10 does not come with fastcnn, so this script feeds the
same shapes from Fashion-MNIST (padded to 32 x 32, repeated over 3 channels); the
penalty is SGD's weight_decay, and dropout acts on the hidden activations (the
write-up masks the weights).

    python examples/writeup_003_cifar_style.py [--fast]
"""

import time

import numpy as np

from fastcnn import SGD, Convolutional, Dense, Dropout, Flatten, MaxPool2D, Network, ReLU

from _data import load_images, parse_args


def as_color_32x32(images):
    """(N, 28, 28) uint8 -> (N, 3, 32, 32) float32 in [0, 1], minus the mean image."""
    padded = np.pad(images, ((0, 0), (2, 2), (2, 2))) / np.float32(255)
    color = np.repeat(padded[:, None], 3, axis=1)
    return color - color.mean(axis=0)


def main():
    args = parse_args(__doc__)
    train_count, test_count, epochs = (300, 100, 2) if args.fast else (5_000, 1_000, 5)
    data = load_images(args.fast, train_count, test_count, args.seed)
    (x_train, y_train), (x_test, y_test) = data
    x_train, x_test = as_color_32x32(x_train), as_color_32x32(x_test)

    network = Network(
        [
            Convolutional(10, 5, padding=2),
            ReLU(),
            MaxPool2D(2),
            Convolutional(20, 5, padding=2),
            ReLU(),
            MaxPool2D(2),
            Flatten(),
            Dense(100),
            ReLU(),
            Dropout(0.5),
            Dense(10),
        ]
    ).use("softmax_cross_entropy")
    network.summary(input_shape=(3, 32, 32))
    started = time.perf_counter()
    network.fit(
        x_train, y_train, epochs=epochs, learning_rate=0.01, batch_size=32,
        optimizer=SGD(momentum=0.9, weight_decay=0.001),
        validation_data=(x_test, y_test), seed=args.seed,
    )
    print(f"{train_count} images x {epochs} epochs in {time.perf_counter() - started:.1f}s")
    scores = network.evaluate(x_test, y_test)
    print(
        f"test loss {scores['loss']:.4f}, accuracy {scores['accuracy']:.3f}, "
        f"macro-F1 {scores['macro_f1']:.3f}"
    )


if __name__ == "__main__":
    main()
