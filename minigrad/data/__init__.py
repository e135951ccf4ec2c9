"""The data side of minigrad: datasets, the shuffling DataLoader, sharding across ranks.

    from minigrad.data import DataLoader, FashionMNIST
    train = FashionMNIST(train=True)                  # (60000, 1, 28, 28) float32 in [0, 1]
    loader = DataLoader(train, batch_size=128, shuffle=True, seed=0)
"""
from .dataset import Dataset, TensorDataset, collate
from .download import ChecksumError, download
from .idx import DatasetError, IDXError, read_idx, write_idx
from .loader import DataLoader
from .mnist import MNIST, DatasetNotFound, FashionMNIST
from .sampler import DistributedSampler, epoch_permutation

__all__ = ["Dataset", "TensorDataset", "collate", "DataLoader", "DistributedSampler",
           "epoch_permutation", "MNIST", "FashionMNIST", "read_idx", "write_idx", "DatasetError",
           "DatasetNotFound", "IDXError", "download", "ChecksumError"]
