"""Hand a fastcnn network over to PyTorch's DistributedDataParallel and back.

Three stages, in every process that torchrun starts (gloo backend, CPU):

1. fastcnn trains the network data-parallel: fit with
   ``fastcnn.distributed.DataParallel(Adam())`` gives each process its share of every
   batch and averages the gradients over the processes.
2. ``network.to_torch()`` gives the same network as a ``torch.nn.Sequential``, and
   ``fastcnn.export.to_torch_optimizer`` a ``torch.optim.Adam`` holding fastcnn's Adam
   moments; PyTorch's ``DistributedDataParallel`` continues the training, each process
   on its share of the data (``DistributedSampler``).
3. ``Network.from_torch(module)`` brings the result back; rank 0 evaluates it with
   fastcnn and checks it against the torch module.

Run on one machine with two processes (add ``--limit 512 --epochs 1`` for a quick run):

    torchrun --nproc_per_node 2 examples/handover_to_pytorch_ddp.py

or on several machines, on each (R = 0, 1, ...; HOST = rank 0's address):

    torchrun --nnodes 2 --node_rank R --nproc_per_node 1 --master_addr HOST \\
        --master_port 29500 examples/handover_to_pytorch_ddp.py

The images are Fashion-MNIST from ``fastcnn.datasets`` (the full set when it is
installed, else the 2,000-image sample shipped with fastcnn).
"""

import argparse

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

from fastcnn import Adam, Convolutional, Dense, Flatten, MaxPool2D, Network, ReLU, datasets
from fastcnn.distributed import DataParallel, is_main_process, unwrap
from fastcnn.export import to_torch_optimizer

LEARNING_RATE = 1e-3
BATCH_SIZE = 64  # the global batch, split over the processes in both stages


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs in each stage")
    parser.add_argument("--limit", type=int, default=None,
                        help="use at most this many training (and test) images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole run")
    return parser.parse_args()


def load(limit):
    """Scaled float32 images (N, 1, 28, 28) in [0, 1] and int64 labels, train and test."""
    data = datasets.fashion_mnist()
    (x_train, y_train), (x_test, y_test) = data
    if is_main_process():
        print(data.source)

    def prepared(x, y):
        x, y = x[:limit], y[:limit]
        return (x[:, None] / np.float32(255)).astype(np.float32), y.astype(np.int64)

    return prepared(x_train, y_train), prepared(x_test, y_test)


def main():
    args = parse_args()
    dist.init_process_group("gloo")  # torchrun's environment gives address, rank, size
    world_size = dist.get_world_size()
    (x_train, y_train), (x_test, y_test) = load(args.limit)

    # Stage 1: fastcnn, data-parallel. Only rank 0 prints; every process ends with the
    # same parameters.
    network = Network(
        [
            Convolutional(8, 3, padding=1), ReLU(), MaxPool2D(2),
            Convolutional(16, 3, padding=1), ReLU(), MaxPool2D(2),
            Flatten(), Dense(10),
        ]
    ).use("softmax_cross_entropy")
    network.fit(x_train, y_train, args.epochs, LEARNING_RATE, batch_size=BATCH_SIZE,
                optimizer=DataParallel(Adam()), seed=args.seed)
    unwrap(network)  # the plain Adam again, its moments kept, for the hand-over
    if is_main_process():
        accuracy = network.evaluate(x_test, y_test)["accuracy"]
        print(f"fastcnn, {world_size} processes: test accuracy {accuracy:.3f}")

    # Stage 2: the same network and Adam state in PyTorch, trained by DDP. DDP sums
    # the gradients over the processes and divides by their number, so each process
    # takes an equal share of every global batch: the sampler pads the data to a
    # multiple of the number of processes.
    module = network.to_torch()
    optimizer = to_torch_optimizer(network, module, LEARNING_RATE)
    model = DistributedDataParallel(module)
    train = TensorDataset(torch.from_numpy(x_train), torch.from_numpy(y_train))
    sampler = DistributedSampler(train, seed=args.seed)
    loader = DataLoader(train, batch_size=BATCH_SIZE // world_size, sampler=sampler)
    loss_function = torch.nn.CrossEntropyLoss()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)  # a new shuffle each epoch, the same on every process
        loss_sum = torch.zeros(2, dtype=torch.float64)
        for images, labels in loader:
            optimizer.zero_grad()
            loss = loss_function(model(images), labels)
            loss.backward()
            optimizer.step()
            loss_sum += torch.tensor([loss.item() * len(labels), len(labels)])
        dist.all_reduce(loss_sum)
        if is_main_process():
            print(f"PyTorch DDP epoch {epoch + 1}/{args.epochs}  "
                  f"loss={loss_sum[0] / loss_sum[1]:.4f}")

    # Stage 3: back to fastcnn, on rank 0 (every process holds the same module).
    if is_main_process():
        module.eval()
        with torch.no_grad():
            torch_outputs = module(torch.from_numpy(x_test)).numpy()
        torch_accuracy = (torch_outputs.argmax(1) == y_test).mean()
        print(f"PyTorch DDP, {world_size} processes: test accuracy {torch_accuracy:.3f}")
        back = Network.from_torch(module).use("softmax_cross_entropy")
        scores = back.evaluate(x_test, y_test)
        difference = np.abs(back.predict(x_test) - torch_outputs).max()
        print(f"back in fastcnn: test accuracy {scores['accuracy']:.3f}, "
              f"macro-F1 {scores['macro_f1']:.3f}; largest difference from the torch "
              f"module's outputs {difference:.1e}")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
