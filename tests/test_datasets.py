import functools
import gzip
import hashlib
import http.server
import pickle
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from fastcnn import datasets

NAMES = datasets.FILE_NAMES
REAL_DEBIAN_DIR = datasets.DEBIAN_DIR / "fashion-mnist"


def write_set(directory, n_train, n_test, seed=0, gzipped=True):
    """Write a small random data set with the official file names; return its arrays."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train_labels": np.arange(n_train) % 10,
        "test_images": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "test_labels": np.arange(n_test)[::-1] % 10,
    }
    for role, array in arrays.items():
        name = NAMES[role] if gzipped else NAMES[role][: -len(".gz")]
        datasets.write_idx(directory / name, array)
    return arrays


def idx_bytes(array, magic=None):
    """The plain IDX encoding of a uint8 array, optionally with another magic number."""
    if magic is None:
        magic = 0x0800 | array.ndim
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """A machine with no FASTCNN_DATA, an empty Debian folder and an empty cache."""
    monkeypatch.delenv("FASTCNN_DATA", raising=False)
    monkeypatch.delenv("FASTCNN_DATA_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets, "DEBIAN_DIR", tmp_path / "debian")
    return tmp_path


# --------------------------------------------------------------------------- IDX files


@pytest.mark.parametrize("suffix", [".gz", ""], ids=["gzip", "plain"])
@pytest.mark.parametrize("shape", [(0,), (7,), (5, 28, 28), (3, 4, 2)], ids=str)
def test_idx_round_trip(tmp_path, suffix, shape, rng):
    array = rng.integers(0, 256, shape, dtype=np.uint8)
    path = tmp_path / f"data.idx{suffix}"
    datasets.write_idx(path, array)

    assert (path.read_bytes()[:2] == b"\x1f\x8b") == (suffix == ".gz")
    loaded = datasets.read_idx(path)
    assert loaded.dtype == np.uint8
    assert loaded.flags.writeable
    np.testing.assert_array_equal(loaded, array)


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    datasets.write_idx(tmp_path / "gzipped.gz", labels)
    (tmp_path / "gzipped.gz").rename(tmp_path / "gzipped.idx")
    (tmp_path / "plain.gz").write_bytes(idx_bytes(labels))

    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "gzipped.idx"), labels)
    np.testing.assert_array_equal(datasets.read_idx(tmp_path / "plain.gz"), labels)


def test_write_idx_is_reproducible_and_accepts_int64_labels(tmp_path):
    labels = np.arange(10, dtype=np.int64)
    datasets.write_idx(tmp_path / "a.gz", labels)
    datasets.write_idx(tmp_path / "b.gz", labels)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()
    assert datasets.read_idx(tmp_path / "a.gz").dtype == np.uint8


@pytest.mark.parametrize(
    "array, error, match",
    [
        (np.zeros(3, np.float32), TypeError, "integers in 0..255, got dtype float32"),
        (np.array([0, 256]), ValueError, "values from 0 to 256"),
        (np.array([-1, 3]), ValueError, "values from -1 to 3"),
        (np.zeros((2, 3), np.uint8), ValueError, r"got an array of shape \(2, 3\)"),
    ],
    ids=["float", "too-large", "negative", "2-D"],
)
def test_write_idx_rejects(tmp_path, array, error, match):
    with pytest.raises(error, match=match):
        datasets.write_idx(tmp_path / "bad.idx", array)


IMAGES = np.arange(2 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(2, 28, 28)
BAD_FILES = {
    "empty": (b"", "fewer than the 4-byte magic number"),
    "wrong-magic": (
        b"\x12\x34" + idx_bytes(IMAGES)[2:],
        "not an IDX file: its magic number 0x12340803",
    ),
    "float32": (idx_bytes(IMAGES, magic=0x0D03), r"float32 data \(magic number 0x00000D03"),
    "2-D": (idx_bytes(IMAGES.reshape(2, 784), magic=0x0802), "2-D data"),
    "truncated-header": (idx_bytes(IMAGES)[:10], "ends inside the header"),
    "truncated-data": (
        idx_bytes(IMAGES)[:-1],
        "truncated: its header announces 2 x 28 x 28 = 1,568 bytes of data, but only 1,567",
    ),
    "trailing-bytes": (idx_bytes(IMAGES) + b"\0\0\0", "has 3 trailing bytes after the 1,568 bytes"),
}


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("content, match", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_read_idx_rejects_bad_files(tmp_path, content, match, compress):
    path = tmp_path / "bad-file"
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(ValueError, match=match) as raised:
        datasets.read_idx(path)
    assert str(path) in str(raised.value)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    path = tmp_path / "images.gz"
    path.write_bytes(gzip.compress(idx_bytes(IMAGES))[:-20])
    with pytest.raises(ValueError, match="images.gz is a truncated or damaged gzip file"):
        datasets.read_idx(path)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        datasets.read_idx(tmp_path / "nothing.idx")


# --------------------------------------------------------------------------- loaders


def test_loads_a_folder(tmp_path):
    arrays = write_set(tmp_path / "set", 30, 20)
    data = datasets.fashion_mnist(tmp_path / "set")
    (x_train, y_train), (x_test, y_test) = data

    assert x_train.dtype == np.uint8 and x_train.shape == (30, 28, 28)
    assert y_train.dtype == np.int64 and y_train.shape == (30,)
    np.testing.assert_array_equal(x_test, arrays["test_images"])
    np.testing.assert_array_equal(y_test, arrays["test_labels"])
    assert data.source.kind == "path"
    assert not data.source.is_sample
    assert str(data.source) == f"Fashion-MNIST from {tmp_path / 'set'} (30 train / 20 test)"


def test_loads_decompressed_files(tmp_path):
    write_set(tmp_path, 10, 10, gzipped=False)
    (x_train, _), _ = datasets.mnist(tmp_path)
    assert x_train.shape == (10, 28, 28)


def test_loaded_data_pickles():
    data = datasets.fashion_mnist(datasets.SAMPLE_DIR)
    copy = pickle.loads(pickle.dumps(data))
    assert copy.source == data.source
    np.testing.assert_array_equal(copy[0][1], data[0][1])


def test_count_mismatch(tmp_path):
    write_set(tmp_path, 20, 10)
    datasets.write_idx(tmp_path / NAMES["train_labels"], np.arange(19) % 10)
    match = "train-images-idx3-ubyte.gz holds 20 images but .*train-labels-idx1-ubyte.gz holds 19"
    with pytest.raises(ValueError, match=match):
        datasets.fashion_mnist(tmp_path)


def test_images_and_labels_swapped(tmp_path):
    write_set(tmp_path, 20, 10)
    (tmp_path / NAMES["test_images"]).replace(tmp_path / "swap")
    (tmp_path / NAMES["test_labels"]).replace(tmp_path / NAMES["test_images"])
    (tmp_path / "swap").replace(tmp_path / NAMES["test_labels"])
    match = r"t10k-images-idx3-ubyte.gz should hold 28 x 28 images .* shape \(10,\)"
    with pytest.raises(ValueError, match=match):
        datasets.fashion_mnist(tmp_path)


def test_wrong_image_size(tmp_path):
    write_set(tmp_path, 20, 10)
    datasets.write_idx(tmp_path / NAMES["test_images"], np.zeros((10, 32, 32), np.uint8))
    with pytest.raises(ValueError, match=r"shape \(10, 32, 32\)"):
        datasets.fashion_mnist(tmp_path)


def test_label_out_of_range(tmp_path):
    write_set(tmp_path, 20, 10)
    datasets.write_idx(tmp_path / NAMES["test_labels"], np.full(10, 10))
    with pytest.raises(ValueError, match="holds label 10; labels must be 0..9"):
        datasets.fashion_mnist(tmp_path)


def test_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder .*nowhere does not exist"):
        datasets.fashion_mnist(tmp_path / "nowhere")


def test_missing_file(tmp_path):
    write_set(tmp_path, 20, 10)
    (tmp_path / NAMES["test_labels"]).unlink()
    match = "lacks Fashion-MNIST file.* t10k-labels-idx1-ubyte.gz"
    with pytest.raises(FileNotFoundError, match=match):
        datasets.fashion_mnist(tmp_path)


def test_mnist_not_found_says_how_to_get_it(machine):
    match = "MNIST was not found.*download=True.*path=.*FASTCNN_DATA/mnist"
    with pytest.raises(FileNotFoundError, match=match):
        datasets.mnist()


def test_fastcnn_data_must_be_a_folder(machine, monkeypatch):
    monkeypatch.setenv("FASTCNN_DATA", str(machine / "typo"))
    match = "FASTCNN_DATA is set to .*typo, which is not a folder"
    with pytest.raises(FileNotFoundError, match=match):
        datasets.fashion_mnist()


def test_lookup_order(machine, monkeypatch):
    explicit = machine / "explicit"
    write_set(explicit, 11, 10)
    write_set(machine / "data" / "fashion-mnist", 12, 10)
    write_set(machine / "debian" / "fashion-mnist", 13, 10)
    write_set(machine / "cache" / "fastcnn" / "fashion-mnist", 14, 10)
    monkeypatch.setenv("FASTCNN_DATA", str(machine / "data"))

    def source():
        data = datasets.fashion_mnist()
        return data.source.kind, data.source.train_size

    data = datasets.fashion_mnist(explicit)
    assert (data.source.kind, data.source.train_size) == ("path", 11)
    assert source() == ("FASTCNN_DATA", 12)
    monkeypatch.delenv("FASTCNN_DATA")
    assert source() == ("debian", 13)
    monkeypatch.setattr(datasets, "DEBIAN_DIR", machine / "no-debian")
    assert source() == ("cache", 14)
    monkeypatch.setenv("XDG_CACHE_HOME", str(machine / "empty-cache"))
    assert source() == ("sample", 2000)


def test_fastcnn_data_without_this_data_set_falls_through(machine, monkeypatch):
    write_set(machine / "data" / "mnist", 12, 10)
    write_set(machine / "debian" / "fashion-mnist", 13, 10)
    monkeypatch.setenv("FASTCNN_DATA", str(machine / "data"))
    assert datasets.fashion_mnist().source.kind == "debian"
    assert datasets.mnist().source.kind == "FASTCNN_DATA"


def test_incomplete_folder_is_skipped(machine):
    write_set(machine / "debian" / "fashion-mnist", 13, 10)
    (machine / "debian" / "fashion-mnist" / NAMES["train_images"]).unlink()
    assert datasets.fashion_mnist().source.kind == "sample"


def test_mnist_has_no_debian_or_sample(machine):
    write_set(machine / "debian" / "mnist", 13, 10)
    write_set(machine / "cache" / "fastcnn" / "mnist", 14, 10)
    assert datasets.mnist().source.kind == "cache"


# --------------------------------------------------------------------------- the sample


def test_shipped_sample(machine):
    data = datasets.fashion_mnist()
    (x_train, y_train), (x_test, y_test) = data

    assert data.source.is_sample
    assert str(data.source) == (
        "the 2,000-image Fashion-MNIST sample shipped with fastcnn (2,000 train / 500 test)"
    )
    assert x_train.shape == (2000, 28, 28) and x_test.shape == (500, 28, 28)
    assert x_train.dtype == x_test.dtype == np.uint8
    assert y_train.dtype == y_test.dtype == np.int64
    assert np.bincount(y_train).tolist() == [200] * 10
    assert np.bincount(y_test).tolist() == [50] * 10
    assert 60 < x_train.mean() < 90  # real clothes on black, not noise or blanks


def test_shipped_sample_size_and_licence():
    files = list(datasets.SAMPLE_DIR.iterdir())
    assert sum(file.stat().st_size for file in files) <= 1_500_000
    licence = (datasets.SAMPLE_DIR / "LICENSE").read_text(encoding="utf-8")
    assert "MIT License" in licence and "Zalando SE" in licence
    readme = (datasets.SAMPLE_DIR / "README.md").read_text(encoding="utf-8")
    assert "Han Xiao, Kashif Rasul, Roland Vollgraf" in readme


def test_class_names():
    assert len(datasets.FASHION_MNIST_CLASSES) == 10
    assert datasets.FASHION_MNIST_CLASSES[0] == "T-shirt/top"
    assert datasets.FASHION_MNIST_CLASSES[9] == "Ankle boot"


@pytest.mark.skipif(
    not all((REAL_DEBIAN_DIR / name).is_file() for name in NAMES.values()),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_real_fashion_mnist_from_debian(monkeypatch):
    monkeypatch.delenv("FASTCNN_DATA", raising=False)
    data = datasets.fashion_mnist()
    (x_train, y_train), (x_test, y_test) = data

    assert data.source.kind == "debian"
    assert str(data.source) == (
        f"Fashion-MNIST from {REAL_DEBIAN_DIR} (60,000 train / 10,000 test)"
    )
    assert x_train.shape == (60_000, 28, 28) and x_test.shape == (10_000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10
    # The shipped sample is the first 200 (train) and 50 (test) images of each class.
    sample_train, sample_test = datasets.fashion_mnist(datasets.SAMPLE_DIR)
    for images, labels, (sample_images, sample_labels), per_class in [
        (x_train, y_train, sample_train, 200),
        (x_test, y_test, sample_test, 50),
    ]:
        firsts = [np.flatnonzero(labels == label)[:per_class] for label in range(10)]
        chosen = np.sort(np.concatenate(firsts))
        np.testing.assert_array_equal(sample_images, images[chosen])
        np.testing.assert_array_equal(sample_labels, labels[chosen])


# --------------------------------------------------------------------------- one_hot


def test_one_hot():
    encoded = datasets.one_hot(np.array([2, 0, 1]))
    assert encoded.dtype == np.float32
    np.testing.assert_array_equal(encoded, [[0, 0, 1], [1, 0, 0], [0, 1, 0]])


def test_one_hot_options():
    encoded = datasets.one_hot([[3], [1]], num_classes=10, dtype=np.float64)
    assert encoded.shape == (2, 1, 10) and encoded.dtype == np.float64
    assert encoded[0, 0, 3] == 1 and encoded.sum() == 2


@pytest.mark.parametrize(
    "labels, num_classes, error, match",
    [
        ([0.0, 1.0], None, TypeError, "integer labels, got dtype float64"),
        ([0, 10], 10, ValueError, "must lie in 0..9 for 10 classes, got values from 0 to 10"),
        ([-1, 2], None, ValueError, "got values from -1 to 2"),
        ([1], 0, ValueError, "num_classes must be a positive int, got 0"),
        (np.array([], np.int64), None, ValueError, "cannot infer num_classes"),
    ],
    ids=["float", "too-large", "negative", "zero-classes", "empty"],
)
def test_one_hot_rejects(labels, num_classes, error, match):
    with pytest.raises(error, match=match):
        datasets.one_hot(labels, num_classes)


# --------------------------------------------------------------------------- download


class Server:
    """A local HTTP server on 127.0.0.1 serving a folder, recording the paths asked for."""

    def __init__(self, root):
        self.requests = []
        requests = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, format, *args):
                requests.append(self.path)

        handler = functools.partial(Handler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server(machine, monkeypatch):
    """Serves fashion-mnist/ and mnist/ test sets; the loaders trust their SHA-256."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    root = machine / "served"
    for folder, hashes in [
        ("fashion-mnist", datasets.FASHION_MNIST_SHA256),
        ("mnist", datasets.MNIST_SHA256),
    ]:
        write_set(root / folder, 15, 10, seed=len(folder))
        for name in NAMES.values():
            digest = hashlib.sha256((root / folder / name).read_bytes()).hexdigest()
            monkeypatch.setitem(hashes, name, digest)
    server = Server(root)
    monkeypatch.setattr(datasets, "FASHION_MNIST_URL", server.url + "fashion-mnist/")
    yield server
    server.close()


