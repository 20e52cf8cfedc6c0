"""Data-parallel training of fastcnn's own ``fit`` over several processes or machines.

Every process runs the same script under ``torchrun``; torch.distributed (gloo backend,
CPU) carries the gradients. Each process holds a whole copy of the network, trains on
its share of every global batch, and before each update the gradients are averaged over
all processes, so every copy takes the same step as one process training on the whole
batch would::

    import torch.distributed
    import fastcnn
    from fastcnn.distributed import DataParallel, is_main_process

    torch.distributed.init_process_group("gloo")   # torchrun sets the address and ranks
    network.fit(x, y, epochs=5, learning_rate=1e-3, batch_size=256,   # the global batch
                optimizer=DataParallel(fastcnn.Adam()), seed=0)
    if is_main_process():
        fastcnn.distributed.unwrap(network).save("model.npz")
    torch.distributed.destroy_process_group()

run with ``torchrun --nproc_per_node 2 train.py`` (one machine), or on each machine
``torchrun --nnodes 2 --node_rank R --nproc_per_node P --master_addr HOST
--master_port 29500 train.py``.

How it works, within fastcnn's Layer contract: a layer's ``backward`` hands each
(parameter, gradient) pair to its optimizer; ``DataParallel`` is that optimizer. It
holds the pairs until the step's last parameter has come (``fit`` tells it how many
there are), sums all the step's gradients over the processes at once, in one buffer,
with ``torch.distributed.all_reduce`` (on the NumPy array's own memory, through
``torch.from_numpy``), and passes the averages to the optimizer it wraps. The updates
wait until the end of the backward pass; that changes nothing, because a layer's
backward reads only its own parameters, before handing over its gradients (a layer of
one's own must do the same). ``fit`` also asks the wrapper for this process's rows of
each global batch (``shard``), so the same arrays, shuffle seed and ``batch_size`` mean
the same global batches everywhere.

The average is over samples, not processes: the loss gradient carries 1/N of the local
batch (fastcnn.losses), so each process weighs its gradient by N_local / N_global before
the sum. That stays exact when the last batch does not split evenly, and a process
whose share is empty still joins every all-reduce, with zeros.

Cost: one all-reduce per step, of all the parameters (12,832 floats for write-up 004's
network: about 1 ms between two processes on one loaded 2-core machine, where six
separate all-reduces, one per parameter, took about 7 ms), plus one copy of the
gradients into the buffer.

What differs from one process: Dropout draws its masks per process (the same seed on
every process, different rows), and ``fit``'s ``callbacks`` see this process's share
of each batch ("size" is the local count). The epoch's "loss" and "accuracy" are summed
over the processes, so every process's History holds the global figures; only rank 0
prints. A layer of one's own must update its parameters through
``update_parameters`` (as the built-in ones do), or its copies drift apart. Ctrl-C
under torchrun stops every process.
"""

import numpy as np

from .optimizers import Optimizer

__all__ = ["DataParallel", "is_main_process", "unwrap"]


def _torch_distributed():
    try:
        import torch
        import torch.distributed as dist
    except ImportError as error:
        raise ImportError(
            "fastcnn.distributed needs PyTorch (torch.distributed): pip install torch"
        ) from error
    return torch, dist


