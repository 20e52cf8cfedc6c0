"""Image data sets: an IDX reader and writer, Fashion-MNIST and MNIST loaders, one-hot.

``fashion_mnist()`` and ``mnist()`` return ``(x_train, y_train), (x_test, y_test)``:
uint8 images of shape (N, 28, 28) and int64 labels of shape (N,); ``cifar10()`` returns
the same with colour images (N, 3, 32, 32) read from the binary release. The returned
pair also says where the data came from, in ``.source``::

    data = fastcnn.datasets.fashion_mnist()
    (x_train, y_train), (x_test, y_test) = data
    print(data.source)
    # Fashion-MNIST from /usr/share/datasets/fashion-mnist (60,000 train / 10,000 test)

Fashion-MNIST is looked for, in this order, in: the folder passed as ``path``;
``$FASTCNN_DATA/fashion-mnist``; Debian's ``dataset-fashion-mnist`` package
(/usr/share/datasets/fashion-mnist); the user cache (``$XDG_CACHE_HOME`` or ~/.cache,
then fastcnn/fashion-mnist); a download into that cache when ``download=True``;
and last the 2,000-image sample shipped with fastcnn, so that something always loads.
MNIST is looked for in the same places, except Debian's and the sample, which do not exist,
and so is CIFAR-10 (folder cifar-10).

Downloads use HTTPS and are checked against the SHA-256 of the official files before
they are kept; nothing else in this module touches the network. ``$FASTCNN_DATA_URL``
names a mirror to download from instead, holding fashion-mnist/ and mnist/ folders.
"""

import gzip
import hashlib
import http.client
import ipaddress
import math
import os
import shutil
import struct
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import _checks

__all__ = [
    "CIFAR10_CLASSES",
    "FASHION_MNIST_CLASSES",
    "DataSource",
    "LoadedData",
    "fashion_mnist",
    "mnist",
    "cifar10",
    "one_hot",
    "Rescaling",
    "WRITE_UPS_SCALING",
    "read_idx",
    "write_idx",
]

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Zalando Research's own copy of the files, in the data set's repository.
FASHION_MNIST_URL = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/"
)
# The mirror TensorFlow uses; yann.lecun.com serves the same files over plain HTTP only.
MNIST_URL = "https://storage.googleapis.com/cvdf-datasets/mnist/"

DEBIAN_DIR = Path("/usr/share/datasets")
SAMPLE_DIR = Path(__file__).resolve().parent / "data" / "fashion-mnist-sample"

# The role of each file and its name, as the data sets are distributed.
FILE_NAMES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}

# SHA-256 of the official gzipped files. Fashion-MNIST: the files whose MD5 sums the
# data set's README publishes (Debian's copies hold the same gzip streams, with the name
# and time taken out of the gzip header). MNIST: the files of LeCun's site and mirrors.
FASHION_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}

_GZIP_MAGIC = b"\x1f\x8b"
_IDX_UNSIGNED_BYTE = 0x08
_IDX_TYPE_NAMES = {
    0x09: "signed byte",
    0x0B: "int16",
    0x0C: "int32",
    0x0D: "float32",
    0x0E: "float64",
}
_IDX_NDIMS = (1, 3)  # labels and images
_DOWNLOAD_CHUNK = 1 << 20


# --------------------------------------------------------------------------- IDX files


