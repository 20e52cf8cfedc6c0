// Every block size and threshold of the kernels, each with its reason.
//
// Sizes that follow the caches are computed at run time from cpu_caches()
// (cpu_caches.hpp) with the shares below, so one binary suits a 32 KB-L1 Xeon
// and a 48 KB-L1 EPYC alike. The convolution and pooling constants (namespace
// tuning) are for L1D 32–48 KB, L2 1–2 MB per core, 16 or 32 vector registers.
#pragma once

#include <cstdint>

namespace fastcnn {

// ---- GEMM and threads --------------------------------------------------------

// Pool workers spin this long after a call before they sleep: a training step's
// next kernel call comes sooner than that, and a futex wake-up costs ~50 µs.
constexpr int kSpinMicroseconds = 150;

// A thread joins a product only for this many float32 multiply-adds or more
// (float64 ones count double; ~5 µs of one core at 50 GFLOP/s), well above a
// spinning worker's start-up of ~1 µs.
constexpr int64_t kGemmMinThreadWork = int64_t(1) << 18;
// A product of fewer rows than this is paced by its loads of B (one vector of
// B per row's FMA, from L2 when B outgrows L1), each worth about this many
// rows of FMAs: a dense layer's forward at batch 1, 800 -> 120, takes 2 threads.
constexpr int64_t kGemmLoadBoundRows = 8;
// Work is cut into about this many chunks per thread, claimed as threads come
// free, so a preempted vCPU does not set the pace.
constexpr int64_t kGemmChunksPerThread = 4;

// kernels.matmul keeps the GIL below this many multiply-adds (about 1 µs of
// one core): releasing and retaking it costs ~0.1 µs, a tenth of such a call.
constexpr int64_t kGemmReleaseGilWork = int64_t(1) << 15;

// Register tiles of the packed path: MR rows × kGemmTileVectors vectors of
// accumulators. 12×2 zmm fill 24 of AVX-512's 32 registers (≥ 8 independent
// FMAs cover 4-cycle latency × 2 pipes, whether the pipes are 512 bits wide or
// pump 256 bits twice); 6×2 fill 12 of the 16 that AVX2 and SSE have.
constexpr int kGemmTileRows32Registers = 12;
constexpr int kGemmTileRows16Registers = 6;
constexpr int kGemmTileVectors = 2;

// Blocked (packed) GEMM. kc: the MR×kc micro-panel of A is reused from L1
// while B's micro-panels stream past it, so it takes 1/kGemmL1Share of L1.
constexpr int64_t kGemmL1Share = 2;
// kc stays in this range whatever L1 says: fewer and the C updates between
// kc-steps dominate, more and the B panel outgrows L2. A 32 KB L1 would give
// float64 kc = 160: measured on Zen 4 (32 KB L1, 1 thread), 1024³ float64 ran
// at 47.5 GF/s with it, 50.9 with 256 and 51.6 with 384 (float32: 99.7 ->
// 103.2); the A micro-panel then stays in L1 well enough, B streams from L2.
constexpr int64_t kGemmMinKC = 384;
constexpr int64_t kGemmMaxKC = 512;
// The kc×(column group) block of packed B is reread for every MR rows of A,
// from L2: it takes 1/kGemmL2Share of L2.
constexpr int64_t kGemmL2Share = 2;
// A packed MC×kc block of A is kept in L2 for the next column group: 1/4 of L2.
constexpr int64_t kGemmL2ShareA = 4;
// The whole packed kc×NC panel of B lives in L3: 1/kGemmL3Share of it.
constexpr int64_t kGemmL3Share = 2;

// Unpacked ("small") GEMM: A is broadcast from its rows and B's rows are read
// in place, so nothing is packed. Products with a side this short (or this
// little work) gain nothing from packing: a packed panel would be used by at
// most kGemmSmallMaxSide rows or columns, or hold at most that many k-steps.
constexpr int64_t kGemmSmallMaxSide = 128;
constexpr int64_t kGemmSmallMaxWork = int64_t(1) << 21;
// The unpacked path's kc×(block of columns) of B is reused from L2 by every
// row tile: 1/kGemmL2Share of L2, so k is split only beyond ~2000 (1 MB L2).
// Its blocks of columns are this many zmm wide: 6 rows × 4 vectors fill 24 of
// AVX-512's 32 registers (AVX2 and SSE, with 16, go 2 vectors wide).
constexpr int kGemmSmallMaxVectors = 4;
// Its row tiles: 8 rows 1 or 2 vectors wide (8–16 accumulators, 6 × 2 with 16
// registers), 6 rows 3 or 4 vectors wide (18–24).
constexpr int kGemmSmallRowsNarrow = 8;
constexpr int kGemmSmallRowsWide = 6;
// A product of one row (a batch of one) sums its k in this many interleaved
// accumulators, added pairwise at the end: FMA latency (4 cycles) × 2 pipes
// would leave one chain at 1/8 of the FMA rate; 4 chains are as fast as the
// loads of B (one row of B per step) allow.
constexpr int kGemmRowSplits = 4;
// Dot path (a few rows of A against Bᵀ read in place, lanes over k): taken
// when m·(k/L + kGemmDotLaneSumCost) ≤ k, i.e. when its loads of Bᵀ (k/L per
// row and column) plus the sum across lanes (2(L−1) shuffles per L columns,
// about 2 per column) cost less than copying B once (k per column, scalar).
constexpr int64_t kGemmDotLaneSumCost = 2;
// Its threads claim one row × this many vectors of columns at a time.
constexpr int64_t kGemmDotColumnVectors = 4;

namespace tuning {

// ---- memory ------------------------------------------------------------------

// retain_freed_memory(): arrays up to this size come from the heap, not from
// their own mapping (glibc's largest allowed value, 32 MiB on 64-bit; a VGG
// activation at batch 128 is 16 MiB)...
constexpr int kMallocMmapThreshold = 32 << 20;
// ...and the heap keeps up to this much free memory at its top before giving it
// back: a training step's activations and gradients, several times over.
constexpr int kMallocTrimThreshold = 256 << 20;

// ---- convolution and pooling -------------------------------------------------

// A task computes at least this many multiply-adds (3–4 µs of one core in
// the direct kernels, 35–45 G/s), so handing it to a spinning pool worker
// (1–2 µs to start) pays; then one image of a layer splits over threads when
// it is small: at N = 1, 004b's 1.3 M multiply-adds per pass run in 11–18 µs
// on 2 threads against 17–23 µs on one, while 002's 40 k stay on one thread.
constexpr int64_t kConvMinTaskWork = int64_t(1) << 17;
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
