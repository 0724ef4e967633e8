// The float GEMM behind every linear layer:  C (M, N) (+)= A (M, K) . B (K, N),  strided operands.
//
// Algorithm (a blocked GEMM in the style of Goto and van de Geijn's papers), general case:
//
//   for each block of KC steps of the reduction (pc), in increasing order:
//     for each block of NC columns of C (jc):
//       pack B[pc:pc+KC, jc:jc+NC] into NR-wide micro-panels       (kept in L2)
//       for each block of MC rows of C (ic):
//         pack A[ic:ic+MC, pc:pc+KC] into MR-tall micro-panels     (a small block, in L2 too)
//         for each MR-row micro-panel of A (ir):                   (one A micro-panel in L1)
//           for each NR-column micro-panel of B (jr):
//             micro-kernel: the MR x NR tile of C (+)= A_micro (MR x KC) . B_micro (KC x NR)
//
// Each element of B is packed once per call and each element of A once per NC columns (once when
// C is narrow), so packing stays a few percent of the 2 M N K FLOPs even when N (the lm_head's
// vocabulary) or M is large; C is read and written once per KC block. The one exception is a
// narrow C with a short reduction (N <= NC and K <= M: dinp, K a layer's width and M the tokens):
// there all of B is packed up front and the blocks of rows go outermost, each taking all its KC
// blocks while its rows of C sit in L2 (same order of sums, see gemm_block).
//
// Packing copies the operands into contiguous, zero-padded buffers in exactly the order the
// micro-kernel reads them, so the strides (transposed operands) are dealt with once, here, and
// the kernel reads two unit-stride streams. A row-major A (activations in forward, dout in dinp)
// is the exception: the kernel broadcasts its values straight from MR rows of A (only a partial
// last micro-panel is packed), since a broadcast needs no contiguity; this saves the transposing
// copy, about 5% of the laptop preset's training step under perf (see read_a_in_place).
// The micro-kernel keeps the MR x NR tile of C in vector registers for the whole KC loop: per
// step k it loads one row of B_micro (NR floats), broadcasts the MR values of column k of A_micro
// and issues MR * NR / lanes FMAs.
//
// Determinism: every C element is the sum, in increasing k, of its products, accumulated per KC
// block in one register (one FMA per k) and added to C block after block, in pc order. KC is a
// constant, so this order does not depend on the thread count, the tile position or whether the
// tile is an edge tile. C is split into disjoint rectangles (never K) handed out to the threads;
// each runs the whole blocked algorithm on its rectangle with its own packing buffers: no sharing,
// no barriers. Results are bitwise identical for any number of threads.
#include "ops/matmul.h"

