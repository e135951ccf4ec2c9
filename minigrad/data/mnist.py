"""MNIST and Fashion-MNIST: 28x28 grey images in 10 classes, from IDX files.

Where the files are looked for (each file may be gzipped, ``name.gz``, or raw):

1. ``root``, when given, and nowhere else: an empty ``root`` never falls back to
   another copy;
2. otherwise ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist``
   package), then the cache, ``$MINIGRAD_DATA/<name>`` or
   ``~/.cache/minigrad/<name>``: the first folder that holds both files of the
   split wins;
3. where they are not found, with ``download=True``, the official files are
   downloaded into ``root`` (when given) or the cache, each verified against its
   SHA-256; with ``download=False`` it is a ``DatasetNotFound`` error.

``<name>`` is ``fashion-mnist`` or ``mnist``.
"""
import os

import numpy as np

from .dataset import TensorDataset
from .download import download as download_file
from .idx import DatasetError, IDXError, read_idx

SYSTEM_DATASETS = "/usr/share/datasets"


def cache_folder(name):
    """``$MINIGRAD_DATA/<name>``, or ``~/.cache/minigrad/<name>`` when it is unset."""
    base = os.environ.get("MINIGRAD_DATA") or os.path.join(os.path.expanduser("~"), ".cache",
                                                           "minigrad")
    return os.path.join(base, name)


def _find_file(folder, stem):
    for filename in (stem + ".gz", stem):
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return None


class DatasetNotFound(DatasetError, FileNotFoundError):
    """The files of a dataset are in none of the folders searched; the message names them."""


class MNIST(TensorDataset):
    """The MNIST digits as a ``TensorDataset`` of ``(image, label)``.

    ``data``: float32 ``(N, 1, 28, 28)``, pixels scaled to ``[0, 1]``, or, with
    ``normalize=True``, standardised as ``(x - mean) / std`` with the training
    set's pixel ``mean`` and ``std`` (class attributes). ``targets``: int64
    ``(N,)`` in ``0..9``. N is 60000 for ``train=True``, 10000 otherwise.
    ``dataset.to('cuda')`` moves both arrays to the GPU.
    """

    name = "mnist"
    mirrors = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/",
               "http://yann.lecun.com/exdb/mnist/")
    # SHA-256 of the published .gz files (as listed by TensorFlow Datasets).
    sha256 = {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }
    mean, std = 0.1307, 0.3081
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
               "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root=None, train=True, download=True, normalize=False):
        self.train = bool(train)
        images_path, labels_path = self.locate(root, self.train, download)
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.ndim != 3:
            raise IDXError(f"{images_path}: expected images of shape (N, rows, columns), "
                           f"found shape {images.shape}")
        if labels.ndim != 1:
            raise IDXError(f"{labels_path}: expected labels of shape (N,), found shape "
                           f"{labels.shape}")
        if len(images) != len(labels):
            raise IDXError(f"{type(self).__name__}: {images_path} holds {len(images)} images "
                           f"but {labels_path} holds {len(labels)} labels")
        if labels.size and not 0 <= labels.min() <= labels.max() < len(self.classes):
            raise IDXError(f"{labels_path}: labels must be in 0..{len(self.classes) - 1}, found "
                           f"{labels.min()}..{labels.max()}")
        data = images.astype(np.float32)[:, None, :, :]
        data /= 255
        if normalize:
            data -= np.float32(self.mean)
            data /= np.float32(self.std)
        super().__init__(data, labels.astype(np.int64))
        self.images_path, self.labels_path = images_path, labels_path

    @property
    def data(self):
        return self.arrays[0]

    @property
    def targets(self):
        return self.arrays[1]

    @classmethod
    def stems(cls, train):
        """The (images, labels) file names of a split, without '.gz'."""
        split = "train" if train else "t10k"
        return f"{split}-images-idx3-ubyte", f"{split}-labels-idx1-ubyte"

    @classmethod
    def search_folders(cls, root=None):
        if root is not None:
            return [os.fspath(root)]
        return [os.path.join(SYSTEM_DATASETS, cls.name), cache_folder(cls.name)]

    @classmethod
    def locate(cls, root=None, train=True, download=True):
        """Paths of the split's (images, labels) files, downloading them if allowed and needed."""
        stems = cls.stems(train)
        folders = cls.search_folders(root)
        for folder in folders:
            paths = [_find_file(folder, stem) for stem in stems]
            if all(paths):
                return tuple(paths)
        if not download:
            where = f"folder {folders[0]}" if root is not None else f"any of {folders}"
            raise DatasetNotFound(f"{cls.__name__}: {' and '.join(stems)} (or .gz) not found in {where}")
        target = folders[0] if root is not None else cache_folder(cls.name)
        return tuple(_find_file(target, stem) or cls.fetch(stem + ".gz", target)
                     for stem in stems)

    @classmethod
    def fetch(cls, filename, folder):
        """Download ``filename`` into ``folder``, trying each mirror in turn."""
        failures = []
        for mirror in cls.mirrors:
            try:
                return download_file(mirror + filename, os.path.join(folder, filename),
                                     cls.sha256[filename])
            except OSError as error:  # URLError, HTTPError and ChecksumError are OSErrors
                failures.append(f"{mirror}: {error}")
        raise OSError(f"{cls.__name__}: could not download {filename}:\n  " + "\n  ".join(failures))


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: the MNIST format with images of clothes.

    Same interface as ``MNIST``. ``mean`` and ``std`` are those of the 60000
    training images' pixels in ``[0, 1]`` (0.2860 and 0.3530; the test suite
    recomputes them from the real files).
    """

    name = "fashion-mnist"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
               "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/")
    # SHA-256 of the published .gz files (as listed by TensorFlow Datasets). Debian's
    # package re-packs the gzip headers, so its files hash differently but decode the same.
    sha256 = {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    }
    mean, std = 0.2860, 0.3530
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
