"""Kernels under concurrency: Python threads, set_num_threads mid-run, fork and spawn.

The kernels release the GIL, so Python threads really run them at once; each call
must still give the bits a lone call gives. The thread count may change while calls
run (answers never depend on it), and a process that has used the kernels can fork
and go on using them in the child.
"""

import multiprocessing
import threading
import time

import numpy as np
import pytest

import fastcnn
from fastcnn import kernels

THREADS = 8


def problems(seed=5):
    """name: (kernel, arguments) for every kernel, on shapes that take a few ms."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((8, 6, 24, 24), np.float32)
    w = rng.standard_normal((12, 6, 5, 5), np.float32)
    bias = rng.standard_normal(12, np.float32)
    grad_y = rng.standard_normal((8, 12, 12, 12), np.float32)  # stride 2, padding 2
    wide_x = rng.standard_normal((2, 256, 8, 8))  # C*kh*kw = 4096: im2col + gemm
    wide_w = rng.standard_normal((16, 256, 4, 4))
    wide_grad_y = rng.standard_normal((2, 16, 7, 7))  # padding 1
    pool_x = rng.standard_normal((8, 6, 25, 25))
    _, argmax = kernels.maxpool2d(pool_x, 3, 2)
    pool_grad_y = rng.standard_normal(argmax.shape)
    a = rng.standard_normal((150, 90), np.float32)
    b = rng.standard_normal((150, 70), np.float32)
    big_a = rng.standard_normal((200, 300))  # every side > 128: the packed path
    big_b = rng.standard_normal((250, 300))
    return {
        "correlate2d": (kernels.correlate2d, (x, w, bias, 2, 2)),
        "correlate2d_backward_weight": (kernels.correlate2d_backward_weight,
                                        (x, grad_y, 5, 2, 2)),
        "convolve2d_full": (kernels.convolve2d_full, (grad_y, w, (24, 24), 2, 2)),
        "correlate2d-gemm": (kernels.correlate2d, (wide_x, wide_w, None, 1, 1)),
        "correlate2d_backward_weight-gemm": (kernels.correlate2d_backward_weight,
                                             (wide_x, wide_grad_y, 4, 1, 1)),
        "convolve2d_full-gemm": (kernels.convolve2d_full, (wide_grad_y, wide_w, (8, 8), 1, 1)),
        "maxpool2d": (kernels.maxpool2d, (pool_x, 3, 2)),
        "maxpool2d_backward": (kernels.maxpool2d_backward, (pool_grad_y, argmax, (25, 25))),
        "avgpool2d": (kernels.avgpool2d, (pool_x, 3, 2)),
        "avgpool2d_backward": (kernels.avgpool2d_backward, (pool_grad_y, (25, 25), 3, 2)),
        "matmul-aT": (kernels.matmul, (a, b, True, False)),
        "matmul-packed-bT": (kernels.matmul, (big_a, big_b, False, True)),
    }


def run_all(calls):
    return {name: kernel(*arguments) for name, (kernel, arguments) in calls.items()}


def assert_bit_identical(results, expected):
    assert results.keys() == expected.keys()
    for name in expected:
        got, want = results[name], expected[name]
        if isinstance(want, tuple):
            for one, other in zip(got, want, strict=True):
                np.testing.assert_array_equal(one, other, strict=True, err_msg=name)
        else:
            np.testing.assert_array_equal(got, want, strict=True, err_msg=name)


def in_threads(work, count):
    """Run work(index) on count threads started together; return their results."""
    start = threading.Barrier(count)
    results, errors = [None] * count, []

    def run(index):
        try:
            start.wait()
            results[index] = work(index)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hangs"
    if errors:
        raise errors[0]
    return results


@pytest.fixture
def restore_num_threads():
    previous = fastcnn.get_num_threads()
    yield
    fastcnn.set_num_threads(previous)


def spin_until(event, stamps):
    """Busy-loop in Python until event is set, noting the time every 1024 turns."""
    spins = 0
    while not event.is_set():
        spins += 1
        if spins % 1024 == 0:
            stamps.append(time.perf_counter())


@pytest.mark.usefixtures("restore_num_threads")
def test_a_kernel_call_releases_the_gil():
    # While one thread is inside a long kernel call, this one keeps running Python.
    # Were the GIL held, this loop could only run in the few switch intervals
    # (5 ms each) around the Python parts of the call.
    fastcnn.set_num_threads(1)
    # A product that takes about half a second here, whatever this machine's speed.
    probe = np.ones((500, 500))
    started = time.perf_counter()
    kernels.matmul(probe, probe)
    seconds = max(time.perf_counter() - started, 1e-4)
    size = int(min(4000, max(500, 500 * (0.5 / seconds) ** (1 / 3))))
    a = np.ones((size, size))
    alone, stop = [], threading.Event()
    timer = threading.Timer(0.1, stop.set)
    timer.start()
    spin_until(stop, alone)
    timer.join()
    stamps_per_second = len(alone) / (alone[-1] - alone[0])

    started, finished = threading.Event(), threading.Event()
    call = {}

    def run_call():
        started.set()
        call["start"] = time.perf_counter()
        kernels.matmul(a, a)
        call["end"] = time.perf_counter()
        finished.set()

    worker = threading.Thread(target=run_call)
    worker.start()
    started.wait()
    stamps = []
    spin_until(finished, stamps)
    worker.join()
    margin = 0.03
    window = call["end"] - call["start"] - 2 * margin
    assert window > 0.1, "the call was too short to tell"
    during = [t for t in stamps if call["start"] + margin < t < call["end"] - margin]
    share = len(during) / (window * stamps_per_second)
    assert share > 0.3, f"this thread ran {share:.0%} of its usual speed during the call"


@pytest.mark.usefixtures("restore_num_threads")
@pytest.mark.parametrize("kernel_threads", [1, 2], ids=["1-kernel-thread", "2-kernel-threads"])
def test_python_threads_get_the_serial_answers(kernel_threads):
    fastcnn.set_num_threads(kernel_threads)
    calls = problems()
    expected = run_all(calls)
    names = list(calls)

    def work(index):
        # Each thread runs every kernel, starting at a different one, three times.
        order = names[index % len(names):] + names[:index % len(names)]
        return [run_all({name: calls[name] for name in order}) for _ in range(3)]

    for per_thread in in_threads(work, THREADS):
        for results in per_thread:
            assert_bit_identical(results, expected)


@pytest.mark.usefixtures("restore_num_threads")
def test_changing_the_thread_count_while_kernels_run():
    calls = problems()
    fastcnn.set_num_threads(1)
    expected = run_all(calls)
    stop = threading.Event()
    changes = []

    def change_thread_count():
        count = 0
        while not stop.is_set():
            fastcnn.set_num_threads(1 + count % 4)
            count += 1
        changes.append(count)

    changer = threading.Thread(target=change_thread_count)
    changer.start()
    try:
        results = in_threads(lambda index: [run_all(calls) for _ in range(3)], 4)
    finally:
        stop.set()
        changer.join()
    assert changes[0] > 10, f"the thread count changed only {changes[0]} times"
    for per_thread in results:
        for answers in per_thread:
            assert_bit_identical(answers, expected)


def answers_in_child(seed):
    """In a child process: every kernel's answers (what the parent compares)."""
    return run_all(problems(seed))


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_kernels_work_in_a_child_process(method):
    if method not in multiprocessing.get_all_start_methods():
        pytest.skip(f"no {method} start method here")
    expected = run_all(problems(seed=11))  # the parent has used the kernels (and threads)
    context = multiprocessing.get_context(method)
    with context.Pool(2) as pool:
        children = pool.map(answers_in_child, [11, 11])
    for answers in children:
        assert_bit_identical(answers, expected)
    assert_bit_identical(run_all(problems(seed=11)), expected)  # and the parent still can