def read_idx(path):
    """Read an IDX file of unsigned bytes, gzipped or not, into a uint8 array.

    Labels files (magic 0x00000801) give shape (N,), images files (0x00000803) give
    (N, rows, cols). Gzip is recognised by the file's first bytes, not by its name.
    A file that is not such an IDX file, is truncated, or has bytes after the data
    its header announces raises ValueError naming the file and what is wrong.
    """
    path = Path(path)
    with open(path, "rb") as file:
        content = file.read()
    if content[:2] == _GZIP_MAGIC:
        try:
            content = gzip.decompress(content)
        except (EOFError, OSError, zlib.error) as error:
            raise ValueError(
                f"{path} is a truncated or damaged gzip file ({error})"
            ) from None

    if len(content) < 4:
        raise ValueError(
            f"{path} is not an IDX file: it holds {len(content)} bytes, "
            "fewer than the 4-byte magic number"
        )
    zeros, type_code, ndim = struct.unpack(">HBB", content[:4])
    magic = f"0x{int.from_bytes(content[:4], 'big'):08X}"
    if zeros != 0:
        raise ValueError(
            f"{path} is not an IDX file: its magic number {magic} does not start "
            "with two zero bytes"
        )
    if type_code != _IDX_UNSIGNED_BYTE:
        type_name = _IDX_TYPE_NAMES.get(type_code, "an unknown type")
        raise ValueError(
            f"{path} holds {type_name} data (magic number {magic}, type code "
            f"0x{type_code:02X}); only unsigned bytes (0x08) are supported"
        )
    if ndim not in _IDX_NDIMS:
        raise ValueError(
            f"{path} holds {ndim}-D data (magic number {magic}); expected labels "
            "(0x00000801, 1-D) or images (0x00000803, 3-D)"
        )

    header_size = 4 + 4 * ndim
    if len(content) < header_size:
        raise ValueError(
            f"{path} is truncated: it ends inside the header ({len(content)} of "
            f"{header_size} bytes)"
        )
    shape = struct.unpack(f">{ndim}I", content[4:header_size])
    expected = math.prod(shape)
    found = len(content) - header_size
    shape_text = " x ".join(f"{size:,}" for size in shape)
    if found < expected:
        raise ValueError(
            f"{path} is truncated: its header announces {shape_text} = {expected:,} "
            f"bytes of data, but only {found:,} follow"
        )
    if found > expected:
        raise ValueError(
            f"{path} has {found - expected:,} trailing bytes after the {expected:,} "
            f"bytes of data ({shape_text}) its header announces"
        )
    return np.frombuffer(content, dtype=np.uint8, offset=header_size).reshape(shape).copy()


def write_idx(path, array):
    """Write labels (N,) or images (N, rows, cols) to an IDX file; gzipped if the name ends in .gz.

    ``array`` must hold integers in 0..255 (it is stored as unsigned bytes). The gzip
    header carries no name or time, so the same array always gives the same file.
    """
    path = Path(path)
    array = np.asarray(array)
    if array.dtype.kind not in "ui":
        raise TypeError(
            f"write_idx needs an array of integers in 0..255, got dtype {array.dtype}"
        )
    if array.ndim not in _IDX_NDIMS:
        raise ValueError(
            f"write_idx writes labels (N,) or images (N, rows, cols), "
            f"got an array of shape {array.shape}"
        )
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(
            f"write_idx stores unsigned bytes, but the array holds values from "
            f"{array.min()} to {array.max()}"
        )
    header = struct.pack(f">HBB{array.ndim}I", 0, _IDX_UNSIGNED_BYTE, array.ndim, *array.shape)
    content = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    if path.name.endswith(".gz"):
        with open(path, "wb") as raw, gzip.GzipFile(
            filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0
        ) as file:
            file.write(content)
    else:
        path.write_bytes(content)


# --------------------------------------------------------------------------- one-hot


