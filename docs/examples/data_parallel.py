"""One data-parallel training step, checked against one process that takes the whole batch.

    mpiexec -n 2 python docs/examples/data_parallel.py
"""
import numpy as np

import minigrad as mg
from minigrad import distributed as dist

dist.init()
rank = dist.get_rank()

# A batch of 8 samples; each rank takes its share of it.
x = np.linspace(-1, 1, 8 * 3, dtype=np.float32).reshape(8, 3)
y = np.array([0, 1, 1, 0, 1, 0, 0, 1])
mine = mg.data.DistributedSampler(mg.data.TensorDataset(x, y), shuffle=False).indices()

mg.manual_seed(rank)  # every rank starts from different weights ...
model = mg.nn.Sequential(mg.nn.Linear(3, 4), mg.nn.BatchNorm1d(4), mg.nn.ReLU(), mg.nn.Linear(4, 2))
first_weights = dist.allgather_object(model[0].weight.numpy().tolist())
model = dist.DistributedDataParallel(dist.convert_sync_batchnorm(model))  # ... until rank 0's are copied to all

# The same network, in one process, on the whole batch.
single = mg.nn.Sequential(mg.nn.Linear(3, 4), mg.nn.BatchNorm1d(4), mg.nn.ReLU(), mg.nn.Linear(4, 2))
single.load_state_dict(model.module.state_dict())

mg.functional.cross_entropy(model(mg.tensor(x[mine])), y[mine]).backward()  # averages the gradients
mg.functional.cross_entropy(single(mg.tensor(x)), y).backward()

gradient_gap = max(float(np.abs(p.grad.numpy() - q.grad.numpy()).max())
                   for p, q in zip(model.module.parameters(), single.parameters()))
statistics_gap = float(np.abs(model.module[1].running_mean.numpy() - single[1].running_mean.numpy()).max())
shares = dist.allgather_object(mine.tolist())
if dist.is_main_process():
    for other_rank, share in enumerate(shares):
        print(f"rank {other_rank} trains on samples {share}")
    print("weights differed before DistributedDataParallel:", first_weights[0] != first_weights[1])
    print("gradients equal one process's on all 8 samples:", gradient_gap < 1e-6)
    print("running_mean equals one process's on all 8 samples:", statistics_gap < 1e-6)
