// Warp-level tensor-core primitives (sm_80 and later, so Hopper too): the bf16 matrix product
// mma.sync m16n8k16 with fp32 accumulation, and ldmatrix, which loads its operand fragments from
// shared memory. Used by the attention kernels of kernels/attention_mma.cuh.
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16"). A warp's 32 lanes are seen as
// 8 groups of 4: g = lane / 4 (the row group), t = lane % 4 (the thread in the group). A register
// of two bf16 holds two neighbouring columns, the lower column in the low 16 bits.
//   A (16 x 16, row major), 4 registers:  a[0] = A[g][2t, 2t+1]      a[1] = A[g+8][2t, 2t+1]
//                                         a[2] = A[g][2t+8, 2t+9]    a[3] = A[g+8][2t+8, 2t+9]
//   B (16 x 8, k x n), 2 registers:       b[0] = B[2t, 2t+1][g]      b[1] = B[2t+8, 2t+9][g]
//   C, D (16 x 8, fp32), 4 floats:        c[0], c[1] = C[g][2t, 2t+1]   c[2], c[3] = C[g+8][2t, 2t+1]
// So the accumulator of two neighbouring 16 x 8 products, rounded to bf16, is an A fragment: the
// trick that lets attention feed its weights P from registers straight into P V.
//
// ldmatrix x4 loads four 8 x 8 matrices of bf16: lane l gives the address of row l % 8 of matrix
// l / 8 (16 bytes, 16-byte aligned), and register i of lane l receives matrix i's row g, columns
// 2t and 2t+1. With .trans each matrix is transposed on the way: register i receives matrix i's
// rows 2t and 2t+1 of column g.
//
// tests/cuda_emu.h emulates these with the same layouts, so the CPU tests run the kernels' indexing.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>
#include <cstring>

#ifndef SINKLAB_CUDA_EMU
#include <cuda_runtime.h>
#endif

namespace sinklab::cuda::mma {

using bf16 = __nv_bfloat16;

// r[0..3] = the fragments of the four 8 x 8 matrices whose rows lane l points at (see above).
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const bf16* row) {
#ifdef SINKLAB_CUDA_EMU
    emu::ldmatrix_x4(r, row, false);
#else
    const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
#endif
}

// The same with each 8 x 8 matrix transposed.
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const bf16* row) {
#ifdef SINKLAB_CUDA_EMU
    emu::ldmatrix_x4(r, row, true);
#else
    const unsigned address = static_cast<unsigned>(__cvta_generic_to_shared(row));
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(address));
#endif
}

// d (16 x 8, fp32) += a (16 x 16, bf16) . b (16 x 8, bf16).
__device__ __forceinline__ void mma_bf16(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
#ifdef SINKLAB_CUDA_EMU
    emu::mma_bf16_16816(d, a, b0, b1);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#endif
}

// Two floats rounded to bf16 in one register, `lo` in the low half.
__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t r;
    std::memcpy(&r, &v, sizeof(r));
    return r;
}

// 2^x and 1/x by the special-function unit (about 2 ulp; 2^-inf = 0, 1/inf = 0).
__device__ __forceinline__ float fast_exp2(float x) {
#ifdef SINKLAB_CUDA_EMU
    return std::exp2(x);
#else
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
#endif
}
__device__ __forceinline__ float fast_rcp(float x) {
#ifdef SINKLAB_CUDA_EMU
    return 1.0f / x;
#else
    float y;
    asm("rcp.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
#endif
}

}  // namespace sinklab::cuda::mma
