"""A save killed at any moment leaves the previous model file whole."""

import random
import subprocess
import sys
import textwrap
import time

from fastcnn import Network

SAVER = """
    import sys
    import numpy as np
    from fastcnn import Dense, Network

    path = sys.argv[1]
    network = Network([Dense(512, input_shape=(784,), seed=0), Dense(512, seed=1), Dense(10, seed=2)])
    network.use("mse").predict(np.zeros((1, 784)))
    version = 0
    while True:  # saves until killed; every array of version v holds v
        for layer in network.layers:
            for array in layer.parameters.values():
                array[...] = version
        network.save(path)
        if version == 0:
            print("saved", flush=True)
        version += 1
"""


def test_a_save_killed_at_any_moment_leaves_a_whole_model(tmp_path):
    path = tmp_path / "model.npz"
    rng = random.Random(0)
    versions = []
    for _ in range(8):
        with subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(SAVER), str(path)],
            stdout=subprocess.PIPE, text=True,
        ) as saver:
            try:
                assert saver.stdout.readline().strip() == "saved"
                time.sleep(rng.uniform(0.0, 0.3))  # a dozen saves or so: a kill mid-write
            finally:
                saver.kill()
        network = Network.load(path)  # must not be torn: one whole version
        values = {
            float(value)
            for layer in network.layers
            for array in layer.parameters.values()
            for value in (array.min(), array.max())
        }
        assert len(values) == 1, f"a mix of versions: {sorted(values)}"
        versions.append(values.pop())
    assert max(versions) > 0, "the saver was never killed after a first whole save"
