import numpy as np
import pytest

# Relative tolerance per dtype. A sum of many terms can lose more than that relative
# to its own value when the terms cancel, so the bound is taken relative to the sum of
# the terms' magnitudes (the same kernel applied to absolute values), not to the result.
TOLERANCE = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def _assert_close(actual, expected, magnitude):
    """Elementwise |actual - expected| <= tol * (|expected| + magnitude), tol by dtype."""
    actual = np.asarray(actual)
    assert actual.shape == np.shape(expected), f"shape {actual.shape} != {np.shape(expected)}"
    tolerance = TOLERANCE[actual.dtype]
    expected = np.asarray(expected, dtype=np.float64)
    error = np.abs(actual.astype(np.float64) - expected)
    allowed = tolerance * (np.abs(expected) + np.asarray(magnitude, dtype=np.float64))
    if actual.size and not np.all(error <= allowed):
        worst = tuple(int(i) for i in np.unravel_index(np.argmax(error - allowed), actual.shape))
        pytest.fail(
            f"{np.count_nonzero(~(error <= allowed))} of {actual.size} elements differ; "
            f"max error {error.max():.3g}, worst at {worst}: got {float(actual[worst])!r}, "
            f"expected {float(expected[worst])!r} (allowed error {allowed[worst]:.3g})"
        )


@pytest.fixture(scope="session")
def assert_close():
    """The tolerance check shared by the kernel tests (session-scoped for Hypothesis)."""
    return _assert_close


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


def pytest_configure(config):
    # Hypothesis writes a patch for each failing example with libcst, whose import
    # warns under newer mypy_extensions; as an error that would abort the whole run.
    config.addinivalue_line(
        "filterwarnings", "ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning"
    )
