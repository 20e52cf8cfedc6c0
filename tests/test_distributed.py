"""fastcnn.distributed.DataParallel: two local processes under torchrun (gloo, CPU,
127.0.0.1) train a small CNN; both end with the same parameters, equal (float64) to one
process training on the same global batches. Skipped without PyTorch.

Run as a script, this file is the worker torchrun starts in each process.
"""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastcnn import Network, layers, losses
from fastcnn.optimizers import Adam

SAMPLES = 33  # batch_size 16: batches of 16, 16 and 1, so one process has no row
BATCH_SIZE = 16
EPOCHS = 2
LEARNING_RATE = 0.01


def data():
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, size=(SAMPLES, 1, 8, 8), dtype=np.uint8)
    y = rng.integers(0, 3, size=SAMPLES)
    return x, y


def small_cnn(input_shape=None):
    return Network(
        [
            layers.Convolutional(3, 3, padding=1, input_shape=input_shape),
            layers.ReLU(),
            layers.MaxPool2D(2),
            layers.Flatten(),
            layers.Dense(3),
        ],
        dtype=np.float64,
    ).use("softmax_cross_entropy")


def parameters(network):
    return {
        f"{index}.{name}": value
        for index, layer in enumerate(network.layers)
        for name, value in layer.parameters.items()
    }


def train_distributed(output_dir):
    """The worker: each process saves what it ended with into ``output_dir``."""
    import torch.distributed

    from fastcnn.distributed import DataParallel, is_main_process, unwrap

    torch.distributed.init_process_group("gloo")
    rank = torch.distributed.get_rank()
    x, y = data()
    # The same seed: compared with one process below.
    seeded = small_cnn()
    history = seeded.fit(
        x, y, EPOCHS, LEARNING_RATE, batch_size=BATCH_SIZE,
        optimizer=DataParallel(Adam()), seed=0, verbose=1,
    )
    np.savez(
        os.path.join(output_dir, f"seeded-{rank}.npz"),
        loss=history["loss"], accuracy=history["accuracy"], steps=history.steps,
        **parameters(seeded),
    )
    # No seed and layers built at construction: each process starts elsewhere, and
    # DataParallel must still bring them to rank 0's start and one shuffle order.
    class RecordingRows(DataParallel):
        rows = []

        def shard(self, rows):
            local = super().shard(rows)
            self.rows.extend(local)
            return local

    unseeded = small_cnn(input_shape=(1, 8, 8))
    unseeded.fit(x, y, 1, LEARNING_RATE, batch_size=BATCH_SIZE,
                 optimizer=RecordingRows("sgd"), verbose=0)
    np.savez(os.path.join(output_dir, f"unseeded-{rank}.npz"), **parameters(unseeded))
    np.save(os.path.join(output_dir, f"rows-{rank}.npy"), RecordingRows.rows)
    # A loop of one's own: each process steps on its half of the same 16 rows.
    manual = layers.Dense(3, input_shape=(64,), seed=1, dtype=np.float64)
    manual.optimizer = DataParallel("gd")
    half = slice(8 * rank, 8 * rank + 8)
    prediction = manual.forward(x[:16].reshape(16, -1)[half] / 255)
    manual.backward(losses.softmax_cross_entropy_prime(y[:16][half], prediction), 0.1)
    np.save(os.path.join(output_dir, f"manual-{rank}.npy"), manual.weights)
    if is_main_process():
        unwrap(seeded).save(os.path.join(output_dir, "seeded.npz"))
    torch.distributed.destroy_process_group()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun_command(script, *arguments):
    """torchrun starting ``script`` in two processes on 127.0.0.1."""
    return [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        str(script), *arguments,
    ]