def is_main_process():
    """True in the process that should print, save and draw: rank 0 of the default
    process group, or the only process when torch.distributed is not in use."""
    try:
        import torch.distributed as dist
    except ImportError:
        return True
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class DataParallel(Optimizer):
    """Wraps an optimizer so that every process takes the step of the global batch.

    ``DataParallel(optimizer, group=None)``: ``optimizer`` is a fastcnn Optimizer
    (``Adam()``, ``SGD(momentum=0.9)``...) or its name; ``group`` a torch.distributed
    process group (None: the default one). Give it to ``fit(optimizer=...)``; the
    process group must be initialised first
    (``torch.distributed.init_process_group("gloo")``).

    Made for ``fit``. In a training loop of one's own, a new DataParallel averages
    each gradient as it comes (one all-reduce per parameter), weighing every process
    alike: right when the local batches are equal.

    At the start of ``fit`` every process takes rank 0's parameters and, when ``seed``
    is None, rank 0's seed (so all shuffle alike). The learning rate and ``batch_size``
    mean what they mean in one process: ``batch_size`` is the global batch, split
    across the processes.

    Raises ImportError without PyTorch, RuntimeError when the process group is not
    initialised, TypeError when ``optimizer`` is not an Optimizer (or is a
    DataParallel itself).
    """

    def __init__(self, optimizer, group=None):
        from . import optimizers

        optimizer = optimizers.get(optimizer)
        if isinstance(optimizer, DataParallel):
            raise TypeError("DataParallel wraps a plain optimizer, got another DataParallel")
        self._torch, self._dist = _torch_distributed()
        if not (self._dist.is_available() and self._dist.is_initialized()):
            raise RuntimeError(
                "DataParallel needs an initialised torch.distributed process group: call "
                'torch.distributed.init_process_group("gloo") first (under torchrun it '
                "reads the address, rank and world size from the environment)"
            )
        self.optimizer = optimizer
        self.group = group
        self.rank = self._dist.get_rank(group)
        self.world_size = self._dist.get_world_size(group)
        self._source = 0 if group is None else self._dist.get_global_rank(group, 0)
        # This process's share of the current global batch, N_local / N_global; fit
        # sets it in shard(). 1 / world_size is right for equal local batches.
        self._weight = 1.0 / self.world_size
        # (parameter, gradient, learning_rate, state) held until the step's last one.
        self._pending = []
        # How many parameters one step updates; fit sets it. None: no holding back,
        # one all-reduce per parameter.
        self._parameters_per_step = None

    @property
    def is_main_process(self):
        """Whether this process is rank 0 of the group (the one that prints)."""
        return self.rank == 0

    def update(self, parameter, gradient, learning_rate, state):
        """Hold the pair; once the step's last parameter has come, average all the
        step's gradients over the processes and let the wrapped optimizer update each
        parameter with the global mean gradient."""
        self._pending.append((parameter, gradient, learning_rate, state))
        if self._parameters_per_step in (None, len(self._pending)):
            self._update_pending()

    def _update_pending(self):
        pending, self._pending = self._pending, []
        by_dtype = {}
        for entry in pending:
            by_dtype.setdefault(entry[1].dtype, []).append(entry)
        for entries in by_dtype.values():
            # A new buffer: each layer keeps its own gradients (Layer.gradients).
            buffer = np.concatenate([np.ravel(entry[1]) for entry in entries])
            buffer *= self._weight
            self._dist.all_reduce(self._torch.from_numpy(buffer), group=self.group)
            offset = 0
            for parameter, gradient, learning_rate, state in entries:
                average = buffer[offset : offset + gradient.size].reshape(gradient.shape)
                offset += gradient.size
                self.optimizer.update(parameter, average, learning_rate, state)

    def shard(self, rows):
        """This process's rows of one global batch (a 1-D array of sample indices, the
        same on every process): every world_size-th row from this rank on, as
        torch.utils.data.DistributedSampler deals them. Records the share for the
        gradient weighting of the step that follows."""
        # A layer of one's own that skipped some of its parameters leaves the step
        # unfinished: finish it before the next one.
        if self._pending:
            self._update_pending()
        rows = np.asarray(rows)
        local = rows[self.rank :: self.world_size]
        self._weight = len(local) / len(rows)
        return local

    def join(self, layers, learning_rate):
        """Take part in a step without rows of one's own: hand every layer's
        optimizer zero gradients, in the order backward would, so this process joins
        each all-reduce and applies the same update as the others."""
        for layer in reversed(layers):
            parameters = getattr(layer, "parameters", {})
            if parameters:
                zeros = {name: np.zeros_like(value) for name, value in parameters.items()}
                layer.update_parameters(zeros, learning_rate)

    def common_seed(self, seed):
        """``seed`` if given (pass the same one on every process), else a random seed
        drawn by rank 0 and sent to all, so every process shuffles alike."""
        if seed is not None:
            return seed
        drawn = np.random.default_rng().integers(2**62, size=1)
        buffer = self._torch.from_numpy(drawn)
        self._dist.broadcast(buffer, self._source, group=self.group)
        return int(buffer[0])

    def broadcast_parameters(self, network, sample):
        """Build any unbuilt layer (a forward pass of ``sample``, one or more input
        rows), copy rank 0's parameters into every process's layers, and count the
        parameters one step updates."""
        network.predict(sample)
        self._pending = []  # anything left by a fit that stopped on an error
        self._parameters_per_step = sum(
            len(getattr(layer, "parameters", {})) for layer in network.layers
        )
        for layer in network.layers:
            for value in getattr(layer, "parameters", {}).values():
                buffer = np.ascontiguousarray(value)
                tensor = self._torch.from_numpy(buffer)
                self._dist.broadcast(tensor, self._source, group=self.group)
                if buffer is not value:
                    value[...] = buffer

    def sum_over_processes(self, logs):
        """``logs`` with "loss" and "accuracy" (each process's sum over its rows divided
        by the global sample count) summed over the processes: the global figures."""
        if self._pending:
            self._update_pending()
        keys = [key for key in ("loss", "accuracy") if key in logs]
        totals = self._torch.tensor([logs[key] for key in keys], dtype=self._torch.float64)
        self._dist.all_reduce(totals, group=self.group)
        return {**logs, **dict(zip(keys, totals.tolist()))}

    def __repr__(self):
        return f"DataParallel({self.optimizer!r})"


def unwrap(network):
    """Give every layer (and the network) back the optimizer inside its DataParallel,
    with the optimizer's state (Adam's moments) kept, so that ``network.save`` works;
    returns the network. Call it after ``fit``, on the process that saves."""
    if isinstance(network.optimizer, DataParallel):
        network.optimizer = network.optimizer.optimizer
    for layer in network.layers:
        wrapper = getattr(layer, "optimizer", None)
        if isinstance(wrapper, DataParallel):
            # Layer's optimizer setter starts a new, empty state; the state belongs to
            # the wrapped optimizer already (DataParallel keeps none), so carry it over.
            state = layer.optimizer_state
            layer.optimizer = wrapper.optimizer
            layer.optimizer_state = state
    return network