def cache_listing(machine, folder):
    directory = machine / "cache" / "fastcnn" / folder
    return sorted(path.name for path in directory.iterdir()) if directory.exists() else []


def test_download(machine, server):
    data = datasets.fashion_mnist(download=True)

    assert data.source.kind == "download"
    assert data.source.train_size == 15
    assert cache_listing(machine, "fashion-mnist") == sorted(NAMES.values())
    assert sorted(server.requests) == sorted(f"/fashion-mnist/{name}" for name in NAMES.values())

    again = datasets.fashion_mnist(download=True)
    assert again.source.kind == "cache"
    assert len(server.requests) == 4
    np.testing.assert_array_equal(again[0][0], data[0][0])


def test_download_fetches_only_missing_files(machine, server):
    datasets.fashion_mnist(download=True)
    (machine / "cache" / "fastcnn" / "fashion-mnist" / NAMES["test_labels"]).unlink()
    assert datasets.fashion_mnist(download=True).source.kind == "download"
    assert server.requests[4:] == [f"/fashion-mnist/{NAMES['test_labels']}"]


def test_download_not_needed_when_found(machine, server):
    write_set(machine / "debian" / "fashion-mnist", 13, 10)
    assert datasets.fashion_mnist(download=True).source.kind == "debian"
    assert server.requests == []


