"""fastcnn.datasets.cifar10: the binary release's record layout, lookup order, bad files
refused naming the file, and a verified download (from a local server)."""

import functools
import hashlib
import http.server
import io
import pickle
import tarfile
import threading

import numpy as np
import pytest

from fastcnn import datasets

BATCHES = (*datasets.CIFAR10_TRAIN_FILES, datasets.CIFAR10_TEST_FILE)
META = "".join(f"{name}\n" for name in datasets.CIFAR10_CLASSES) + "\n"


def record_bytes(images, labels):
    """The binary format, written independently of the reader: per record one label byte,
    then the R, G and B planes, each 32 rows of 32 bytes."""
    out = bytearray()
    for image, label in zip(images, labels):
        out.append(int(label))
        for channel in range(3):
            for row in range(32):
                out.extend(bytes(int(v) for v in image[channel, row]))
    return bytes(out)


def write_cifar(directory, counts=(3, 2, 4, 1, 2, 3), seed=0, meta=META):
    """Small batch files (counts records each, test last); returns the arrays."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = []
    for name, count in zip(BATCHES, counts):
        images = rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
        labels = rng.integers(0, 10, count)
        (directory / name).write_bytes(record_bytes(images, labels))
        arrays.append((images, labels))
    if meta is not None:
        (directory / datasets.CIFAR10_META_FILE).write_text(meta)
    return arrays


@pytest.fixture
def machine(tmp_path, monkeypatch):
    """No FASTCNN_DATA, an empty cache."""
    monkeypatch.delenv("FASTCNN_DATA", raising=False)
    monkeypatch.delenv("FASTCNN_DATA_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path


def test_loads_the_records_as_rgb_planes(machine):
    arrays = write_cifar(machine / "cifar")
    data = datasets.cifar10(machine / "cifar")
    (x_train, y_train), (x_test, y_test) = data
    assert x_train.shape == (12, 3, 32, 32) and x_train.dtype == np.uint8
    assert y_train.shape == (12,) and y_train.dtype == np.int64
    np.testing.assert_array_equal(x_train, np.concatenate([a[0] for a in arrays[:5]]))
    np.testing.assert_array_equal(y_train, np.concatenate([a[1] for a in arrays[:5]]))
    np.testing.assert_array_equal(x_test, arrays[5][0])
    np.testing.assert_array_equal(y_test, arrays[5][1])
    assert data.classes == datasets.CIFAR10_CLASSES
    assert data.source.kind == "path" and data.source.train_size == 12
    assert "CIFAR-10" in str(data.source)
    assert pickle.loads(pickle.dumps(data)).classes == data.classes


def test_a_known_record_lands_in_the_right_channel_row_and_column(machine):
    folder = machine / "cifar"
    write_cifar(folder)
    record = bytearray(3073)
    record[0] = 7
    record[1 + 0 * 1024 + 0 * 32 + 1] = 11  # R, row 0, column 1
    record[1 + 1 * 1024 + 2 * 32 + 0] = 22  # G, row 2, column 0
    record[1 + 2 * 1024 + 31 * 32 + 31] = 33  # B, row 31, column 31
    (folder / datasets.CIFAR10_TEST_FILE).write_bytes(bytes(record))
    (x_test, y_test) = datasets.cifar10(folder)[1]
    assert y_test.tolist() == [7]
    assert x_test[0, 0, 0, 1] == 11 and x_test[0, 1, 2, 0] == 22 and x_test[0, 2, 31, 31] == 33
    assert int(x_test.sum()) == 66


def test_the_archives_own_folder_is_accepted(machine):
    write_cifar(machine / "unpacked" / "cifar-10-batches-bin")
    data = datasets.cifar10(machine / "unpacked")
    assert data.source.directory == machine / "unpacked" / "cifar-10-batches-bin"


def test_class_names_come_from_the_meta_file_when_present(machine):
    names = [f"class {i}" for i in range(10)]
    write_cifar(machine / "cifar", meta="\n".join(names) + "\n\n")
    assert datasets.cifar10(machine / "cifar").classes == tuple(names)
    write_cifar(machine / "bare", meta=None)
    assert datasets.cifar10(machine / "bare").classes == datasets.CIFAR10_CLASSES


@pytest.mark.parametrize(
    "name, content, match",
    [
        ("data_batch_3.bin", lambda b: b[:-1], r"data_batch_3\.bin holds 9,218 bytes"),
        ("test_batch.bin", lambda b: b + b"\0" * 10, r"test_batch\.bin holds 9,229 bytes"),
        ("data_batch_1.bin", lambda b: b"", r"data_batch_1\.bin holds 0 bytes.*truncated, empty"),
        ("data_batch_2.bin", lambda b: bytes([12]) + b[1:], r"data_batch_2\.bin holds label 12 in record 0"),
        ("batches.meta.txt", lambda b: b"cat\ndog\n", r"batches\.meta\.txt should name the 10 classes"),
        ("batches.meta.txt", lambda b: b"\xff\xfe", r"batches\.meta\.txt is not a text file"),
    ],
    ids=["truncated", "extra-bytes", "empty", "label-out-of-range", "meta-count", "meta-binary"],
)
def test_bad_files_are_refused_naming_the_file(machine, name, content, match):
    folder = machine / "cifar"
    write_cifar(folder, counts=(3,) * 6)
    path = folder / name
    path.write_bytes(content(path.read_bytes()))
    with pytest.raises(ValueError, match=match):
        datasets.cifar10(folder)


def test_missing_folder_and_files_say_what_is_expected(machine):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        datasets.cifar10(machine / "nowhere")
    write_cifar(machine / "cifar")
    (machine / "cifar" / "data_batch_4.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks CIFAR-10 file\(s\) data_batch_4\.bin"):
        datasets.cifar10(machine / "cifar")


def test_not_found_says_how_to_get_it(machine):
    with pytest.raises(FileNotFoundError, match=r"download=True.*cifar-10-binary\.tar\.gz"):
        datasets.cifar10()


def test_lookup_order_fastcnn_data_then_cache(machine, monkeypatch):
    cache = machine / "cache" / "fastcnn" / "cifar-10"
    write_cifar(cache, seed=1)
    assert datasets.cifar10().source.kind == "cache"
    write_cifar(machine / "data" / "cifar-10", seed=2)
    monkeypatch.setenv("FASTCNN_DATA", str(machine / "data"))
    assert datasets.cifar10().source.kind == "FASTCNN_DATA"
    write_cifar(machine / "mine", seed=3)
    assert datasets.cifar10(machine / "mine").source.kind == "path"


# --------------------------------------------------------------------------- download


def archive_bytes(folder):
    """cifar-10-binary.tar.gz as released: the files under cifar-10-batches-bin/, plus a
    file the loader must not unpack."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=f"cifar-10-batches-bin/{path.name}")
        extra = tarfile.TarInfo("cifar-10-batches-bin/readme.html")
        extra.size = 5
        tar.addfile(extra, io.BytesIO(b"hello"))
    return buffer.getvalue()