#include <omp.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 shuffle intrinsics start from _mm512_undefined_ps(), which -Wmaybe-uninitialized
// reports once inlined here; the values are fully defined.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace sinklab {
namespace {

// ---- register blocking: the micro-tile of C held in registers -------------------------------
#if defined(__AVX512F__)
// 32 zmm registers: 14 rows x 2 vectors of 16 = 28 accumulators, 2 for the row of B, the A
// values come in as embedded broadcasts. Per k: 2 vector loads, 14 broadcasts, 28 FMAs.
constexpr size_t kMR = 14;
constexpr size_t kNR = 32;
#elif defined(__AVX2__) && defined(__FMA__)
// 16 ymm registers: 6 rows x 2 vectors of 8 = 12 accumulators, 2 for B, 1 for the broadcast.
constexpr size_t kMR = 6;
constexpr size_t kNR = 16;
#else
// Portable: a small tile the compiler can keep in registers and auto-vectorise over NR.
constexpr size_t kMR = 4;
constexpr size_t kNR = 16;
#endif

// ---- cache blocking, for a Zen 4 / Ice Lake class core: 32 KiB L1d, 1-2 MiB L2 per core -------
// KC: one A micro-panel, MR x KC floats = 14 x 256 x 4 B = 14 KiB, stays in L1 while the kernel
//     sweeps the B panel; long enough that loading and storing the C tile (once per KC) is
//     negligible next to the 2 MR NR KC FLOPs of a call.
// NC: the packed B panel, KC x NC floats = 256 x 512 x 4 B = 512 KiB, stays in L2 while all the
//     A micro-panels of the block go past it (half of a 1 MiB L2, the rest for A and C lines).
// MC: rows of A packed at once, about 144 (MC x KC x 4 B = 144 KiB): the A block is packed right
//     before use and read back from L2, beside the B panel. Measured on the weight gradients (A
//     transposed, so packed) with AVX2 on a Zen 5, one thread: 144 rows up to 8% (median 4%) faster
//     than the 876 used before (then B was repacked once per MC rows), 288 rows 2-6% slower than
//     876, 72 slower on the narrow ones.
// MC of the whole-B order (N <= NC, K <= M): 12 micro-panels (168 rows with AVX-512, 72 with
//     AVX2), next to the MC x N block of C that stays in L2 while all of B goes past.
// KC is the only constant that shapes the arithmetic (the order of the sums); MC and NC are free.
constexpr size_t kKC = 256;
constexpr size_t kNC = 512;
constexpr size_t kMC = (144 + kMR - 1) / kMR * kMR;
constexpr size_t kMCWholeB = 12 * kMR;
static_assert(kNC % kNR == 0 && kMC % kMR == 0 && kMCWholeB % kMR == 0, "blocks must be whole micro-panels");

constexpr size_t kAlign = 64;

size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

// Asks for the cache lines of n contiguous floats.
inline void prefetch_run(const float* p, size_t n) {
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
    for (size_t i = 0; i < n; i += 16) _mm_prefetch(reinterpret_cast<const char*>(p + i), _MM_HINT_T0);
#else
    (void)p;
    (void)n;
#endif
}

#if defined(__AVX512F__)
// Transposes 16 x 16 floats in registers: r[i] = row i on entry, r[j] = column j on exit.
inline void transpose16x16(__m512 r[16]) {
    __m512 t[16];
    // 1. interleave row pairs (i, i+1), per 128-bit lane L:  t[i] = a0 b0 a1 b1,  t[i+1] = a2 b2 a3 b3
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    // 2. interleave pairs of pairs as 64-bit values: r[g + c], lane L = rows g..g+3 of column 4L + c
    for (int g = 0; g < 16; g += 4) {
        const __m512d t0 = _mm512_castps_pd(t[g]), t1 = _mm512_castps_pd(t[g + 1]);
        const __m512d t2 = _mm512_castps_pd(t[g + 2]), t3 = _mm512_castps_pd(t[g + 3]);
        r[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        r[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        r[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        r[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    // 3. gather lane L of the four groups: column 4L + c = (r[c].L, r[4+c].L, r[8+c].L, r[12+c].L)
    for (int c = 0; c < 4; c++) {
        const __m512 u0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x88);       // r[c].L0 L2, r[4+c].L0 L2
        const __m512 u1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xDD);       // r[c].L1 L3, r[4+c].L1 L3
        const __m512 v0 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x88);
        const __m512 v1 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xDD);
        t[c] = _mm512_shuffle_f32x4(u0, v0, 0x88);       // L = 0
        t[8 + c] = _mm512_shuffle_f32x4(u0, v0, 0xDD);   // L = 2
        t[4 + c] = _mm512_shuffle_f32x4(u1, v1, 0x88);   // L = 1
        t[12 + c] = _mm512_shuffle_f32x4(u1, v1, 0xDD);  // L = 3
    }
    for (int j = 0; j < 16; j++) r[j] = t[j];
}

// The panel of W rows (rows <= W valid, the rest zero) of X[r * rs + k], k < kc, as
// dst[k * W + r], 16 k at a time; returns the k where the caller's scalar loop takes over.
template <size_t W>
size_t transpose_into_panel(size_t rows, size_t kc, const float* X, size_t rs, float* dst) {
    size_t k0 = 0;
    for (; k0 + 16 <= kc; k0 += 16)
        for (size_t g = 0; g < W; g += 16) {  // 16 rows at a time (W = 14: one masked group)
            __m512 r[16];
            for (size_t i = 0; i < 16; i++)
                r[i] = g + i < rows ? _mm512_loadu_ps(X + (g + i) * rs + k0) : _mm512_setzero_ps();
            transpose16x16(r);
            const size_t width = std::min<size_t>(16, W - g);
            const __mmask16 mask = __mmask16((1u << width) - 1u);
            for (size_t c = 0; c < 16; c++) _mm512_mask_storeu_ps(dst + (k0 + c) * W + g, mask, r[c]);
        }
    return k0;
}
#elif defined(__AVX2__) && defined(__FMA__)
// The lanes i < n of an AVX2 mask (for maskload / maskstore).
inline __m256i first_lanes(size_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(n)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Transposes 8 x 8 floats in registers: r[i] = row i on entry, r[j] = column j on exit.
inline void transpose8x8(__m256 r[8]) {
    __m256 t[8], u[8];
    // 1. interleave row pairs (i, i+1), per 128-bit half:  t[i] = a0 b0 a1 b1,  t[i+1] = a2 b2 a3 b3
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    // 2. four rows g..g+3 of column c in the low half, of column c + 4 in the high half: u[g + c]
    for (int g = 0; g < 8; g += 4) {
        u[g] = _mm256_shuffle_ps(t[g], t[g + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
    // 3. join the halves of rows 0-3 and rows 4-7
    for (int c = 0; c < 4; c++) {
        r[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        r[c + 4] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

// As the AVX-512 version above, 8 k at a time through 8 x 8 blocks.
template <size_t W>
size_t transpose_into_panel(size_t rows, size_t kc, const float* X, size_t rs, float* dst) {
    size_t k0 = 0;
    for (; k0 + 8 <= kc; k0 += 8)
        for (size_t g = 0; g < W; g += 8) {  // 8 rows at a time (W = 6: one masked group)
            __m256 r[8];
            for (size_t i = 0; i < 8; i++)
                r[i] = g + i < rows ? _mm256_loadu_ps(X + (g + i) * rs + k0) : _mm256_setzero_ps();
            transpose8x8(r);
            const size_t width = std::min<size_t>(8, W - g);
            if (width == 8) {
                for (size_t c = 0; c < 8; c++) _mm256_storeu_ps(dst + (k0 + c) * W + g, r[c]);
            } else {
                const __m256i mask = first_lanes(width);
                for (size_t c = 0; c < 8; c++) _mm256_maskstore_ps(dst + (k0 + c) * W + g, mask, r[c]);
            }
        }
    return k0;
}
#endif

// ---- packing -----------------------------------------------------------------------------------
// Both operands are packed the same way: a block of n "rows" by kc reduction steps of a strided
// matrix X[r * rs + k * ks] becomes panels of W rows (W = MR for A, NR for B), each panel stored
// k-major so that the micro-kernel reads W consecutive values per step:
//   packed[(r / W) * W * kc + k * W + r % W] = X[r * rs + k * ks],   rows past n are zero.
// A block: X = A, rows = m (rs = a_row, ks = a_col).  B block: X = B, rows = n (rs = b_col, ks = b_row).
template <size_t W>
void pack_panels(size_t n, size_t kc, const float* X, size_t rs, size_t ks, float* packed) {
    if (rs == 1) {
        // The rows of one k are contiguous (dout^T in dweight, a row-major B): walk k, copy n
        // consecutive floats into the n / W panels. Each k is a new memory line far from the last,
        // which the hardware prefetcher does not follow: ask for the line a few steps ahead.
        constexpr size_t kAhead = 4;
        for (size_t k = 0; k < kc; k++) {
            if (k + kAhead < kc) prefetch_run(X + (k + kAhead) * ks, n);
            const float* src = X + k * ks;
            for (size_t p = 0; p < n; p += W) {
                const size_t rows = std::min(W, n - p);
                float* dst = packed + p * kc + k * W;
#if defined(__AVX512F__)
                // W floats in vectors of 16: masked loads read only the valid rows and zero the rest.
                for (size_t i = 0; i < W; i += 16) {
                    const size_t valid = rows > i ? std::min<size_t>(16, rows - i) : 0;
                    const __mmask16 load_mask = __mmask16((1u << valid) - 1u);
                    const __mmask16 store_mask = __mmask16((1u << std::min<size_t>(16, W - i)) - 1u);
                    _mm512_mask_storeu_ps(dst + i, store_mask, _mm512_maskz_loadu_ps(load_mask, src + p + i));
                }
#elif defined(__AVX2__) && defined(__FMA__)
                // W floats in vectors of 8. Masked loads (vmaskmovps) made packing dout^T slow (AVX2 on
                // Zen 5: the dweight GEMMs 5-8% slower), so 8 lanes that all lie inside the block are a
                // plain load, even when the last ones are the next panel's rows (W = 6): those lanes are
                // stored into the next k's slot of this panel, which the next k overwrites. Only the
                // block's last rows (zeroing the rest) and the panel's last k are masked.
                for (size_t i = 0; i < W; i += 8) {
                    const size_t valid = rows > i ? std::min<size_t>(8, rows - i) : 0;
                    const __m256 v = p + i + 8 <= n ? _mm256_loadu_ps(src + p + i)
                                                    : _mm256_maskload_ps(src + p + i, first_lanes(valid));
                    if (W - i >= 8 || k + 1 < kc) _mm256_storeu_ps(dst + i, v);
                    else _mm256_maskstore_ps(dst + i, first_lanes(W - i), v);
                }
#else
                for (size_t i = 0; i < rows; i++) dst[i] = src[p + i];
                for (size_t i = rows; i < W; i++) dst[i] = 0.0f;
#endif
            }
        }
        return;
    }
    // Otherwise walk each row along k (row-major A, the transposed weight as B). Rows are short runs
    // (kc floats) far apart: fetch the same row of the next panel while this one is copied.
    for (size_t p = 0; p < n; p += W) {
        const size_t rows = std::min(W, n - p);
        float* dst = packed + p * kc;
        if (ks == 1)
            for (size_t i = 0; i < rows && p + W + i < n; i++) prefetch_run(X + (p + W + i) * rs, kc);
        size_t k0 = 0;
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
        // Unit stride along k: a panel is a transpose. Move 16 x 16 (AVX2: 8 x 8) blocks through registers.
        if (ks == 1) k0 = transpose_into_panel<W>(rows, kc, X + p * rs, rs, dst);
#endif
        for (size_t i = 0; i < rows; i++) {
            const float* src = X + (p + i) * rs;
            for (size_t k = k0; k < kc; k++) dst[k * W + i] = src[k * ks];
        }
        for (size_t i = rows; i < W; i++)
            for (size_t k = k0; k < kc; k++) dst[k * W + i] = 0.0f;
    }
}

// ---- micro-kernel ------------------------------------------------------------------------------
// C tile (R x NR, leading dimension ldc) (+)= A panel (R x kc) . b (packed kc x NR), R = kRows <= MR
// (MR, but for the last, partial panel of a block: one kernel per row count, see rows_kernel).
//   acc[i][j] = sum_k A(i, k) b[k NR + j]   (k increasing, one FMA each, starting from 0)
//   add: C[i, j] += acc[i][j],  else C[i, j] = acc[i][j]
// The A panel is packed, A(i, k) = a[k MR + i], or (kDirect) read in place from a row-major A,
// A(i, k) = a[i lda + k]: the same values in the same order, so the result is the same.
#if defined(__AVX512F__)
template <bool kDirect, size_t kRows = kMR>
void micro_kernel(size_t kc, const float* __restrict a, size_t lda, const float* __restrict b,
                  float* __restrict c, size_t ldc, bool add) {
    __m512 acc0[kRows], acc1[kRows];  // every loop over i fully unrolled: the arrays live in registers
#pragma GCC unroll 14
    for (size_t i = 0; i < kRows; i++) {
        acc0[i] = acc1[i] = _mm512_setzero_ps();
        // The C tile is read at the end: start bringing its two cache lines per row in now.
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
    }
    for (size_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(b);
        const __m512 b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 14
        for (size_t i = 0; i < kRows; i++) {
            const __m512 ai = _mm512_set1_ps(kDirect ? a[i * lda] : a[i]);
            acc0[i] = _mm512_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm512_fmadd_ps(ai, b1, acc1[i]);
        }
        a += kDirect ? 1 : kMR;
        b += kNR;
    }
#pragma GCC unroll 14
    for (size_t i = 0; i < kRows; i++) {
        float* ci = c + i * ldc;
        if (add) {
            acc0[i] = _mm512_add_ps(_mm512_loadu_ps(ci), acc0[i]);
            acc1[i] = _mm512_add_ps(_mm512_loadu_ps(ci + 16), acc1[i]);
        }
        _mm512_storeu_ps(ci, acc0[i]);
        _mm512_storeu_ps(ci + 16, acc1[i]);
    }
}
#elif defined(__AVX2__) && defined(__FMA__)
template <bool kDirect, size_t kRows = kMR>
void micro_kernel(size_t kc, const float* __restrict a, size_t lda, const float* __restrict b,
                  float* __restrict c, size_t ldc, bool add) {
    __m256 acc0[kRows], acc1[kRows];  // every loop over i fully unrolled: the arrays live in registers
#pragma GCC unroll 6
    for (size_t i = 0; i < kRows; i++) {
        acc0[i] = acc1[i] = _mm256_setzero_ps();
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);  // the C tile, read at the end
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 8), _MM_HINT_T0);
    }
    for (size_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(b);
        const __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
        for (size_t i = 0; i < kRows; i++) {
            const __m256 ai = _mm256_broadcast_ss(kDirect ? a + i * lda : a + i);
            acc0[i] = _mm256_fmadd_ps(ai, b0, acc0[i]);
            acc1[i] = _mm256_fmadd_ps(ai, b1, acc1[i]);
        }
        a += kDirect ? 1 : kMR;
        b += kNR;
    }
#pragma GCC unroll 6
    for (size_t i = 0; i < kRows; i++) {
        float* ci = c + i * ldc;
        if (add) {
            acc0[i] = _mm256_add_ps(_mm256_loadu_ps(ci), acc0[i]);
            acc1[i] = _mm256_add_ps(_mm256_loadu_ps(ci + 8), acc1[i]);
        }
        _mm256_storeu_ps(ci, acc0[i]);
        _mm256_storeu_ps(ci + 8, acc1[i]);
    }
}
#else
template <bool kDirect, size_t kRows = kMR>
void micro_kernel(size_t kc, const float* __restrict a, size_t lda, const float* __restrict b,
                  float* __restrict c, size_t ldc, bool add) {
    float acc[kRows][kNR] = {};
    for (size_t k = 0; k < kc; k++) {
        for (size_t i = 0; i < kRows; i++)
            for (size_t j = 0; j < kNR; j++) acc[i][j] += (kDirect ? a[i * lda] : a[i]) * b[j];
        a += kDirect ? 1 : kMR;
        b += kNR;
    }
    for (size_t i = 0; i < kRows; i++)
        for (size_t j = 0; j < kNR; j++) c[i * ldc + j] = add ? c[i * ldc + j] + acc[i][j] : acc[i][j];
}
#endif

// The last, partial panel of a block (rows < MR, always packed) over full NR columns: the kernel of
// exactly that many rows, straight into C (one instantiation per row count, picked from a table).
template <size_t... kRowsMinus1>
constexpr auto partial_row_kernels(std::index_sequence<kRowsMinus1...>) {
    return std::array{&micro_kernel<false, kRowsMinus1 + 1>...};
}
void rows_kernel(size_t rows, size_t kc, const float* a, const float* b, float* c, size_t ldc, bool add) {
    static constexpr auto kernels = partial_row_kernels(std::make_index_sequence<kMR>{});
    kernels[rows - 1](kc, a, 0, b, c, ldc, add);
}

// An edge tile (cols < NR, rows <= MR): run the full kernel into a scratch tile, then add or copy
// the valid part. The padded rows and columns of the packed panels are zero and are dropped here.
template <bool kDirect>
void edge_kernel(size_t kc, const float* a, size_t lda, const float* b, float* c, size_t ldc, bool add,
                 size_t rows, size_t cols) {
    alignas(kAlign) float tile[kMR * kNR];
    micro_kernel<kDirect>(kc, a, lda, b, tile, kNR, false);
    for (size_t i = 0; i < rows; i++)
        for (size_t j = 0; j < cols; j++) c[i * ldc + j] = add ? c[i * ldc + j] + tile[i * kNR + j] : tile[i * kNR + j];
}

// Per-thread packing buffers, kept for the next call (OpenMP reuses its threads). The B buffer
// grows on demand (to hold all of a narrow B in the whole-B order, see gemm_block).
struct PackBuffers {
    float* a = nullptr;  // one A block: MC (or the whole-B order's MC) x KC
    float* b = nullptr;  // b_floats: KC x NC, or K x N in the whole-B order
    size_t b_floats = 0;
    PackBuffers() { a = allocate(std::max(kMC, kMCWholeB) * kKC); }
    ~PackBuffers() {
        release(a);
        release(b);
    }
    float* b_buffer(size_t floats) {
        if (floats > b_floats) {
            release(b);
            b = allocate(floats);
            b_floats = floats;
        }
        return b;
    }
    static float* allocate(size_t floats) {
        return static_cast<float*>(::operator new(floats * sizeof(float), std::align_val_t(kAlign)));
    }
    static void release(float* p) {
        if (p) ::operator delete(p, std::align_val_t(kAlign));
    }
    PackBuffers(const PackBuffers&) = delete;
    PackBuffers& operator=(const PackBuffers&) = delete;
};

// A block of A (mc x kc) as the micro-kernel reads it: either read in place from a row-major A
// (direct != nullptr, row stride lda), with only the last, partial micro-panel packed; or packed
// whole into `packed` (panel ir at packed + ir kc).
struct ABlock {
    const float* direct = nullptr;
    size_t lda = 0;
    const float* packed = nullptr;
};

// Row-major A (unit stride along k) need not be packed: the kernel broadcasts A(i, k) from 14 rows
// lda apart as easily as from a packed panel, and a block of rows is read many times from L1/L2
// either way. Except when those 14 rows fall into few L1 sets: a row stride that is a multiple of
// 32 cache lines (512 floats, 2 KiB) puts them into at most 2 of the 64 sets (8 ways each), and
// the rows would evict each other. (A 32 KiB, 8-way L1 of 64 sets is assumed; elsewhere it is only
// a little slower.)
bool read_a_in_place(size_t a_row, size_t a_col) { return a_col == 1 && a_row % 512 != 0; }

ABlock prepare_a_block(size_t mc, size_t kc, const float* A, size_t a_row, size_t a_col, float* buffer) {
    ABlock block;
    block.packed = buffer;
    if (read_a_in_place(a_row, a_col)) {
        block.direct = A;
        block.lda = a_row;
        const size_t full = mc / kMR * kMR;
        if (full < mc) pack_panels<kMR>(mc - full, kc, A + full * a_row, a_row, a_col, buffer + full * kc);
    } else {
        pack_panels<kMR>(mc, kc, A, a_row, a_col, buffer);
    }
    return block;
}

// One micro-panel of A (rows <= MR, packed or in place, see micro_kernel) times a packed B panel
// (kc x nc) into the rows of C (leading dimension ldc): one tile per NR columns.
template <bool kDirect>
void multiply_panel(size_t rows, size_t nc, size_t kc, const float* a_panel, size_t lda, const float* b_packed,
                    float* C, size_t ldc, bool add) {
    for (size_t jr = 0; jr < nc; jr += kNR) {
        const size_t cols = std::min(kNR, nc - jr);
        if (rows == kMR && cols == kNR)
            micro_kernel<kDirect>(kc, a_panel, lda, b_packed + jr * kc, C + jr, ldc, add);
        else if (!kDirect && cols == kNR)  // a partial panel is always packed (prepare_a_block)
            rows_kernel(rows, kc, a_panel, b_packed + jr * kc, C + jr, ldc, add);
        else
            edge_kernel<kDirect>(kc, a_panel, lda, b_packed + jr * kc, C + jr, ldc, add, rows, cols);
    }
}

// All the micro-tiles of a block of A (mc x kc) times a packed B panel (kc x nc) into
// C (mc x nc, leading dimension ldc).
void multiply_packed(size_t mc, size_t nc, size_t kc, const ABlock& a, const float* b_packed, float* C,
                     size_t ldc, bool add) {
    for (size_t ir = 0; ir < mc; ir += kMR) {
        const size_t rows = std::min(kMR, mc - ir);
        if (a.direct != nullptr && rows == kMR)  // a partial last panel is always packed
            multiply_panel<true>(rows, nc, kc, a.direct + ir * a.lda, a.lda, b_packed, C + ir * ldc, ldc, add);
        else
            multiply_panel<false>(rows, nc, kc, a.packed + ir * kc, 0, b_packed, C + ir * ldc, ldc, add);
    }
}

// All of a narrow B (N <= NC) is packed up front when it has at most this many floats.
constexpr size_t kMaxWholeBFloats = size_t(4) << 20;  // 16 MiB

// The whole blocked algorithm on one rectangle of C, single-threaded.
void gemm_block(size_t M, size_t N, size_t K, const float* A, size_t a_row, size_t a_col, const float* B,
                size_t b_row, size_t b_col, float* C, size_t ldc, bool accumulate) {
    static thread_local PackBuffers buffers;
    const size_t n_round = round_up(N, kNR);
    if (N <= kNC && K <= M && n_round * K <= kMaxWholeBFloats) {
        // Narrow C, short reduction (dinp: K is a layer's width, M the tokens): pack all of B, KC
        // block pc at offset pc * n_round, then give each block of MC rows all its KC blocks in a
        // row, in increasing pc, so that the C block (MC x N) stays in L2 between them instead of
        // streaming through memory K / KC times. B (no larger than those rows of C) is read once
        // per MC rows, from L2 or L3.
        float* b_packed = buffers.b_buffer(n_round * K);
        for (size_t pc = 0; pc < K; pc += kKC)
            pack_panels<kNR>(N, std::min(kKC, K - pc), B + pc * b_row, b_col, b_row, b_packed + pc * n_round);
        for (size_t ic = 0; ic < M; ic += kMCWholeB) {
            const size_t mc = std::min(kMCWholeB, M - ic);
            for (size_t pc = 0; pc < K; pc += kKC) {
                const size_t kc = std::min(kKC, K - pc);
                const bool add = accumulate || pc > 0;  // the first KC block overwrites unless accumulating
                const ABlock a = prepare_a_block(mc, kc, A + ic * a_row + pc * a_col, a_row, a_col, buffers.a);
                multiply_packed(mc, N, kc, a, b_packed + pc * n_round, C + ic * ldc, ldc, add);
            }
        }
        return;
    }
    // General case: KC blocks outermost; each B panel packed once, A once per B panel in small
    // blocks (read in place when it is row-major, see prepare_a_block).
    float* b_packed = buffers.b_buffer(kKC * kNC);
    for (size_t pc = 0; pc < K; pc += kKC) {
        const size_t kc = std::min(kKC, K - pc);
        const bool add = accumulate || pc > 0;  // the first KC block overwrites unless accumulating
        for (size_t jc = 0; jc < N; jc += kNC) {
            const size_t nc = std::min(kNC, N - jc);
            pack_panels<kNR>(nc, kc, B + pc * b_row + jc * b_col, b_col, b_row, b_packed);
            for (size_t ic = 0; ic < M; ic += kMC) {
                const size_t mc = std::min(kMC, M - ic);
                const ABlock a = prepare_a_block(mc, kc, A + ic * a_row + pc * a_col, a_row, a_col, buffers.a);
                multiply_packed(mc, nc, kc, a, b_packed, C + ic * ldc + jc, ldc, add);
            }
        }
    }
}

// ---- threads -------------------------------------------------------------------------------------
// C is split into a tm x tn grid of rectangles whose sides are whole micro-tiles; each rectangle
// is one task running gemm_block. Cost of a rectangle mt x nt, in rough cycles:
//   compute  mt nt K / 16                   (2 FLOPs per FMA lane, ~32 FLOPs per cycle)
//   packing  mt K ceil(nt / NC) + nt K      (about one cycle per packed element)
// A split along N makes every rectangle pack all of its rows of A, a split along M all of its
// columns of B: the packing term picks the split that repacks the smaller operand.
struct Grid {
    size_t tm = 1, tn = 1;
    double cost = 0;  // of the busiest thread: ceil(parts / threads) rectangles
};

double rectangle_cost(double mt, double nt, size_t K) {
    return mt * nt * double(K) / 16.0 + mt * double(K) * std::ceil(nt / double(kNC)) + nt * double(K);
}

// The cheapest grid of exactly `parts` rectangles (tm = tn = 1 when there are too few tiles).
Grid best_grid(size_t M, size_t N, size_t K, size_t parts, size_t threads) {
    const size_t m_tiles = (M + kMR - 1) / kMR, n_tiles = (N + kNR - 1) / kNR;
    Grid best;
    best.cost = rectangle_cost(double(m_tiles * kMR), double(n_tiles * kNR), K);
    bool found = false;
    for (size_t rows = 1; rows <= parts; rows++) {
        if (parts % rows != 0) continue;
        const size_t cols = parts / rows;
        if (rows > m_tiles || cols > n_tiles) continue;
        const double mt = double((m_tiles + rows - 1) / rows * kMR), nt = double((n_tiles + cols - 1) / cols * kNR);
        const double cost = double((parts + threads - 1) / threads) * rectangle_cost(mt, nt, K);
        if (!found || cost < best.cost) {
            best = {rows, cols, cost};
            found = true;
        }
    }
    return best;
}

// One rectangle per thread is cheapest on an idle machine. More, smaller rectangles handed out
// dynamically keep every thread busy when one of them is slowed down (a shared machine, another
// process): take 4 or 2 per thread when the extra packing costs under 5%.
Grid choose_grid(size_t M, size_t N, size_t K, size_t threads) {
    const Grid one_each = best_grid(M, N, K, threads, threads);
    if (threads == 1) return one_each;
    for (size_t per_thread : {4, 2}) {
        const Grid g = best_grid(M, N, K, threads * per_thread, threads);
        if (g.tm * g.tn == threads * per_thread && g.cost <= 1.05 * one_each.cost) return g;
    }
    return one_each;
}

}  // namespace

void gemm_f32(size_t M, size_t N, size_t K, const float* A, size_t a_row, size_t a_col, const float* B,
              size_t b_row, size_t b_col, float* C, size_t ldc, bool accumulate) {
    if (M == 0 || N == 0) return;
    if (K == 0) {  // an empty sum: C = 0, or C unchanged when accumulating
        if (!accumulate)
            for (size_t m = 0; m < M; m++) std::memset(C + m * ldc, 0, N * sizeof(float));
        return;
    }
    // Below about a million FLOPs the threads cost more than they save.
    const double flops = 2.0 * double(M) * double(N) * double(K);
    size_t threads = omp_in_parallel() ? 1 : size_t(omp_get_max_threads());
    if (flops < 2e6) threads = 1;
    const Grid grid = choose_grid(M, N, K, threads);
    const size_t tm = grid.tm, tn = grid.tn;
    // Rectangle (r, c) of the grid: rows [r m_step, ...), columns [c n_step, ...), whole micro-tiles.
    // Which thread runs a rectangle does not matter to the result (each C element is summed by
    // exactly one rectangle, in the same order): the schedule can be dynamic.
    const size_t m_step = round_up((M + tm - 1) / tm, kMR), n_step = round_up((N + tn - 1) / tn, kNR);
    const int parts = int(tm * tn);
    // One rectangle (one thread, or a product inside another parallel loop, as the attention's are):
    // no parallel region at all. Even an inactive one sets up a team in libgomp; skipping it made
    // the attention of the laptop preset about 10% faster (AVX2, Zen 5).
    if (parts == 1) {
        gemm_block(M, N, K, A, a_row, a_col, B, b_row, b_col, C, ldc, accumulate);
        return;
    }
#pragma omp parallel for num_threads(int(threads)) schedule(dynamic, 1)
    for (int t = 0; t < parts; t++) {
        const size_t m0 = size_t(t) / tn * m_step, n0 = size_t(t) % tn * n_step;
        if (m0 >= M || n0 >= N) continue;
        const size_t mb = std::min(m_step, M - m0), nb = std::min(n_step, N - n0);
        gemm_block(mb, nb, K, A + m0 * a_row, a_row, a_col, B + n0 * b_col, b_row, b_col, C + m0 * ldc + n0, ldc,
                   accumulate);
    }
}

}  // namespace sinklab
