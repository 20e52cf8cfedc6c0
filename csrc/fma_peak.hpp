// This host's floating-point peak, measured: the yardstick the benchmarks
// divide each kernel's GFLOP/s by.
#pragma once

namespace fastcnn {

// GFLOP/s of `threads` threads each running independent fused multiply-adds
// on registers only (no memory traffic) for about `seconds`, in float32
// (double_precision = false) or float64, on the active SIMD path. Enough
// accumulators are kept in flight to cover every FMA unit's latency.
double fma_peak(bool double_precision, int threads, double seconds);

}  // namespace fastcnn