def one_hot(labels, num_classes=None, dtype=np.float32):
    """Rows of zeros with a one in each label's column.

    ``labels`` holds integer classes (any shape, e.g. (N,)); the result has shape
    ``labels.shape + (num_classes,)``. ``num_classes`` defaults to the largest label + 1.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "ui":
        raise TypeError(f"one_hot needs integer labels, got dtype {labels.dtype}")
    if num_classes is None:
        if labels.size == 0:
            raise ValueError("one_hot cannot infer num_classes from no labels; pass num_classes")
        num_classes = int(labels.max()) + 1
    else:
        num_classes = _checks.positive_int("num_classes", num_classes)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"labels must lie in 0..{num_classes - 1} for {num_classes} classes, "
            f"got values from {labels.min()} to {labels.max()}"
        )
    encoded = np.zeros(labels.shape + (int(num_classes),), dtype=dtype)
    np.put_along_axis(encoded, labels[..., np.newaxis].astype(np.intp), 1, axis=-1)
    return encoded


# --------------------------------------------------------------------------- preprocessing


@dataclass(frozen=True)
class Rescaling:
    """Pixels 0-255 to network input: ``x * scale + offset`` in float32 (Keras's
    ``Rescaling(scale, offset)``). A model saved by the command line records it as
    numbers (``as_dict``), so evaluate and predict feed images as it was trained on."""

    scale: float
    offset: float = 0.0
    # The raw values the model was trained on: pixels 0..255.
    input_range = (0, 255)

    def __call__(self, pixels):
        """float32 ``pixels * scale + offset``, same shape (computed as a division by
        1 / scale, so the write-ups' ``x / 255 - 0.5`` comes out bit for bit)."""
        return np.asarray(pixels) / np.float32(1 / self.scale) + np.float32(self.offset)

    def as_dict(self):
        return {"scale": self.scale, "offset": self.offset, "input_range": list(self.input_range)}

    @classmethod
    def from_dict(cls, values):
        """The Rescaling of ``as_dict``; a ValueError if ``values`` is not one."""
        try:
            scale, offset = float(values["scale"]), float(values["offset"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"not a pixel scaling: {values!r}") from None
        if not (math.isfinite(scale) and math.isfinite(offset)) or scale == 0:
            raise ValueError(f"not a pixel scaling: {values!r}")
        return cls(scale, offset)


# The write-ups' scaling, x / 255 - 0.5: pixels to [-0.5, 0.5].
WRITE_UPS_SCALING = Rescaling(1 / 255, -0.5)


# --------------------------------------------------------------------------- loaders


@dataclass(frozen=True)
class DataSource:
    """Where a data set was loaded from.

    ``kind`` is one of "path", "FASTCNN_DATA", "debian", "cache", "download" (fetched
    into the cache by this call) and "sample" (the sample shipped with fastcnn).
    ``str(source)`` is a sentence for people.
    """

    dataset: str
    kind: str
    directory: Path
    train_size: int
    test_size: int

    @property
    def is_sample(self):
        return self.kind == "sample"

    def __str__(self):
        counts = " / ".join(
            f"{size:,} {split}"
            for size, split in ((self.train_size, "train"), (self.test_size, "test"))
            if size
        )
        if self.is_sample:
            return (
                f"the {self.train_size:,}-image {self.dataset} sample shipped with "
                f"fastcnn ({counts})"
            )
        return f"{self.dataset} from {self.directory} ({counts})"


class LoadedData(tuple):
    """``((x_train, y_train), (x_test, y_test))``, with ``.source``, a DataSource, and
    ``.classes``, the class names by label (None when the loader does not know them)."""

    def __new__(cls, train, test, source, classes=None):
        data = super().__new__(cls, (train, test))
        data.source = source
        data.classes = classes
        return data

    def __getnewargs__(self):
        return (self[0], self[1], self.source, self.classes)

    def __repr__(self):
        return f"<LoadedData: {self.source}>"


@dataclass(frozen=True)
class _DataSet:
    name: str
    folder: str  # its folder under FASTCNN_DATA, Debian's datasets folder and the cache
    url_attribute: str  # the module constant holding the official base URL
    sha256: dict
    in_debian: bool
    has_sample: bool


_FASHION_MNIST = _DataSet(
    name="Fashion-MNIST",
    folder="fashion-mnist",
    url_attribute="FASHION_MNIST_URL",
    sha256=FASHION_MNIST_SHA256,
    in_debian=True,
    has_sample=True,
)
_MNIST = _DataSet(
    name="MNIST",
    folder="mnist",
    url_attribute="MNIST_URL",
    sha256=MNIST_SHA256,
    in_debian=False,
    has_sample=False,
)


def fashion_mnist(path=None, download=False, splits=("train", "test")):
    """Load Fashion-MNIST: ``(x_train, y_train), (x_test, y_test)``.

    Images are uint8 (N, 28, 28), labels int64 (N,) with values 0..9 (names in
    ``FASHION_MNIST_CLASSES``). ``path`` is a folder holding the four IDX files
    (gzipped or not); without it the data is looked for in $FASTCNN_DATA/fashion-mnist,
    /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist), the user cache,
    then downloaded into the cache if ``download`` is true, and otherwise the
    2,000-image sample shipped with fastcnn is used. The result's ``.source`` says which.
    ``splits=("test",)`` needs (and reads) only the test files; the training pair is
    then (None, None). Raises FileNotFoundError when ``path`` is not a folder holding
    the files, ValueError for files that are not IDX files of the right shape.
    """
    return _load(_FASHION_MNIST, path, download, splits)


def mnist(path=None, download=False, splits=("train", "test")):
    """Load MNIST handwritten digits: ``(x_train, y_train), (x_test, y_test)``.

    Images are uint8 (N, 28, 28), labels int64 (N,) with values 0..9. ``path`` is a
    folder holding the four IDX files; without it the data is looked for in
    $FASTCNN_DATA/mnist and the user cache, then downloaded into the cache if
    ``download`` is true. No sample is shipped: if nothing is found,
    FileNotFoundError says how to get the files. The result's ``.source`` says where
    the data came from. ``splits`` as in ``fashion_mnist``.
    """
    return _load(_MNIST, path, download, splits)


_SPLITS = ("train", "test")


def _load(dataset, path, download, splits=_SPLITS):
    splits = tuple(splits)
    if not splits or any(split not in _SPLITS for split in splits):
        raise ValueError(f"splits must name 'train' and/or 'test', got {splits!r}")
    roles = [role for role in FILE_NAMES if role.split("_")[0] in splits]
    directory, kind = _locate(dataset, path, download, roles)
    files = _files_in(directory, roles)
    loaded = {}
    for split in _SPLITS:
        if split in splits:
            loaded[split] = _read_split(files[f"{split}_images"], files[f"{split}_labels"])
        else:
            loaded[split] = (None, None)
    sizes = [0 if labels is None else len(labels) for _, labels in loaded.values()]
    source = DataSource(dataset.name, kind, directory, *sizes)
    return LoadedData(loaded["train"], loaded["test"], source)


def _locate(dataset, path, download, roles=tuple(FILE_NAMES)):
    """The folder to load from and its kind, trying each place in the documented order."""
    if path is not None:
        directory = Path(path).expanduser()
        if directory.exists() and not directory.is_dir():
            raise FileNotFoundError(
                f"{directory} is a file, not a folder: pass the folder holding "
                f"{_file_list()}"
            )
        if not directory.is_dir():
            raise FileNotFoundError(
                f"{dataset.name} folder {directory} does not exist (expected a folder "
                f"holding {_file_list()})"
            )
        missing = [
            FILE_NAMES[role] for role in roles if _find_file(directory, FILE_NAMES[role]) is None
        ]
        if missing:
            raise FileNotFoundError(
                f"{directory} lacks {dataset.name} file(s) {', '.join(missing)} "
                "(gzipped or not)"
            )
        return directory, "path"

    searched = []
    data_root = os.environ.get("FASTCNN_DATA")
    if data_root:
        if not Path(data_root).expanduser().is_dir():
            raise FileNotFoundError(
                f"the environment variable FASTCNN_DATA is set to {data_root}, "
                "which is not a folder"
            )
        data_root = Path(data_root).expanduser()
        # $FASTCNN_DATA/fashion-mnist as documented, or the files right in $FASTCNN_DATA
        searched += [(data_root / dataset.folder, "FASTCNN_DATA"), (data_root, "FASTCNN_DATA")]
    if dataset.in_debian:
        searched.append((DEBIAN_DIR / dataset.folder, "debian"))
    cache = _cache_root() / dataset.folder
    searched.append((cache, "cache"))

    for directory, kind in searched:
        if _files_in(directory, roles) is not None:
            return directory, kind
    if download:
        _download(dataset, cache)
        return cache, "download"
    if dataset.has_sample:
        return SAMPLE_DIR, "sample"

    places = ", ".join(str(directory) for directory, kind in searched)
    raise FileNotFoundError(
        f"{dataset.name} was not found (looked in {places}). Pass download=True to "
        f"fetch it into {cache}, or put {_file_list()} in a folder and pass it as "
        f"path=, or in $FASTCNN_DATA/{dataset.folder}."
    )


def _file_list():
    return ", ".join(FILE_NAMES.values())


def _cache_root():
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "fastcnn"


def _find_file(directory, name):
    """``name`` in ``directory``, as distributed (.gz) or decompressed; None if neither."""
    for candidate in (directory / name, directory / name[: -len(".gz")]):
        if candidate.is_file():
            return candidate
    return None


def _files_in(directory, roles=tuple(FILE_NAMES)):
    """The files of a data set in ``directory`` by role, or None unless all are there."""
    files = {role: _find_file(directory, FILE_NAMES[role]) for role in roles}
    if any(file is None for file in files.values()):
        return None
    return files


def _read_split(images_path, labels_path):
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(
            f"{images_path} should hold 28 x 28 images (N, 28, 28), "
            f"but holds an array of shape {images.shape}"
        )
    if labels.ndim != 1:
        raise ValueError(
            f"{labels_path} should hold labels (N,), but holds an array of shape {labels.shape}"
        )
    if len(images) != len(labels):
        raise ValueError(
            f"image and label counts differ: {images_path} holds {len(images):,} images "
            f"but {labels_path} holds {len(labels):,} labels"
        )
    if labels.size and labels.max() > 9:
        raise ValueError(f"{labels_path} holds label {labels.max()}; labels must be 0..9")
    return images, labels.astype(np.int64)


# --------------------------------------------------------------------------- download


def _download(dataset, cache):
    """Fetch the four files that ``cache`` lacks, each verified before it is kept."""
    base_url = _base_url(dataset)
    cache.mkdir(parents=True, exist_ok=True)
    for name in FILE_NAMES.values():
        if _find_file(cache, name) is None:
            url = urllib.parse.urljoin(base_url, name)
            _fetch_verified(url, cache / name, dataset.sha256[name])


def _base_url(dataset):
    """The official base URL, or a mirror under $FASTCNN_DATA_URL; HTTPS unless on this machine."""
    mirror = os.environ.get("FASTCNN_DATA_URL")
    if mirror:
        base_url = mirror.rstrip("/") + f"/{dataset.folder}/"
    else:
        # Read at call time, so that changing the module constant takes effect.
        base_url = globals()[dataset.url_attribute]
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme != "https" and not (parts.scheme == "http" and _is_loopback(parts.hostname)):
        raise ValueError(
            f"refusing to download {dataset.name} from {base_url}: only https:// URLs "
            "(or http:// to this machine) are used"
        )
    return base_url


def _is_loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host or "").is_loopback
    except ValueError:
        return False


def _fetch_verified(url, destination, sha256):
    """Download ``url`` beside ``destination`` and move it there only if its SHA-256 is right."""
    digest = hashlib.sha256()
    partial = tempfile.NamedTemporaryFile(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".part", delete=False
    )
    try:
        with partial:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    for chunk in iter(lambda: response.read(_DOWNLOAD_CHUNK), b""):
                        digest.update(chunk)
                        partial.write(chunk)
            except urllib.error.HTTPError as error:
                reason = f"HTTP {error.code} {error.reason}"
                raise OSError(f"could not download {url}: {reason}") from None
            except (OSError, http.client.HTTPException) as error:
                reason = getattr(error, "reason", error)
                raise OSError(f"could not download {url}: {reason}") from None
        if digest.hexdigest() != sha256:
            raise ValueError(
                f"the file downloaded from {url} is not the official one (SHA-256 "
                f"{digest.hexdigest()}, expected {sha256}); it was discarded"
            )
        os.replace(partial.name, destination)
    except BaseException:
        Path(partial.name).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- CIFAR-10

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
# The binary release on the data set's page, https://www.cs.toronto.edu/~kriz/cifar.html.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/"
CIFAR10_ARCHIVE = "cifar-10-binary.tar.gz"
# The page publishes only the archive's MD5, c32a1d4ab5d03f1284b67883e8d87530. This
# SHA-256 of the same 170,052,171-byte archive is the one gomlx checks
# (github.com/gomlx/gomlx, examples/cifar/cifar.go), and other public projects record
# the same value next to that MD5; it could not be recomputed here (no network). A wrong
# value would only make downloads fail, never accept another file.
CIFAR10_SHA256 = "c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}.bin" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch.bin"
CIFAR10_META_FILE = "batches.meta.txt"
# The folder the archive unpacks to; a folder holding it is accepted as well.
CIFAR10_ARCHIVE_FOLDER = "cifar-10-batches-bin"
# One record: a label byte, then 3 planes (R, G, B) of 32 x 32 bytes, row-major.
_CIFAR10_IMAGE_SHAPE = (3, 32, 32)
_CIFAR10_RECORD = 1 + math.prod(_CIFAR10_IMAGE_SHAPE)

_CIFAR10 = _DataSet(
    name="CIFAR-10",
    folder="cifar-10",
    url_attribute="CIFAR10_URL",
    sha256={CIFAR10_ARCHIVE: CIFAR10_SHA256},
    in_debian=False,
    has_sample=False,
)


def cifar10(path=None, download=False):
    """Load CIFAR-10 from its binary release: ``(x_train, y_train), (x_test, y_test)``.

    Images are uint8 (N, 3, 32, 32) (channels R, G, B; 50,000 train and 10,000 test in
    the full set), labels int64 (N,) with values 0..9; the result's ``.classes`` holds
    the class names (from batches.meta.txt when the folder has it, else
    ``CIFAR10_CLASSES``) and ``.source`` says where the data came from.

    ``path`` is a folder holding data_batch_1.bin ... data_batch_5.bin and
    test_batch.bin (each record one label byte and 3,072 pixel bytes: the R, G, then B
    plane of 32 x 32, row-major), or the folder holding the archive's
    cifar-10-batches-bin. Without it the files are looked for in $FASTCNN_DATA/cifar-10
    and the user cache (``$XDG_CACHE_HOME`` or ~/.cache, then fastcnn/cifar-10), then,
    if ``download`` is true, cifar-10-binary.tar.gz is fetched over HTTPS (or from
    $FASTCNN_DATA_URL/cifar-10/), checked against ``CIFAR10_SHA256``, and its six
    batch files and batches.meta.txt are unpacked into that cache (nothing else in the
    archive is written). The Python (pickled) release is never read.

    Raises FileNotFoundError when no folder has the files (saying how to get them),
    ValueError naming the file when a batch is empty, truncated or not a whole number
    of 3,073-byte records, holds a label above 9, or batches.meta.txt does not hold
    ten class names.
    """
    directory, kind = _locate_cifar10(path, download)
    folder = _cifar10_folder(directory)
    train = [_read_cifar10_batch(folder / name) for name in CIFAR10_TRAIN_FILES]
    x_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    x_test, y_test = _read_cifar10_batch(folder / CIFAR10_TEST_FILE)
    source = DataSource(_CIFAR10.name, kind, folder, len(y_train), len(y_test))
    classes = _read_cifar10_classes(folder / CIFAR10_META_FILE)
    return LoadedData((x_train, y_train), (x_test, y_test), source, classes)


def _cifar10_folder(directory):
    """The folder holding the batch files: ``directory`` or its cifar-10-batches-bin;
    None when neither holds all six."""
    for folder in (directory, directory / CIFAR10_ARCHIVE_FOLDER):
        names = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
        if all((folder / name).is_file() for name in names):
            return folder
    return None


def _locate_cifar10(path, download):
    """The folder to load CIFAR-10 from and its kind, in the order ``cifar10`` documents."""
    wanted = ", ".join((*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE))
    if path is not None:
        directory = Path(path).expanduser()
        if not directory.is_dir():
            raise FileNotFoundError(
                f"CIFAR-10 folder {directory} does not exist (expected a folder holding "
                f"{wanted})"
            )
        if _cifar10_folder(directory) is None:
            names = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
            missing = [name for name in names if not (directory / name).is_file()]
            raise FileNotFoundError(
                f"{directory} lacks CIFAR-10 file(s) {', '.join(missing)} (the binary "
                f"release, {CIFAR10_ARCHIVE}, unpacked)"
            )
        return directory, "path"

    searched = []
    data_root = os.environ.get("FASTCNN_DATA")
    if data_root:
        if not Path(data_root).expanduser().is_dir():
            raise FileNotFoundError(
                f"the environment variable FASTCNN_DATA is set to {data_root}, "
                "which is not a folder"
            )
        searched.append((Path(data_root).expanduser() / _CIFAR10.folder, "FASTCNN_DATA"))
    cache = _cache_root() / _CIFAR10.folder
    searched.append((cache, "cache"))
    for directory, kind in searched:
        if _cifar10_folder(directory) is not None:
            return directory, kind
    if download:
        _download_cifar10(cache)
        return cache, "download"
    places = ", ".join(str(directory) for directory, _ in searched)
    raise FileNotFoundError(
        f"CIFAR-10 was not found (looked in {places}). Pass download=True to fetch "
        f"{CIFAR10_ARCHIVE} (about 170 MB) into {cache}, or unpack it and pass the folder "
        f"as path=, or put {wanted} in $FASTCNN_DATA/{_CIFAR10.folder}."
    )


def _download_cifar10(cache):
    """Fetch the archive, verified, and unpack only the batch files and the class names."""
    cache.mkdir(parents=True, exist_ok=True)
    archive = cache / CIFAR10_ARCHIVE
    url = urllib.parse.urljoin(_base_url(_CIFAR10), CIFAR10_ARCHIVE)
    _fetch_verified(url, archive, CIFAR10_SHA256)
    try:
        wanted = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE, CIFAR10_META_FILE)
        with tarfile.open(archive, "r:gz") as tar:
            for name in wanted:
                member = tar.getmember(f"{CIFAR10_ARCHIVE_FOLDER}/{name}")
                if not member.isfile():
                    raise ValueError(f"{archive}: {member.name} is not a regular file")
                # Each file appears only once it is complete.
                partial = cache / f".{name}.part"
                with tar.extractfile(member) as source, open(partial, "wb") as target:
                    shutil.copyfileobj(source, target)
                os.replace(partial, cache / name)
    except KeyError as error:
        raise ValueError(f"{archive} lacks a CIFAR-10 file ({error})") from None
    except (tarfile.TarError, EOFError, zlib.error) as error:
        raise ValueError(f"{archive} is not a readable tar.gz archive ({error})") from None
    finally:
        archive.unlink(missing_ok=True)


