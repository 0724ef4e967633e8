// The kernels of ops.cu (device code only), kept apart from the host code so that
// tests/test_cuda_emulated.cpp can also run them on the CPU emulation of tests/cuda_emu.h.
// The math of each is in the comment above its CPU twin in src/ops.h.
#pragma once
#ifndef SINKLAB_CUDA_EMU
#include <cuda_runtime.h>
#endif

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "device_utils.cuh"

namespace sinklab::cuda::kernels {

constexpr unsigned kThreads = 256;

#define GRID_STRIDE_LOOP(i, n) \
    for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += size_t(gridDim.x) * blockDim.x)

// ---- embedding ----
__global__ void embedding_forward_kernel(float* out, const int32_t* tokens, const float* wte, size_t N, size_t C) {
    GRID_STRIDE_LOOP(i, N * C) {
        const size_t n = i / C, c = i % C;
        out[i] = wte[size_t(tokens[n]) * C + c];
    }
}

// One block row per distinct token id: dwte[token, c] += dout[n, c] over that token's positions n,
// in increasing n (the CPU's order). order: positions grouped by token; starts: bucket bounds.
__global__ void embedding_backward_kernel(float* dwte, const float* dout, const int32_t* order,
                                          const int32_t* starts, const int32_t* ids, size_t C) {
    const int bucket = blockIdx.x;
    const size_t c = size_t(blockIdx.y) * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float* dst = dwte + size_t(ids[bucket]) * C + c;
    float acc = *dst;
    for (int p = starts[bucket]; p < starts[bucket + 1]; p++) acc += dout[size_t(order[p]) * C + c];
    *dst = acc;
}

// ---- RMSNorm: one warp per row ----
constexpr unsigned kRowsPerBlock = kThreads / 32;

__global__ void rmsnorm_forward_kernel(float* out, float* rstd, const float* x, const float* w, size_t N, size_t C,
                                       float eps) {
    const size_t n = size_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const unsigned lane = threadIdx.x % 32;
    if (n >= N) return;
    const float* xn = x + n * C;
    float sum_sq = 0.0f;
    for (size_t c = lane; c < C; c += 32) sum_sq += xn[c] * xn[c];
    sum_sq = warp_sum(sum_sq);
    const float r = 1.0f / sqrtf(sum_sq / float(C) + eps);
    if (lane == 0) rstd[n] = r;
    for (size_t c = lane; c < C; c += 32) out[n * C + c] = xn[c] * r * w[c];
}

__global__ void rmsnorm_backward_dx_kernel(float* dx, const float* dout, const float* x, const float* w,
                                           const float* rstd, size_t N, size_t C) {
    const size_t n = size_t(blockIdx.x) * kRowsPerBlock + threadIdx.x / 32;
    const unsigned lane = threadIdx.x % 32;
    if (n >= N) return;
    const float* xn = x + n * C;
    const float* dy = dout + n * C;
    const float r = rstd[n];
    float dot = 0.0f;
    for (size_t c = lane; c < C; c += 32) dot += dy[c] * w[c] * xn[c];
    dot = warp_sum(dot);
    const float coef = r * r * r * dot / float(C);
    for (size_t c = lane; c < C; c += 32) dx[n * C + c] += r * w[c] * dy[c] - coef * xn[c];
}

// Column sums over row chunks: partial[chunk, c] = sum_{n in chunk} dout[n, c] x[n, c] rstd[n].
constexpr size_t kRowChunk = 256;
__global__ void rmsnorm_backward_dw_partial_kernel(float* partial, const float* dout, const float* x,
                                                   const float* rstd, size_t N, size_t C) {
    const size_t c = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    const size_t chunk = blockIdx.y;
    if (c >= C) return;
    const size_t end = min(N, (chunk + 1) * kRowChunk);
    float sum = 0.0f;
    for (size_t n = chunk * kRowChunk; n < end; n++) sum += dout[n * C + c] * x[n * C + c] * rstd[n];
    partial[chunk * C + c] = sum;
}
// dw[c] += sum over chunks, in chunk order.
__global__ void column_sum_kernel(float* dw, const float* partial, size_t chunks, size_t C) {
    const size_t c = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float sum = 0.0f;
    for (size_t k = 0; k < chunks; k++) sum += partial[k * C + c];
    dw[c] += sum;
}

