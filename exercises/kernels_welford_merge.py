"""Exercise: a Welford kernel's block merge, run on the CUDA emulator.

Chapter: docs/kernels.md ("One batch-norm statistics step: Welford, shuffles, Chan, a ticket").

minigrad/emulator/welford_demo.cu computes each channel's (count, mean, M2) in
three merges: a warp's 32 threads through shuffles, a block's warps through
shared memory, and a channel's blocks in the block that takes the last ticket.
All three call one device function, which you write here in CUDA C++:

    __device__ Welford merge(Welford a, Welford b)

``Welford`` is ``struct { float count, mean, m2; }`` (M2: the sum of squared
deviations from the mean). Return the statistics of the union of the two sets
(Chan's formula). Mind the threads that got no values: their count is 0, and
two of them merge too.

Return the function's source text. The check puts it into welford_demo.cu in
place of minigrad's, compiles that with g++ on the emulator (no GPU needed;
`make data` installs g++), and compares each channel's statistics with NumPy.

Check: ``python -m pytest exercises/test_kernels_welford_merge.py``
"""


def merge_source():
    raise NotImplementedError
