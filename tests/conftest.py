import numpy as np
import pytest

import minigrad as mg


def pytest_collection_modifyitems(config, items):
    if mg.cuda_is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (runs on a GPU machine through benchmarks/gpu_suite.sh)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    mg.manual_seed(0)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