@pytest.fixture
def server(machine, monkeypatch):
    """A local HTTP server with cifar-10/cifar-10-binary.tar.gz; the loader trusts its hash."""
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    arrays = write_cifar(machine / "source", seed=4)
    served = machine / "served" / "cifar-10"
    served.mkdir(parents=True)
    content = archive_bytes(machine / "source")
    (served / datasets.CIFAR10_ARCHIVE).write_bytes(content)
    monkeypatch.setattr(datasets, "CIFAR10_SHA256", hashlib.sha256(content).hexdigest())
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            pass

    handler = functools.partial(Quiet, directory=str(machine / "served"))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01},
                              daemon=True)
    thread.start()
    monkeypatch.setenv("FASTCNN_DATA_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    yield arrays
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_download_verifies_and_unpacks_only_the_data_files(machine, server):
    data = datasets.cifar10(download=True)
    assert data.source.kind == "download"
    np.testing.assert_array_equal(data[1][0], server[5][0])
    cache = machine / "cache" / "fastcnn" / "cifar-10"
    assert sorted(p.name for p in cache.iterdir()) == sorted((*BATCHES, "batches.meta.txt"))
    assert datasets.cifar10().source.kind == "cache"


def test_a_download_with_the_wrong_checksum_is_discarded(machine, server, monkeypatch):
    monkeypatch.setattr(datasets, "CIFAR10_SHA256", "0" * 64)
    with pytest.raises(ValueError, match="not the official one"):
        datasets.cifar10(download=True)
    cache = machine / "cache" / "fastcnn" / "cifar-10"
    assert list(cache.iterdir()) == []


def test_official_source_is_https_and_the_checksum_a_sha256():
    assert datasets.CIFAR10_URL.startswith("https://www.cs.toronto.edu/")
    assert len(datasets.CIFAR10_SHA256) == 64
    int(datasets.CIFAR10_SHA256, 16)