def _read_cifar10_batch(path):
    """(images (N, 3, 32, 32) uint8, labels (N,) int64) of one binary batch file."""
    content = np.fromfile(path, dtype=np.uint8)
    if content.size == 0 or content.size % _CIFAR10_RECORD:
        raise ValueError(
            f"{path} holds {content.size:,} bytes, not a whole number of CIFAR-10 records "
            f"of {_CIFAR10_RECORD:,} bytes (1 label byte + 3,072 pixel bytes): it is "
            "truncated, empty or not a CIFAR-10 binary batch"
        )
    records = content.reshape(-1, _CIFAR10_RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        record = int(np.argmax(labels > 9))
        raise ValueError(
            f"{path} holds label {labels[record]} in record {record}; labels must be 0..9 "
            "(is it CIFAR-100, whose records have two label bytes?)"
        )
    images = np.ascontiguousarray(records[:, 1:]).reshape(-1, *_CIFAR10_IMAGE_SHAPE)
    return images, labels


def _read_cifar10_classes(path):
    """The ten class names of batches.meta.txt (one a line), or CIFAR10_CLASSES without it."""
    if not path.is_file():
        return CIFAR10_CLASSES
    try:
        text = path.read_text(encoding="ascii")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path} is not a text file of class names ({error})") from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != 10:
        raise ValueError(
            f"{path} should name the 10 classes, one a line, but names {len(names)}"
        )
    return names
