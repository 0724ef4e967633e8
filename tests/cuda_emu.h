// A small CPU emulation of the CUDA execution model, enough to run the attention kernels of
// cuda/kernels/attention.cuh (fp32) and cuda/kernels/attention_mma.cuh (bf16) and the kernels of
// cuda/kernels/*.cuh as plain C++ where no GPU is present (tests/test_cuda_emulated.cpp): one
// std::thread per CUDA thread, a std::barrier per block (__syncthreads) and per warp (shuffles,
// mma.sync, ldmatrix), and dynamic shared memory poisoned with 0xFF bytes. The warp-level mma.sync
// m16n8k16 and ldmatrix of cuda/kernels/mma.cuh are emulated with the fragment layouts of the PTX ISA
// (each lane holds its own registers; lanes exchange them through the block context), and
// ldmatrix's 16-byte row alignment is checked. It is a test of indexing, tiling, masking,
// synchronisation and the math, not of timing.
#pragma once
#define SINKLAB_CUDA_EMU 1
#include <cuda_bf16.h>

#include <atomic>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#undef __global__
#undef __device__
#undef __forceinline__
#undef __shared__
#undef __launch_bounds__
#undef __align__
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

namespace emu {

struct Dim {
    unsigned x = 0, y = 0, z = 0;
};

struct BlockContext {
    std::unique_ptr<std::barrier<>> block;
    std::vector<std::unique_ptr<std::barrier<>>> warps;
    std::vector<float> shuffle;
    std::vector<const void*> row_address;  // ldmatrix: one row address per thread
    std::vector<uint32_t> fragments;       // mma.sync: 6 registers (A, B) per thread
    unsigned char* smem = nullptr;
};

inline thread_local Dim tl_thread, tl_block;
inline thread_local BlockContext* tl_context = nullptr;
inline Dim g_grid, g_block_dim;
inline std::atomic<int> g_violations{0};  // ldmatrix alignment violations seen

inline unsigned char* dynamic_smem() { return tl_context->smem; }
inline void syncthreads() { tl_context->block->arrive_and_wait(); }
inline void syncwarp() { tl_context->warps[tl_thread.x / 32]->arrive_and_wait(); }

inline float shuffle_xor(float v, int offset) {
    const unsigned t = tl_thread.x;
    tl_context->shuffle[t] = v;
    syncwarp();
    const float r = tl_context->shuffle[(t & ~31u) | ((t & 31u) ^ unsigned(offset))];
    syncwarp();
    return r;
}

// Runs kernel() for every thread of every block (blocks one after the other).
template <class Kernel>
void launch(Dim grid, unsigned threads, size_t smem_bytes, Kernel&& kernel) {
    g_grid = grid;
    g_block_dim = {threads, 1, 1};
    std::vector<unsigned char> smem_storage(smem_bytes + 256);
    unsigned char* smem =
        reinterpret_cast<unsigned char*>((reinterpret_cast<uintptr_t>(smem_storage.data()) + 255) / 256 * 256);
    for (unsigned by = 0; by < grid.y; by++)
        for (unsigned bx = 0; bx < grid.x; bx++) {
            std::memset(smem, 0xFF, smem_bytes);  // NaN in every float and bf16
            BlockContext ctx;
            ctx.block = std::make_unique<std::barrier<>>(threads);
            for (unsigned w = 0; w < threads / 32; w++) ctx.warps.push_back(std::make_unique<std::barrier<>>(32));
            ctx.shuffle.assign(threads, 0.0f);
            ctx.row_address.assign(threads, nullptr);
            ctx.fragments.assign(size_t(threads) * 6, 0u);
            ctx.smem = smem;
            std::vector<std::thread> pool;
            for (unsigned t = 0; t < threads; t++)
                pool.emplace_back([&, t] {
                    tl_context = &ctx;
                    tl_thread = {t, 0, 0};
                    tl_block = {bx, by, 0};
                    kernel();
                });
            for (auto& th : pool) th.join();
        }
}

inline float bf16_bits_to_float(uint32_t bits16) {
    const uint32_t bits = bits16 << 16;
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
}

// ldmatrix.sync.aligned.m8n8.x4(.trans).shared.b16: lane l supplies the address of row l % 8 of
// matrix l / 8; register i of lane l = matrix i, row l / 4, columns 2 (l % 4) and +1 (low half
// first); with trans, rows 2 (l % 4) and +1 of column l / 4.
inline void ldmatrix_x4(uint32_t (&r)[4], const void* row, bool trans) {
    const unsigned t = tl_thread.x, base = t & ~31u, l = t & 31u, g = l / 4, q = l % 4;
    if (reinterpret_cast<uintptr_t>(row) % 16 != 0) g_violations++;
    tl_context->row_address[t] = row;
    syncwarp();
    for (unsigned i = 0; i < 4; i++) {
        uint16_t lo, hi;
        if (!trans) {
            const uint16_t* p = static_cast<const uint16_t*>(tl_context->row_address[base + 8 * i + g]);
            lo = p[2 * q];
            hi = p[2 * q + 1];
        } else {
            lo = static_cast<const uint16_t*>(tl_context->row_address[base + 8 * i + 2 * q])[g];
            hi = static_cast<const uint16_t*>(tl_context->row_address[base + 8 * i + 2 * q + 1])[g];
        }
        r[i] = uint32_t(lo) | (uint32_t(hi) << 16);
    }
    syncwarp();
}

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32: d += A (16 x 16) B (16 x 8), gathered from
// the fragments of the warp's 32 lanes (layouts in cuda/kernels/mma.cuh).
inline void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
    const unsigned t = tl_thread.x, base = t & ~31u;
    uint32_t* mine = &tl_context->fragments[size_t(t) * 6];
    for (int i = 0; i < 4; i++) mine[i] = a[i];
    mine[4] = b0;
    mine[5] = b1;
    syncwarp();
    float A[16][16], B[16][8];
    for (unsigned lane = 0; lane < 32; lane++) {
        const uint32_t* f = &tl_context->fragments[size_t(base + lane) * 6];
        const unsigned g = lane / 4, q = lane % 4;
        for (unsigned half = 0; half < 2; half++) {
            const auto value = [&](uint32_t reg) { return bf16_bits_to_float(half ? reg >> 16 : reg & 0xFFFFu); };
            A[g][2 * q + half] = value(f[0]);
            A[g + 8][2 * q + half] = value(f[1]);
            A[g][2 * q + 8 + half] = value(f[2]);
            A[g + 8][2 * q + 8 + half] = value(f[3]);
            B[2 * q + half][g] = value(f[4]);
            B[2 * q + 8 + half][g] = value(f[5]);
        }
    }
    syncwarp();
    const unsigned l = t & 31u, g = l / 4, q = l % 4;
    for (int e = 0; e < 4; e++) {
        const unsigned row = g + (e / 2) * 8, col = 2 * q + e % 2;
        float sum = d[e];
        for (int k = 0; k < 16; k++) sum += A[row][k] * B[k][col];
        d[e] = sum;
    }
}

}  // namespace emu

#define threadIdx ::emu::tl_thread
#define blockIdx ::emu::tl_block
#define gridDim ::emu::g_grid
#define blockDim ::emu::g_block_dim

inline void __syncthreads() { emu::syncthreads(); }
inline float __shfl_xor_sync(unsigned, float v, int offset) { return emu::shuffle_xor(v, offset); }
inline int min(int a, int b) { return a < b ? a : b; }
inline size_t min(size_t a, size_t b) { return a < b ? a : b; }
