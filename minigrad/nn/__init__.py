"""Layers (``mg.nn``): Module, Parameter and the building blocks of a network."""
from . import functional, init
from .batchnorm import BatchNorm1d, BatchNorm2d
from .layers import (AdaptiveAvgPool2d, AvgPool2d, Conv2d, ConvTranspose2d, CrossEntropyLoss, Dropout, Flatten,
                     Identity, LeakyReLU, Linear, MaxPool2d, MaxUnpool2d, MSELoss, ReLU, Sequential, Sigmoid, Tanh)
from .module import Module, Parameter

__all__ = ["functional", "init", "Module", "Parameter", "Linear", "Conv2d", "ConvTranspose2d", "ReLU", "LeakyReLU",
           "Sigmoid", "Tanh", "Flatten", "Dropout", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "MaxUnpool2d", "Identity",
           "Sequential", "CrossEntropyLoss", "MSELoss", "BatchNorm1d", "BatchNorm2d"]