def test_corrupted_download_is_rejected_and_not_cached(machine, server):
    served = machine / "served" / "fashion-mnist" / NAMES["train_images"]
    content = bytearray(served.read_bytes())
    content[100] ^= 0xFF
    served.write_bytes(bytes(content))

    match = "train-images-idx3-ubyte.gz is not the official one .*it was discarded"
    with pytest.raises(ValueError, match=match):
        datasets.fashion_mnist(download=True)
    assert NAMES["train_images"] not in cache_listing(machine, "fashion-mnist")
    assert not any(name.endswith(".part") for name in cache_listing(machine, "fashion-mnist"))
    assert datasets.fashion_mnist().source.kind == "sample"


def test_download_from_mirror_named_by_environment(machine, server, monkeypatch):
    monkeypatch.setenv("FASTCNN_DATA_URL", server.url.rstrip("/"))
    data = datasets.mnist(download=True)
    assert data.source.kind == "download"
    cache = machine / "cache" / "fastcnn" / "mnist"
    assert str(data.source) == f"MNIST from {cache} (15 train / 10 test)"
    assert all(path.startswith("/mnist/") for path in server.requests)


def test_download_missing_file_on_server(machine, server):
    (machine / "served" / "fashion-mnist" / NAMES["test_images"]).unlink()
    with pytest.raises(OSError, match="could not download .*t10k-images-idx3-ubyte.gz: HTTP 404"):
        datasets.fashion_mnist(download=True)
    assert not any(name.endswith(".part") for name in cache_listing(machine, "fashion-mnist"))


def test_download_refuses_plain_http_to_other_machines(machine, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_URL", "http://fashion-mnist.example.com/")
    with pytest.raises(ValueError, match="only https:// URLs"):
        datasets.fashion_mnist(download=True)


def test_official_sources_use_https_and_sha256():
    for url, hashes in [
        (datasets.FASHION_MNIST_URL, datasets.FASHION_MNIST_SHA256),
        (datasets.MNIST_URL, datasets.MNIST_SHA256),
    ]:
        assert url.startswith("https://") and url.endswith("/")
        assert sorted(hashes) == sorted(NAMES.values())
        assert all(len(digest) == 64 and int(digest, 16) >= 0 for digest in hashes.values())
