"""Exercise: a ring all-reduce from MPI point-to-point calls.

Chapter: docs/distributed.md ("The ring all-reduce", and the experiment's cost model).

R ranks each hold an array of n values; each must end with the sum over ranks.
Split the array into R chunks (``np.array_split``). The ranks form a ring:
rank r sends to (r + 1) % R and receives from (r − 1) % R.

1. reduce-scatter, R − 1 steps: at step s rank r sends chunk (r − s) % R and
   adds what it receives to chunk (r − s − 1) % R. After it, rank r holds the
   full sum of chunk (r + 1) % R.
2. all-gather, R − 1 steps: at step s rank r sends chunk (r + 1 − s) % R
   (a finished sum) and stores what it receives as chunk (r − s) % R.

Each rank sends 2(R − 1) chunks, 2(R − 1)/R · n values, whatever R is. Use only
``comm.Sendrecv(sendbuf, dest=..., recvbuf=..., source=...)`` (or ``Send`` and
``Recv``), ``comm.Get_rank()`` and ``comm.Get_size()``: no collective.

    comm: an mpi4py communicator; array: a float64 NumPy array (1-D).
    Return the summed array (a new array, or ``array`` changed in place).

Check (it starts ``mpiexec -n 2`` and ``-n 3``):
``python -m pytest exercises/test_distributed_ring_allreduce.py``
"""


def ring_allreduce(comm, array):
    raise NotImplementedError
