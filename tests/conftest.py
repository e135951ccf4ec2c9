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


@pytest.fixture(params=[1, 2], ids=["1 thread", "2 threads"])
def threads(request):
    """Runs the test with minigrad's CPU passes on 1 and on 2 threads."""
    before = mg.get_num_threads()
    mg.set_num_threads(request.param)
    yield request.param
    mg.set_num_threads(before)
