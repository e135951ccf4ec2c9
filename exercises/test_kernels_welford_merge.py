"""Check for exercises/kernels_welford_merge.py: the kernel with your merge, on the emulator, against NumPy."""
import re

import numpy as np

from exercises import kernels_welford_merge as exercise
from exercises.checking import run
from minigrad.emulator import WELFORD_DEMO, EmulatedDevice
from minigrad.nn import batchnorm

MERGE = re.compile(r"// merge: begin\n(.*?)// merge: end\n", re.DOTALL)
# (channels, values per channel, blocks per channel): threads and whole blocks without values,
# a channel in one block, many blocks
CASES = [(2, 300, 2), (3, 5, 4), (1, 1, 1), (2, 4097, 7)]


def check(merge_source):
    source = MERGE.sub(lambda match: merge_source() + "\n", WELFORD_DEMO.read_text())
    device = EmulatedDevice(source=source)
    rng = np.random.default_rng(0)
    for channels, values, chunks in CASES:
        x = (rng.standard_normal((channels, values)) * 2 + 5).astype(np.float32)
        statistics = device.xp.zeros((3, channels), dtype=np.float32)
        partials = device.xp.zeros((channels * chunks, 3), dtype=np.float32)
        device.kernel("welford_statistics")((channels * chunks,), (64,), (
            device.to_device(x), values, chunks, partials, device.tickets(channels), statistics))
        count, mean, m2 = batchnorm.batch_statistics(x.astype(np.float64)[:, None, :].transpose(1, 0, 2))
        where = f"{channels} channels of {values} values in {chunks} blocks each"
        assert np.array_equal(statistics[0], count), f"{where}: counts {statistics[0]} instead of {count}"
        np.testing.assert_allclose(statistics[1], mean, rtol=1e-5, err_msg=f"{where}: means")
        np.testing.assert_allclose(statistics[2], m2, rtol=1e-4, atol=1e-6, err_msg=f"{where}: M2")
        per_block = np.asarray(partials, np.float64).reshape(channels, chunks, 3)
        merged = batchnorm.merge_statistics(*per_block.transpose(2, 1, 0))
        np.testing.assert_allclose(statistics[2], merged[2], rtol=1e-4, atol=1e-6,
                                   err_msg=f"{where}: M2 differs from minigrad's Chan merge of the block partials")


def reference():
    """minigrad's merge, as in welford_demo.cu."""
    return MERGE.search(WELFORD_DEMO.read_text()).group(1)


def wrong():
    """The spread between the two means forgotten: M2 = M2_a + M2_b."""
    return reference().replace("a.m2 + b.m2 + delta * delta * a.count * share", "a.m2 + b.m2")


def test_exercise():
    run(check, exercise.merge_source)
