"""The debug view: a trace of every op, and anomaly detection that names the op."""
import io
import os
import subprocess
import sys

import numpy as np
import pytest

import minigrad as mg
import minigrad.nn.functional as F


def test_trace_prints_each_op_forward_and_backward():
    stream = io.StringIO()
    x = mg.tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True)
    with mg.debug.trace(stream):
        (F.relu(x) * 2).sum().backward()
    lines = stream.getvalue().splitlines()
    assert [line.split()[1:3] for line in lines] == [
        ["forward", "ReLU"], ["forward", "Mul"], ["forward", "Sum"],
        ["backward", "Sum"], ["backward", "Mul"], ["backward", "ReLU"]]
    assert "(2, 3)" in lines[0] and "cpu" in lines[0] and lines[0].endswith("ms")


def test_trace_is_off_again_after_the_block():
    stream = io.StringIO()
    with mg.debug.trace(stream):
        pass
    mg.tensor([1.0], requires_grad=True) * 2
    assert stream.getvalue() == ""


def test_anomaly_detection_names_the_forward_op_that_made_a_nan():
    x = mg.tensor([-1.0, 4.0], requires_grad=True)
    with mg.debug.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"Sqrt.forward produced NaN \(inputs \(2,\)"):
            x.sqrt()


def test_anomaly_detection_names_the_backward_op_that_made_an_inf():
    x = mg.tensor([0.0, 4.0], requires_grad=True)
    with mg.debug.detect_anomaly():
        y = x.sqrt().sum()  # finite forward; d sqrt(x) / dx = inf at 0
        with pytest.raises(FloatingPointError, match="Sqrt.backward produced Inf"):
            y.backward()


def test_environment_switch_turns_the_trace_on():
    code = "import minigrad as mg; (mg.tensor([1.0], requires_grad=True) * 3).sum().backward()"
    env = dict(os.environ, MINIGRAD_DEBUG="1")
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert "forward  Mul" in result.stderr and "backward Mul" in result.stderr
