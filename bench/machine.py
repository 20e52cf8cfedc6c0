"""What the report says about the machine: CPU, load, NumPy's BLAS and its settings."""

import os
import platform

import numpy

# OpenBLAS reads these when it loads: a forced core type or L2 size makes it run another
# kernel than the one it would pick for this CPU, so NumPy's figures would not be its own.
OPENBLAS_OVERRIDES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
CLEAN_COMMAND = "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/run.py"


def cpu_model():
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cpus():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count()


def load_average():
    try:
        return ", ".join(f"{load:.2f}" for load in os.getloadavg())
    except (AttributeError, OSError):  # not Unix
        return "unknown"


def openblas_overrides():
    """The OPENBLAS_OVERRIDES set in this process's environment: {name: value}."""
    return {name: os.environ[name] for name in OPENBLAS_OVERRIDES if name in os.environ}


def openblas_warning():
    """A Markdown sentence when OpenBLAS was loaded with overrides, else None."""
    overrides = openblas_overrides()
    if not overrides:
        return None
    settings = ", ".join(f"{name}={value}" for name, value in overrides.items())
    return (
        f"**{settings} was set**: OpenBLAS ran the kernel these name, not its own choice "
        f"for this CPU, so NumPy's figures are not its best. Run `{CLEAN_COMMAND}`."
    )


def blas_libraries(threadpoolctl):
    """One line per BLAS loaded in this process (threadpoolctl's threadpool_info: the
    library, its version, the kernel it chose for this CPU, its thread count, its file;
    NumPy's is the one inside NumPy's folders), or a sentence saying why it is unknown."""
    if threadpoolctl is None:
        return ["unknown (threadpoolctl is not installed)"]
    numpy_folder = os.path.dirname(numpy.__file__)  # wheels keep it in numpy.libs beside
    lines = []
    for pool in threadpoolctl.threadpool_info():
        if pool.get("user_api") != "blas":
            continue
        path = pool.get("filepath", "")
        owner = "NumPy's" if path.startswith(numpy_folder) else "also loaded"
        lines.append(
            f"{owner}: {pool.get('internal_api')} {pool.get('version')}, kernel "
            f"{pool.get('architecture', 'not reported')}, {pool.get('num_threads')} "
            f"thread(s) (`{os.path.basename(path)}`)"
        )
    return lines or ["none loaded"]