// ---- RoPE: over the (B, T, 3C) rows, one thread per rotated pair (i, i + D/2) of a q or k head
// (C pairs per row), then one per two v values copied (C/2 per row): both outputs of a pair from
// one read of its inputs, and one 64-bit division per item.
__global__ void rope_forward_kernel(float* out, const float* qkv, const float* cos_t, const float* sin_t, size_t BT,
                                    size_t Tn, size_t C, size_t D) {
    const size_t C3 = 3 * C, per_row = C3 / 2, half = D / 2;
    GRID_STRIDE_LOOP(idx, BT * per_row) {
        const size_t bt = idx / per_row, j = idx - bt * per_row;
        const size_t row = bt * C3;
        if (j < C) {
            const size_t slot = j / half, i = j - slot * half, t = bt % Tn;  // slot: q heads, then k heads
            const float* x = qkv + row + slot * D;
            float* y = out + row + slot * D;
            const float c = cos_t[t * half + i], s = sin_t[t * half + i], x1 = x[i], x2 = x[i + half];
            y[i] = x1 * c - x2 * s;
            y[i + half] = x2 * c + x1 * s;
        } else {
            const size_t k = row + 2 * C + 2 * (j - C);
            out[k] = qkv[k];
            out[k + 1] = qkv[k + 1];
        }
    }
}

__global__ void rope_backward_kernel(float* dqkv, const float* dout, const float* cos_t, const float* sin_t,
                                     size_t BT, size_t Tn, size_t C, size_t D) {
    const size_t C3 = 3 * C, per_row = C3 / 2, half = D / 2;
    GRID_STRIDE_LOOP(idx, BT * per_row) {
        const size_t bt = idx / per_row, j = idx - bt * per_row;
        const size_t row = bt * C3;
        if (j < C) {
            const size_t slot = j / half, i = j - slot * half, t = bt % Tn;
            const float* dy = dout + row + slot * D;
            float* dx = dqkv + row + slot * D;
            const float c = cos_t[t * half + i], s = sin_t[t * half + i], dy1 = dy[i], dy2 = dy[i + half];
            dx[i] += dy1 * c + dy2 * s;
            dx[i + half] += dy2 * c - dy1 * s;
        } else {
            const size_t k = row + 2 * C + 2 * (j - C);
            dqkv[k] += dout[k];
            dqkv[k + 1] += dout[k + 1];
        }
    }
}

// ---- SwiGLU: fc rows (N, 2F) = [a | up]; out (N, F) = silu(a) * up ----
// Four neighbouring columns per thread (16-byte loads, one 64-bit division per four elements)
// when F is a multiple of 4 and the buffers are 16-byte aligned, else one column per thread.
__device__ __forceinline__ bool swiglu_vectorizable(size_t F, const void* p, const void* q, const void* r) {
    return F % 4 == 0 && (reinterpret_cast<uintptr_t>(p) | reinterpret_cast<uintptr_t>(q) |
                          reinterpret_cast<uintptr_t>(r)) % 16 == 0;
}
__device__ __forceinline__ float swiglu_value(float a, float up) {
    const float sig = 1.0f / (1.0f + expf(-a));
    return a * sig * up;
}
// d a and d up of one element, added to da and dup.
__device__ __forceinline__ void swiglu_grad(float dy, float a, float up, float& da, float& dup) {
    const float sig = 1.0f / (1.0f + expf(-a));
    da += dy * up * sig * (1.0f + a * (1.0f - sig));
    dup += dy * a * sig;
}

