"""Learning-rate schedules, callbacks (EarlyStopping, ModelCheckpoint, one's own),
validation_split and History on tiny networks."""

import math

import numpy as np
import pytest

from fastcnn import Network, callbacks, layers, schedules


def tiny(seed=0):
    return Network([layers.Dense(8, seed=seed), layers.ReLU(), layers.Dense(3, seed=seed + 1)]
                   ).use("softmax_cross_entropy")


def data(count=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, 4))
    return x, (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 1)


def test_cosine_and_step_follow_their_formulas():
    cosine = schedules.cosine(0.1, 4)
    assert [cosine(e) for e in range(4)] == pytest.approx(
        [0.1 * (1 + math.cos(math.pi * e / 4)) / 2 for e in range(4)])
    assert cosine(10) == cosine(3)
    step = schedules.step(1.0, 0.5, 2)
    assert [step(e) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert "cosine(initial=0.1, epochs=4)" in repr(cosine)


@pytest.mark.parametrize("make", [
    lambda: schedules.cosine(-1, 3), lambda: schedules.cosine(0.1, 0),
    lambda: schedules.step(0.1, 1.5, 2), lambda: schedules.step(0.1, 0.5, 0),
])
def test_bad_schedule_settings_are_refused(make):
    with pytest.raises(ValueError):
        make()


class Rates(callbacks.Callback):
    def __init__(self):
        self.rates = []

    def on_epoch_begin(self, epoch, logs=None):
        self.rates.append(self.network.learning_rate)


def test_fit_applies_a_schedule_per_epoch_and_a_callable_of_ones_own():
    x, y = data()
    for schedule in (schedules.step(0.1, 0.1, 1), lambda epoch: 0.1 / (epoch + 1)):
        seen = Rates()
        tiny().fit(x, y, 3, schedule, verbose=0, callbacks=[seen], seed=0)
        assert seen.rates == pytest.approx([schedule(e) for e in range(3)])


def test_a_schedule_is_the_same_as_fitting_epoch_by_epoch_with_its_rates():
    x, y = data()
    scheduled = tiny()
    scheduled.fit(x, y, 3, schedules.cosine(0.05, 3), shuffle=False, verbose=0)
    by_hand = tiny()
    for epoch in range(3):
        by_hand.fit(x, y, 1, schedules.cosine(0.05, 3)(epoch), shuffle=False, verbose=0)
    for a, b in zip(scheduled.get_weights(), by_hand.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_a_schedule_returning_garbage_is_refused_naming_the_epoch():
    x, y = data()
    with pytest.raises(ValueError, match="epoch 1"):
        tiny().fit(x, y, 3, lambda epoch: 0.1 if epoch == 0 else float("nan"), verbose=0)


class Recorder:
    """A plain object (no base class) with every callback method."""

    def __init__(self):
        self.calls = []

    def on_train_begin(self):
        self.calls.append("train_begin")

    def on_train_end(self):
        self.calls.append("train_end")

    def on_epoch_begin(self, epoch):
        self.calls.append(f"epoch_begin {epoch}")

    def on_epoch_end(self, epoch, logs):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

    def on_batch_begin(self, batch):
        self.calls.append(f"batch_begin {batch}")

    def on_batch_end(self, batch, logs):
        self.calls.append(f"batch_end {batch} {sorted(logs)}")


def test_callbacks_are_called_in_kerass_order():
    x, y = data(20)
    recorder = Recorder()
    tiny().fit(x, y, 2, 0.1, batch_size=10, verbose=0, callbacks=[recorder],
               validation_split=0.5)
    batch = ["batch_begin 0", "batch_end 0 ['correct', 'loss', 'size']"]
    epoch_end = "['accuracy', 'loss', 'val_accuracy', 'val_loss']"
    assert recorder.calls == (
        ["train_begin"]
        + ["epoch_begin 0"] + batch + [f"epoch_end 0 {epoch_end}"]
        + ["epoch_begin 1"] + batch + [f"epoch_end 1 {epoch_end}"]
        + ["train_end"]
    )


def test_validation_split_holds_out_the_last_samples_before_shuffling():
    x, y = data(50)
    split = tiny()
    history = split.fit(x, y, 2, 0.05, verbose=0, validation_split=0.2, seed=4)
    explicit = tiny()
    expected = explicit.fit(x[:40], y[:40], 2, 0.05, verbose=0, validation_data=(x[40:], y[40:]),
                            seed=4)
    assert history["val_loss"] == expected["val_loss"]
    with pytest.raises(ValueError, match="not both"):
        tiny().fit(x, y, 1, 0.1, validation_split=0.1, validation_data=(x, y), verbose=0)
    with pytest.raises(ValueError, match="validation_split"):
        tiny().fit(x, y, 1, 0.1, validation_split=1.0, verbose=0)


def test_history_offers_kerass_history_and_epoch():
    x, y = data()
    history = tiny().fit(x, y, 3, 0.1, verbose=0)
    assert history.history is history and history.history["loss"] == history["loss"]
    assert history.epoch == [0, 1, 2] and history.epochs == 3


class Stop(callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            self.network.stop_training = True


def test_a_callback_stops_training_cleanly_after_the_epoch():
    x, y = data()
    recorder = Recorder()
    history = tiny().fit(x, y, 10, 0.1, verbose=0, callbacks=[Stop(), recorder])
    assert history.epoch == [0, 1] and recorder.calls[-1] == "train_end"


class Feed(callbacks.Callback):
    """Makes fit log a chosen val_loss per epoch (the monitored value under test)."""

    def __init__(self, values):
        self.values = list(values)

    def on_epoch_end(self, epoch, logs=None):
        logs["val_loss"] = self.values[epoch]


def test_early_stopping_waits_patience_epochs_and_restores_the_best_weights():
    x, y = data()
    snapshots = []

    class Snapshot(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append(self.network.get_weights())

    stopper = callbacks.EarlyStopping(patience=2)
    network = tiny()
    history = network.fit(x, y, 20, 0.1, verbose=0,
                          callbacks=[Feed([5, 3, 4, 3.5, 2, 2.5]), Snapshot(), stopper])
    assert history.epoch == [0, 1, 2, 3]
    assert stopper.best == 3 and stopper.best_epoch == 1 and stopper.stopped_epoch == 3
    for a, b in zip(network.get_weights(), snapshots[1]):
        np.testing.assert_array_equal(a, b)


def test_early_stopping_min_delta_and_max_mode():
    x, y = data()
    stopper = callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=0.5)
    tiny().fit(x, y, 10, 0.1, verbose=0, callbacks=[Feed([3, 2.8, 1]), stopper])
    assert stopper.stopped_epoch == 1
    stopper = callbacks.EarlyStopping(monitor="accuracy", patience=0)
    assert stopper.mode == "max"


def test_early_stopping_without_the_monitored_value_says_what_is_logged():
    x, y = data()
    with pytest.raises(ValueError, match="val_loss.*validation"):
        tiny().fit(x, y, 2, 0.1, verbose=0, callbacks=[callbacks.EarlyStopping()])


def test_model_checkpoint_saves_only_improvements_atomically(tmp_path):
    x, y = data()
    path = tmp_path / "best.npz"
    saved = []

    class Spy(callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            saved.append(path.stat().st_mtime_ns if path.exists() else None)

    checkpoint = callbacks.ModelCheckpoint(path)
    network = tiny()
    network.fit(x, y, 3, 0.1, verbose=0, callbacks=[Feed([2, 3, 1]), checkpoint, Spy()])
    assert saved[0] is not None and saved[1] == saved[0] and saved[2] != saved[1]
    loaded = Network.load(path)
    for a, b in zip(loaded.get_weights(), network.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_model_checkpoint_fills_in_the_epoch(tmp_path):
    x, y = data()
    checkpoint = callbacks.ModelCheckpoint(tmp_path / "m-{epoch:02d}.npz", save_best_only=False)
    tiny().fit(x, y, 2, 0.1, verbose=0, callbacks=[checkpoint])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-01.npz", "m-02.npz"]
