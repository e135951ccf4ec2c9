"""Every kernel compiles for sm_80 and sm_90 without spilling, within its register budget.

NVRTC compiles each kernels/*.cu with ptxas's verbose output (``--ptxas-options=-v``),
no GPU needed. A spill (registers stored to local memory) turns a streaming kernel's
loads into extra memory traffic, so any spill fails. Registers per thread decide how
many blocks fit on a multiprocessor: each kernel must stay within the budget its
``__launch_bounds__`` and its file's header state (40 for streaming kernels; the
float4 batch-norm kernels 64, as kernels/batchnorm.cu explains). ``-s`` prints the table.
"""
import re

import pytest

from minigrad import kernels

ARCHITECTURES = ("sm_80", "sm_90")
DEFAULT_BUDGET = 40
BUDGETS = {r"batch_norm_\w+_v4": 64}  # kernel name pattern -> registers allowed (see the .cu header)


def budget(kernel):
    return next((limit for pattern, limit in BUDGETS.items() if re.fullmatch(pattern, kernel)), DEFAULT_BUDGET)


def ptxas_report(name, arch):
    """{kernel: (registers, spill store bytes, spill load bytes, stack frame bytes)} from ptxas -v."""
    _, log = kernels.compile_for_source(kernels.source(name), arch, ("--ptxas-options=-v",), f"{name}.cu")
    report = {}
    for kernel, body in re.findall(r"Compiling entry function '(\w+)' for '\w+'\n(.*?)(?=Compiling entry|\Z)",
                                   log, re.S):
        registers = int(re.search(r"Used (\d+) registers", body).group(1))
        stores, loads = map(int, re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", body).groups())
        stack = int(re.search(r"(\d+) bytes stack frame", body).group(1))
        report[kernel] = (registers, stores, loads, stack)
    return report


@pytest.mark.parametrize("arch", ARCHITECTURES)
@pytest.mark.parametrize("name", kernels.names())
def test_no_kernel_spills_and_each_stays_within_its_registers(name, arch):
    report = ptxas_report(name, arch)
    assert report, f"ptxas reported no kernel of {name}.cu"
    for kernel, (registers, stores, loads, stack) in sorted(report.items()):
        print(f"{arch} {name}.cu {kernel}: {registers} registers (budget {budget(kernel)}), "
              f"spills {stores}/{loads} bytes, stack {stack} bytes")
    spilled = {kernel: row for kernel, row in report.items() if row[1] or row[2] or row[3]}
    assert not spilled, f"{name}.cu spills on {arch}: {spilled} (registers, stores, loads, stack)"
    over = {kernel: row[0] for kernel, row in report.items() if row[0] > budget(kernel)}
    assert not over, f"{name}.cu on {arch}: more registers than the budget: {over}"


def test_the_report_reads_a_spill_when_there_is_one():
    """The parser finds a spill: a kernel capped at 32 registers that needs far more must spill."""
    source = """
    extern "C" __global__ void __launch_bounds__(256, 8) crowded(const float* x, float* y) {
        float v[64];
        for (int k = 0; k < 64; ++k) v[k] = x[threadIdx.x + 256 * k];
        float total = 0.f;
        for (int k = 0; k < 64; ++k) for (int j = 0; j < 64; ++j) total += v[k] * v[(j * 7 + k) & 63];
        y[threadIdx.x] = total;
    }"""
    _, log = kernels.compile_for_source(source, "sm_90", ("--ptxas-options=-v",))
    registers = int(re.search(r"Used (\d+) registers", log).group(1))
    spilled = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores", log).groups()
    assert registers <= 32 and any(int(value) > 0 for value in spilled)