def local_environment():
    """The environment for torchrun on this machine only, one thread per process."""
    return dict(os.environ, GLOO_SOCKET_IFNAME="lo", OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pytest.importorskip("torch")
    output = tmp_path_factory.mktemp("distributed")
    finished = subprocess.run(
        torchrun_command(__file__, str(output)), env=local_environment(), capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return output, finished.stdout


def load(path):
    with np.load(path) as saved:
        return dict(saved)


def test_both_processes_end_with_the_same_parameters(trained):
    output, _ = trained
    for run in ("seeded", "unseeded"):
        first, second = (load(output / f"{run}-{rank}.npz") for rank in (0, 1))
        assert first.keys() == second.keys()
        for name in first:
            np.testing.assert_array_equal(first[name], second[name], err_msg=f"{run} {name}")


def test_each_sample_is_trained_on_by_one_process_once_per_epoch(trained):
    output, _ = trained
    rows = [np.load(output / f"rows-{rank}.npy") for rank in (0, 1)]
    assert len(rows[0]) == len(rows[1]) + 1  # the last batch, of one row, went to rank 0
    np.testing.assert_array_equal(np.sort(np.concatenate(rows)), np.arange(SAMPLES))


def test_data_parallel_takes_the_steps_of_one_process_on_the_global_batches(trained):
    output, _ = trained
    x, y = data()
    single = small_cnn()
    history = single.fit(
        x, y, EPOCHS, LEARNING_RATE, batch_size=BATCH_SIZE, optimizer=Adam(), seed=0,
        verbose=0,
    )
    distributed = load(output / "seeded-0.npz")
    for name, value in parameters(single).items():
        np.testing.assert_allclose(distributed[name], value, rtol=1e-9, atol=1e-12,
                                   err_msg=name)
    np.testing.assert_allclose(distributed["loss"], history["loss"], rtol=1e-12)
    np.testing.assert_allclose(distributed["accuracy"], history["accuracy"], rtol=1e-12)
    assert distributed["steps"] == history.steps == EPOCHS * 3
    # The parameters moved: the comparison is not between two untrained networks.
    start = untrained(x, seed=0)
    assert not np.allclose(single.layers[0].kernels, start.layers[0].kernels)


def untrained(x, seed):
    """The network fit(seed=seed) starts from (a step with learning rate 0)."""
    network = small_cnn()
    network.fit(x[:1], np.zeros(1, dtype=np.int64), 1, 0.0, seed=seed, verbose=0)
    return network


def test_a_loop_of_ones_own_averages_equal_local_batches(trained):
    output, _ = trained
    x, y = data()
    single = layers.Dense(3, input_shape=(64,), seed=1, dtype=np.float64)
    prediction = single.forward(x[:16].reshape(16, -1) / 255)
    single.backward(losses.softmax_cross_entropy_prime(y[:16], prediction), 0.1)
    for rank in (0, 1):
        np.testing.assert_allclose(np.load(output / f"manual-{rank}.npy"), single.weights,
                                   rtol=1e-12, atol=1e-15)


def test_only_rank_0_prints(trained):
    _, stdout = trained
    assert stdout.count(f"epoch 1/{EPOCHS}") == 1


def test_rank_0_saves_a_network_that_loads_with_its_optimizer_state(trained):
    output, _ = trained
    saved = Network.load(output / "seeded.npz")
    distributed = load(output / "seeded-0.npz")
    for name, value in parameters(saved).items():
        np.testing.assert_array_equal(value, distributed[name])
    assert isinstance(saved.optimizer, Adam)


@pytest.mark.skipif(
    not (hasattr(Network, "to_torch") and hasattr(Network, "from_torch")),
    reason="the hand-over needs Network.to_torch and Network.from_torch (fastcnn.export)",
)
def test_the_handover_example_trains_with_fastcnn_then_ddp_and_comes_back():
    pytest.importorskip("torch")
    example = Path(__file__).resolve().parent.parent / "examples" / "handover_to_pytorch_ddp.py"
    finished = subprocess.run(
        torchrun_command(example, "--limit", "512", "--epochs", "1"),
        env=local_environment(), capture_output=True, text=True, timeout=180,
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    out = finished.stdout
    for line in ("epoch 1/1", "fastcnn, 2 processes: test accuracy",
                 "PyTorch DDP epoch 1/1", "PyTorch DDP, 2 processes: test accuracy"):
        # Printed by rank 0 alone.
        assert len(re.findall(f"^{line}", out, flags=re.MULTILINE)) == 1, out
    torch_accuracy = re.search(r"PyTorch DDP, 2 processes: test accuracy ([\d.]+)", out)
    back = re.search(r"back in fastcnn: test accuracy ([\d.]+).*outputs ([\d.e+-]+)", out)
    assert back.group(1) == torch_accuracy.group(1), out
    assert float(back.group(2)) < 1e-4, out


def test_data_parallel_needs_an_initialised_process_group():
    torch = pytest.importorskip("torch")
    from fastcnn.distributed import DataParallel, is_main_process

    if torch.distributed.is_initialized():
        pytest.skip("a process group is already initialised in this process")
    with pytest.raises(RuntimeError, match="init_process_group"):
        DataParallel(Adam())
    assert is_main_process()


if __name__ == "__main__":
    train_distributed(sys.argv[1])
