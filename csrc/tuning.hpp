// Block sizes and thresholds of the kernels, in one place, each with the
// reason for its value. Figures are for the machines fastcnn is tuned on
// (L1D 32–48 KB, L2 1–2 MB per core, 16 or 32 vector registers).
#pragma once

#include <cstdint>

namespace fastcnn {
namespace tuning {

// ---- convolution and pooling -------------------------------------------------

// A task computes at least this many multiply-adds (about 100 µs at one
// core's pace), so waking a thread for it pays for itself.
constexpr int64_t kConvMinTaskWork = int64_t(1) << 20;
// Up to this many multiply-adds per output value (C·kh·kw), the direct forward
// kernel wins; beyond it a tile's weights outgrow L1 and im2col + gemm wins.
constexpr int64_t kDirectMaxPatch = 4096;
// The im2col buffer of one task stays within this many bytes (unless a single
// output row needs more): a few blocks of it stay in L2 while gemm runs.
constexpr int64_t kColumnBytes = int64_t(4) << 20;
// The weight gradient sums the batch in at most this many blocks, each into
// its own partial (thread count independent, so results are too), and the
// partials together stay within kPartialBytes.
constexpr int64_t kMaxWeightBlocks = 8;
constexpr int64_t kPartialBytes = int64_t(16) << 20;
// The direct weight gradient (lanes over output columns) loads images in
// groups of this many bytes, summed in registers before one sum across lanes.
constexpr int64_t kDirectGroupBytes = int64_t(4) << 20;
// The weight gradient with lanes over filters walks the output pixels in bands of rows whose
// transposed grad_y and padded input together fit in half of L2, so each
// register tile rereads them from L2, not memory.
constexpr int64_t kWeightBandBytes = int64_t(512) << 10;
// The weight gradient with lanes over filters replaces the direct one (lanes
// over output columns) when its share of useful lanes is at least this
// fraction of the direct one's. Measured (1 thread, AVX-512) on the write-up
// layers: F = 6 at Wo = 28 (0.375 against 0.875) runs 1.5x slower with lanes
// over filters, F = 20 at Wo = 16 (0.625 against 1) 1.2x slower, F = 32 at
// Wo = 10 (1 against 0.625) 2x faster.
constexpr double kWeightLaneShare = 0.75;
// Forward outputs narrower than this many columns may take lanes over filters
// (conv_narrow.hpp): a vector of 16 floats holds the whole row already.
constexpr int64_t kNarrowMaxWidth = 16;
// Element-wise kernels (relu_backward) hand a thread at least this many
// elements: about 50 µs of memory traffic, a thread wake-up's worth.
constexpr int64_t kElementwiseMinTask = int64_t(1) << 16;
// Pooling: planes handed to one task hold at least this many window elements.
constexpr int64_t kPoolMinTaskWork = 32768;

}  // namespace tuning
}  // namespace fastcnn
