"""Rebuild the Fashion-MNIST sample shipped with fastcnn (fashion-mnist-sample/).

The sample is the first 200 training and the first 50 test images of each class, in
the order of the official files (which are already shuffled), so it is balanced and
the same every time. Run it with the folder of the full data set, for example Debian's:

    python python/fastcnn/data/make_sample.py /usr/share/datasets/fashion-mnist
"""

import argparse
import importlib.util
from pathlib import Path

import numpy as np

TRAIN_PER_CLASS = 200
TEST_PER_CLASS = 50
HERE = Path(__file__).resolve().parent


def load_datasets_module():
    # By path rather than `import fastcnn`, so that the sample can be rebuilt from a
    # source checkout without building the compiled module.
    spec = importlib.util.spec_from_file_location("fastcnn_datasets", HERE.parent / "datasets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def first_per_class(labels, per_class):
    """Indices of the first ``per_class`` images of each class, in file order."""
    chosen = np.concatenate([np.flatnonzero(labels == label)[:per_class] for label in range(10)])
    if len(chosen) != 10 * per_class:
        raise ValueError(f"the source has fewer than {per_class} images of some class")
    return np.sort(chosen)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="folder holding the full Fashion-MNIST files")
    parser.add_argument("--out", type=Path, default=HERE / "fashion-mnist-sample")
    args = parser.parse_args()

    datasets = load_datasets_module()
    (x_train, y_train), (x_test, y_test) = datasets.fashion_mnist(path=args.source)
    if (len(x_train), len(x_test)) != (60_000, 10_000):
        raise SystemExit(f"{args.source} is not the full Fashion-MNIST (60,000 + 10,000 images)")

    train = first_per_class(y_train, TRAIN_PER_CLASS)
    test = first_per_class(y_test, TEST_PER_CLASS)
    args.out.mkdir(parents=True, exist_ok=True)
    names = datasets.FILE_NAMES
    datasets.write_idx(args.out / names["train_images"], x_train[train])
    datasets.write_idx(args.out / names["train_labels"], y_train[train])
    datasets.write_idx(args.out / names["test_images"], x_test[test])
    datasets.write_idx(args.out / names["test_labels"], y_test[test])
    total = sum(path.stat().st_size for path in args.out.glob("*.gz"))
    print(f"wrote {len(train):,} train + {len(test):,} test images ({total:,} bytes) to {args.out}")


if __name__ == "__main__":
    main()
