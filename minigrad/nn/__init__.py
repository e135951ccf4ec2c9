"""Layers (``mg.nn``): Module, Parameter and the building blocks of a network."""
from . import functional, init
from .activation import GELU, LogSoftmax, SiLU, Softmax
from .batchnorm import BatchNorm1d, BatchNorm2d
from .embedding import Embedding
from .layers import (AdaptiveAvgPool2d, AvgPool2d, Conv2d, ConvTranspose2d, Dropout, Flatten, Identity, LeakyReLU,
                     Linear, MaxPool2d, MaxUnpool2d, ReLU, Sequential, Sigmoid, Tanh)
from .losses import (BCEWithLogitsLoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss, NLLLoss,
                     SmoothL1Loss)
from .module import Module, Parameter
from .normalization import GroupNorm, LayerNorm

__all__ = ["functional", "init", "Module", "Parameter", "Linear", "Conv2d", "ConvTranspose2d", "ReLU", "LeakyReLU",
           "Sigmoid", "Tanh", "Flatten", "Dropout", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "MaxUnpool2d",
           "Identity", "Sequential", "CrossEntropyLoss", "MSELoss", "NLLLoss", "BCEWithLogitsLoss", "L1Loss",
           "SmoothL1Loss", "HuberLoss", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm",
           "Embedding", "GELU", "SiLU", "Softmax", "LogSoftmax"]
