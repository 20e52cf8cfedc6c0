"""fastcnn.augmentation: crop positions and flips, exact content, distribution, seeds,
and Network.fit(augment=...) applying them to training batches only."""

import numpy as np
import pytest

import fastcnn
from fastcnn.augmentation import Compose, RandomCrop, RandomHorizontalFlip


def numbered_images(count, channels=2, height=6, width=7, dtype=np.float64):
    """Images whose every pixel holds a distinct positive number (below 256 for these
    sizes): 1 + its flat index within the image's (H, W) plane, plus 100 per channel."""
    plane = 1 + np.arange(height * width).reshape(height, width)
    images = plane + 100 * np.arange(channels)[:, None, None]
    return np.broadcast_to(images, (count, channels, height, width)).astype(dtype)


def crop_offsets(crops, padding, width):
    """(top, left) in padded coordinates of each crop of numbered_images, found from its
    centre pixel (always inside the image for these sizes)."""
    h, w = crops.shape[-2:]
    centre = crops[:, 0, h // 2, w // 2].astype(np.int64) - 1
    return centre // width + padding - h // 2, centre % width + padding - w // 2


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
def test_crops_are_exact_windows_of_the_zero_padded_images(dtype):
    x = numbered_images(200, dtype=dtype)
    crops = RandomCrop(size=(5, 7), padding=2, seed=1)(x)
    assert crops.shape == (200, 2, 5, 7) and crops.dtype == x.dtype
    tops, lefts = crop_offsets(crops, 2, 7)
    padded = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for n in range(len(x)):  # the slow, obvious way, to check the vectorised one
        np.testing.assert_array_equal(
            crops[n], padded[n, :, tops[n] : tops[n] + 5, lefts[n] : lefts[n] + 7]
        )


def test_uint8_images_are_cropped_and_flipped_as_uint8():
    x = np.random.default_rng(0).integers(0, 256, (10, 3, 8, 8), dtype=np.uint8)
    out = Compose([RandomCrop(padding=2), RandomHorizontalFlip()])(x, np.random.default_rng(1))
    assert out.dtype == np.uint8 and out.shape == x.shape


def test_every_crop_position_is_reachable_and_about_equally_likely():
    x = numbered_images(9000, channels=1, height=8, width=8)
    crops = RandomCrop(padding=1, seed=5)(x)  # 3 x 3 positions
    assert crops.shape == x.shape
    tops, lefts = crop_offsets(crops, 1, 8)
    counts = np.zeros((3, 3), int)
    np.add.at(counts, (tops, lefts), 1)
    # 1000 expected in each; the standard deviation is about 30.
    assert counts.min() > 850 and counts.max() < 1150, counts


def test_default_crop_keeps_the_size_and_pads_by_four():
    crop = RandomCrop()
    assert crop.size is None and crop.padding == (4, 4)
    x = numbered_images(3000, channels=1, height=12, width=12)
    tops, lefts = crop_offsets(crop(x), 4, 12)
    assert set(tops) == set(range(9)) and set(lefts) == set(range(9))


def test_images_without_a_channel_axis_work():
    x = numbered_images(50, channels=1)[:, 0]
    crops = RandomCrop(size=3, padding=0, seed=0)(x)
    assert crops.shape == (50, 3, 3)
    flipped = RandomHorizontalFlip(p=1)(x)
    np.testing.assert_array_equal(flipped, x[:, :, ::-1])


def test_flips_of_a_known_array_are_exact():
    x = numbered_images(4)
    np.testing.assert_array_equal(RandomHorizontalFlip(p=1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(p=0.0)(x), x)


def test_flip_rate_is_near_p_and_each_image_is_either_kept_or_mirrored():
    x = numbered_images(10000, channels=1, height=2, width=3)
    out = RandomHorizontalFlip(p=0.3, seed=7)(x)
    mirrored = np.all(out == x[..., ::-1], axis=(1, 2, 3))
    kept = np.all(out == x, axis=(1, 2, 3))
    assert np.all(mirrored ^ kept)
    # The standard deviation of the rate is about 0.0046.
    assert abs(mirrored.mean() - 0.3) < 0.02


def test_the_input_is_not_modified():
    x = numbered_images(20)
    before = x.copy()
    Compose([RandomCrop(padding=2), RandomHorizontalFlip(p=1)])(x, np.random.default_rng(0))
    np.testing.assert_array_equal(x, before)


def test_seeds_reproduce_and_differ():
    x = numbered_images(64)
    augment = [RandomCrop(padding=2), RandomHorizontalFlip()]
    first = Compose(augment)(x, np.random.default_rng(3))
    again = Compose(augment)(x, np.random.default_rng(3))
    other = Compose(augment)(x, np.random.default_rng(4))
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    own = RandomCrop(padding=2, seed=11)(x)
    np.testing.assert_array_equal(own, RandomCrop(padding=2, seed=11)(x))


def test_compose_applies_each_transform_in_order_with_the_same_generator():
    x = numbered_images(30)
    crop, flip = RandomCrop(padding=1), RandomHorizontalFlip()
    rng = np.random.default_rng(9)
    expected = flip(crop(x, rng), rng)
    np.testing.assert_array_equal(Compose([crop, flip])(x, np.random.default_rng(9)), expected)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="size"):
        RandomCrop(size=0)
    with pytest.raises(ValueError, match="padding"):
        RandomCrop(padding=-1)
    with pytest.raises(ValueError, match=r"larger than the padded image 8x8"):
        RandomCrop(size=9, padding=1)(np.zeros((2, 1, 6, 6)))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        RandomHorizontalFlip()(np.zeros((2, 6)))
    with pytest.raises(TypeError, match="numeric"):
        RandomHorizontalFlip()(np.array([["a"]] * 2, dtype=object)[:, :, None])
    with pytest.raises(ValueError, match="probability"):
        RandomHorizontalFlip(p=1.5)
    with pytest.raises(TypeError, match="callable"):
        Compose([RandomCrop(), 3])


# ---------------------------------------------------------------------------- fit


class Recorder:
    """A transform that records the batches it is given and mirrors them all."""

    def __init__(self):
        self.batches = []

    def __call__(self, x, rng):
        self.batches.append(x.copy())
        return x[..., ::-1]


def small_network(seed=0):
    return fastcnn.Network(
        [fastcnn.Convolutional(2, 3, seed=seed), fastcnn.ReLU(), fastcnn.Flatten(),
         fastcnn.Dense(3, seed=seed)]
    ).use("softmax_cross_entropy")


def data():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (20, 1, 6, 6)).astype(np.uint8), rng.integers(0, 3, 20)