__global__ void swiglu_forward_kernel(float* out, const float* fc, size_t N, size_t F) {
    if (swiglu_vectorizable(F, out, fc, fc)) {
        const size_t F4 = F / 4;
        GRID_STRIDE_LOOP(i4, N * F4) {
            const size_t n = i4 / F4, f = (i4 - n * F4) * 4;
            const float4 a = *reinterpret_cast<const float4*>(fc + n * 2 * F + f);
            const float4 up = *reinterpret_cast<const float4*>(fc + n * 2 * F + F + f);
            *reinterpret_cast<float4*>(out + n * F + f) = make_float4(
                swiglu_value(a.x, up.x), swiglu_value(a.y, up.y), swiglu_value(a.z, up.z), swiglu_value(a.w, up.w));
        }
        return;
    }
    GRID_STRIDE_LOOP(idx, N * F) {
        const size_t n = idx / F, f = idx % F;
        out[idx] = swiglu_value(fc[n * 2 * F + f], fc[n * 2 * F + F + f]);
    }
}

__global__ void swiglu_backward_kernel(float* dfc, const float* dout, const float* fc, size_t N, size_t F) {
    if (swiglu_vectorizable(F, dfc, dout, fc)) {
        const size_t F4 = F / 4;
        GRID_STRIDE_LOOP(i4, N * F4) {
            const size_t n = i4 / F4, f = (i4 - n * F4) * 4;
            const float4 a = *reinterpret_cast<const float4*>(fc + n * 2 * F + f);
            const float4 up = *reinterpret_cast<const float4*>(fc + n * 2 * F + F + f);
            const float4 dy = *reinterpret_cast<const float4*>(dout + n * F + f);
            float4* da = reinterpret_cast<float4*>(dfc + n * 2 * F + f);
            float4* dup = reinterpret_cast<float4*>(dfc + n * 2 * F + F + f);
            float4 ga = *da, gu = *dup;
            swiglu_grad(dy.x, a.x, up.x, ga.x, gu.x);
            swiglu_grad(dy.y, a.y, up.y, ga.y, gu.y);
            swiglu_grad(dy.z, a.z, up.z, ga.z, gu.z);
            swiglu_grad(dy.w, a.w, up.w, ga.w, gu.w);
            *da = ga;
            *dup = gu;
        }
        return;
    }
    GRID_STRIDE_LOOP(idx, N * F) {
        const size_t n = idx / F, f = idx % F;
        swiglu_grad(dout[idx], fc[n * 2 * F + f], fc[n * 2 * F + F + f], dfc[n * 2 * F + f], dfc[n * 2 * F + F + f]);
    }
}

__global__ void residual_add_kernel(float* x, const float* y, size_t n) {
    GRID_STRIDE_LOOP(i, n) x[i] += y[i];
}

// ---- cross entropy: one block per row ----
constexpr unsigned kCeThreads = 512;

// The maximum of a row and sum_v exp(row[v] - max) in one pass over the row (each thread keeps a
// running maximum and rescales its running sum when the maximum grows), then combined over the
// block in a fixed order. Every thread gets both.
__device__ __forceinline__ void row_max_and_sum(const float* row, size_t V, float* shared, float& mx, float& sum) {
    float m = -INFINITY, s = 0.0f;
    for (size_t v = threadIdx.x; v < V; v += blockDim.x) {
        const float x = row[v];
        if (x > m) {
            s = s * expf(m - x) + 1.0f;  // expf(-inf) = 0 on the first element
            m = x;
        } else if (m != -INFINITY) {  // (x = m = -inf contributes 0, not expf(nan))
            s += expf(x - m);
        }
    }
    mx = block_max(m, shared);
    sum = block_sum(m == -INFINITY ? 0.0f : s * expf(m - mx), shared);
}

__global__ void crossentropy_forward_kernel(float* losses, const float* logits, const int32_t* targets, size_t V) {
    __shared__ float shared[32];
    const size_t n = blockIdx.x;
    const int32_t target = targets[n];
    if (target < 0) {  // uniform across the block: every thread returns
        if (threadIdx.x == 0) losses[n] = 0.0f;
        return;
    }
    const float* row = logits + n * V;
    float mx, sum;
    row_max_and_sum(row, V, shared, mx, sum);
    if (threadIdx.x == 0) losses[n] = logf(sum) + mx - row[size_t(target)];
}