def test_fit_applies_augment_to_training_batches_only():
    x, y = data()
    recorder = Recorder()
    network = small_network()
    network.fit(x, y, epochs=2, learning_rate=0.01, batch_size=8, verbose=0, seed=1,
                augment=recorder, validation_data=(x[:5], y[:5]))
    assert [len(b) for b in recorder.batches] == [8, 8, 4] * 2
    assert all(b.dtype == np.float32 for b in recorder.batches)
    seen = np.concatenate(recorder.batches[:3])
    assert sorted(map(bytes, seen.astype(np.uint8))) == sorted(map(bytes, x))


def test_fit_with_augment_off_is_unchanged_and_with_a_seed_reproducible():
    x, y = data()
    plain = small_network().fit(x, y, epochs=2, learning_rate=0.01, batch_size=8, verbose=0,
                                seed=1)
    off = small_network().fit(x, y, epochs=2, learning_rate=0.01, batch_size=8, verbose=0,
                              seed=1, augment=None)
    assert plain["loss"] == off["loss"]
    runs = [
        small_network().fit(x, y, epochs=2, learning_rate=0.01, batch_size=8, verbose=0,
                            seed=1, augment=[RandomCrop(padding=1), RandomHorizontalFlip()])
        for _ in range(2)
    ]
    assert runs[0]["loss"] == runs[1]["loss"]
    assert runs[0]["loss"] != plain["loss"]


def test_fit_refuses_an_augment_that_is_not_a_transform():
    x, y = data()
    with pytest.raises(TypeError, match="augment"):
        small_network().fit(x, y, epochs=1, learning_rate=0.01, verbose=0, augment="flip")


def test_random_crop_pads_with_its_fill_value():
    from fastcnn.augmentation import RandomCrop

    x = np.full((200, 1, 4, 4), 7.0)
    crops = RandomCrop(padding=2, fill=-0.5, seed=0)(x)
    assert set(np.unique(crops)) == {-0.5, 7.0}