__global__ void crossentropy_backward_kernel(float* dlogits, const float* logits, const int32_t* targets,
                                             float dloss, size_t V) {
    __shared__ float shared[32];
    const size_t n = blockIdx.x;
    const int32_t target = targets[n];
    const float* row = logits + n * V;
    float* drow = dlogits + n * V;
    if (target < 0) {
        for (size_t v = threadIdx.x; v < V; v += blockDim.x) drow[v] = 0.0f;
        return;
    }
    float mx, sum;
    row_max_and_sum(row, V, shared, mx, sum);
    const float inv_sum = 1.0f / sum;
    // Each element is read and then written by the same thread, so dlogits may alias logits.
    for (size_t v = threadIdx.x; v < V; v += blockDim.x) {
        float d = dloss * expf(row[v] - mx) * inv_sum;
        if (v == size_t(target)) d -= dloss;
        drow[v] = d;
    }
}

// ---- global sum of squares ----
constexpr size_t kSumChunk = size_t(1) << 16;
__global__ void sum_squares_kernel(double* partial, const float* x, size_t n) {
    __shared__ double shared[kThreads];
    const size_t begin = size_t(blockIdx.x) * kSumChunk;
    const size_t end = min(n, begin + kSumChunk);
    double s = 0.0;
    for (size_t i = begin + threadIdx.x; i < end; i += blockDim.x) s += double(x[i]) * double(x[i]);
    shared[threadIdx.x] = s;
    __syncthreads();
    for (unsigned stride = kThreads / 2; stride > 0; stride >>= 1) {
        if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
        __syncthreads();
    }
    if (threadIdx.x == 0) partial[blockIdx.x] = shared[0];
}

// ---- AdamW ----
__global__ void adamw_kernel(float* params, const float* grads, float* m, float* v, size_t n, float b1, float b2,
                             float bias1, float bias2, float lr, float eps, float wd, float grad_scale) {
    GRID_STRIDE_LOOP(i, n) {
        const float g = grads[i] * grad_scale;
        const float mi = b1 * m[i] + (1.0f - b1) * g;
        const float vi = b2 * v[i] + (1.0f - b2) * g * g;
        m[i] = mi;
        v[i] = vi;
        const float m_hat = mi / bias1;
        const float v_hat = vi / bias2;
        params[i] -= lr * (m_hat / (sqrtf(v_hat) + eps) + wd * params[i]);
    }
}


// Host helper for embedding_backward: the positions grouped by token id, each group in increasing
// position order (a stable counting sort). order: (N) positions; starts: (U + 1) group bounds;
// ids: (U) the token id of each group. Negative ids are skipped.
inline void group_positions_by_token(const std::vector<int32_t>& tokens, std::vector<int32_t>& order,
                                     std::vector<int32_t>& starts, std::vector<int32_t>& ids) {
    int32_t max_id = 0;
    for (int32_t t : tokens) max_id = t > max_id ? t : max_id;
    std::vector<int32_t> count(size_t(max_id) + 2, 0);
    for (int32_t t : tokens)
        if (t >= 0) count[size_t(t) + 1]++;
    for (size_t i = 1; i < count.size(); i++) count[i] += count[i - 1];  // count[t] = start of group t
    order.assign(tokens.size(), 0);
    starts.clear();
    ids.clear();
    std::vector<int32_t> fill(count.begin(), count.end() - 1);
    for (size_t n = 0; n < tokens.size(); n++)
        if (tokens[n] >= 0) order[size_t(fill[size_t(tokens[n])]++)] = int32_t(n);
    for (size_t t = 0; t + 1 < count.size(); t++)
        if (count[t + 1] > count[t]) {
            ids.push_back(int32_t(t));
            starts.push_back(count[t]);
        }
    if (!ids.empty()) starts.push_back(count.back());
}

}  // namespace sinklab::cuda::kernels
