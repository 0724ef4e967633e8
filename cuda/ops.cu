// The element-wise and row-wise operations of the model on the GPU: the twins of src/ops.h (same
// names, same math; see the comment above each CPU function for the formulas). fp32 throughout.
// Every reduction is in a fixed order, so results are bitwise reproducible run to run.
#include <cuda_runtime.h>

#include <cmath>
#include <vector>

#include "common.cuh"
#include "cuda_api.h"
#include "ops.h"
#include "ops_cuda.h"

namespace sinklab::cuda {

namespace {

constexpr unsigned kThreads = 256;

// Grid for a grid-stride loop over n elements.
unsigned grid_for(size_t n) {
    const size_t blocks = (n + kThreads - 1) / kThreads;
    return unsigned(blocks < (size_t(1) << 30) ? (blocks ? blocks : 1) : (size_t(1) << 30));
}

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

// ---- RoPE: one thread per element of the (B, T, 3C) row ----
__global__ void rope_forward_kernel(float* out, const float* qkv, const float* cos_t, const float* sin_t, size_t BT,
                                    size_t Tn, size_t C, size_t D) {
    const size_t C3 = 3 * C, half = D / 2;
    GRID_STRIDE_LOOP(idx, BT * C3) {
        const size_t bt = idx / C3, c = idx % C3;
        if (c >= 2 * C) {
            out[idx] = qkv[idx];
            continue;
        }
        const size_t t = bt % Tn, d = c % D;
        const float* x = qkv + bt * C3 + (c - d);  // this head's slice
        if (d < half) {
            out[idx] = x[d] * cos_t[t * half + d] - x[d + half] * sin_t[t * half + d];
        } else {
            const size_t i = d - half;
            out[idx] = x[d] * cos_t[t * half + i] + x[i] * sin_t[t * half + i];
        }
    }
}

__global__ void rope_backward_kernel(float* dqkv, const float* dout, const float* cos_t, const float* sin_t,
                                     size_t BT, size_t Tn, size_t C, size_t D) {
    const size_t C3 = 3 * C, half = D / 2;
    GRID_STRIDE_LOOP(idx, BT * C3) {
        const size_t bt = idx / C3, c = idx % C3;
        if (c >= 2 * C) {
            dqkv[idx] += dout[idx];
            continue;
        }
        const size_t t = bt % Tn, d = c % D;
        const float* dy = dout + bt * C3 + (c - d);
        if (d < half) {
            dqkv[idx] += dy[d] * cos_t[t * half + d] + dy[d + half] * sin_t[t * half + d];
        } else {
            const size_t i = d - half;
            dqkv[idx] += dy[d] * cos_t[t * half + i] - dy[i] * sin_t[t * half + i];
        }
    }
}

// ---- SwiGLU ----
__global__ void swiglu_forward_kernel(float* out, const float* fc, size_t N, size_t F) {
    GRID_STRIDE_LOOP(idx, N * F) {
        const size_t n = idx / F, f = idx % F;
        const float a = fc[n * 2 * F + f], up = fc[n * 2 * F + F + f];
        const float sig = 1.0f / (1.0f + expf(-a));
        out[idx] = a * sig * up;
    }
}

__global__ void swiglu_backward_kernel(float* dfc, const float* dout, const float* fc, size_t N, size_t F) {
    GRID_STRIDE_LOOP(idx, N * F) {
        const size_t n = idx / F, f = idx % F;
        const float a = fc[n * 2 * F + f], up = fc[n * 2 * F + F + f];
        const float sig = 1.0f / (1.0f + expf(-a));
        const float dy = dout[idx];
        dfc[n * 2 * F + f] += dy * up * sig * (1.0f + a * (1.0f - sig));
        dfc[n * 2 * F + F + f] += dy * a * sig;
    }
}

__global__ void residual_add_kernel(float* x, const float* y, size_t n) {
    GRID_STRIDE_LOOP(i, n) x[i] += y[i];
}

// ---- cross entropy: one block per row ----
constexpr unsigned kCeThreads = 512;

__global__ void crossentropy_forward_kernel(float* losses, const float* logits, const int32_t* targets, size_t V) {
    __shared__ float shared[32];
    const size_t n = blockIdx.x;
    const int32_t target = targets[n];
    if (target < 0) {  // uniform across the block: every thread returns
        if (threadIdx.x == 0) losses[n] = 0.0f;
        return;
    }
    const float* row = logits + n * V;
    float mx = -INFINITY;
    for (size_t v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, row[v]);
    mx = block_max(mx, shared);
    float sum = 0.0f;
    for (size_t v = threadIdx.x; v < V; v += blockDim.x) sum += expf(row[v] - mx);
    sum = block_sum(sum, shared);
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
    float mx = -INFINITY;
    for (size_t v = threadIdx.x; v < V; v += blockDim.x) mx = fmaxf(mx, row[v]);
    mx = block_max(mx, shared);
    float sum = 0.0f;
    for (size_t v = threadIdx.x; v < V; v += blockDim.x) sum += expf(row[v] - mx);
    sum = block_sum(sum, shared);
    const float inv_sum = 1.0f / sum;
    // Each element is read and then written by the same thread, so dlogits may alias logits
    // (every thread has finished reading for max and sum: block_sum ends after a barrier).
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

}  // namespace

// ------------------------------------------------------------------------------------------------
void embedding_forward(float* out, const int32_t* tokens, const float* wte, size_t N, size_t C) {
    embedding_forward_kernel<<<grid_for(N * C), kThreads>>>(out, tokens, wte, N, C);
    CUDA_CHECK_LAUNCH();
}

void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, size_t N, size_t C) {
    if (N == 0) return;
    // Group the positions by token id on the host (a stable counting sort: positions stay in order).
    std::vector<int32_t> tok(N);
    copy_to_host(tok.data(), tokens, N * sizeof(int32_t));
    int32_t max_id = 0;
    for (int32_t t : tok) max_id = t > max_id ? t : max_id;
    std::vector<int32_t> count(size_t(max_id) + 2, 0);
    for (int32_t t : tok)
        if (t >= 0) count[size_t(t) + 1]++;
    for (size_t i = 1; i < count.size(); i++) count[i] += count[i - 1];  // count[t] = start of bucket t
    std::vector<int32_t> order(N), starts, ids;
    std::vector<int32_t> fill(count.begin(), count.end() - 1);
    for (size_t n = 0; n < N; n++)
        if (tok[n] >= 0) order[size_t(fill[size_t(tok[n])]++)] = int32_t(n);
    for (size_t t = 0; t + 1 < count.size(); t++)
        if (count[t + 1] > count[t]) {
            ids.push_back(int32_t(t));
            starts.push_back(count[t]);
        }
    if (ids.empty()) return;
    starts.push_back(count.back());
    const size_t U = ids.size();
    int32_t* dev = static_cast<int32_t*>(scratch(kScratchEmbedding, (N + 2 * U + 1) * sizeof(int32_t)));
    int32_t* d_order = dev;
    int32_t* d_starts = dev + N;
    int32_t* d_ids = d_starts + U + 1;
    copy_to_device(d_order, order.data(), N * sizeof(int32_t));
    copy_to_device(d_starts, starts.data(), (U + 1) * sizeof(int32_t));
    copy_to_device(d_ids, ids.data(), U * sizeof(int32_t));
    const dim3 grid(unsigned(U), blocks_for(C, kThreads));
    embedding_backward_kernel<<<grid, kThreads>>>(dwte, dout, d_order, d_starts, d_ids, C);
    CUDA_CHECK_LAUNCH();
}

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, size_t N, size_t C, float eps) {
    rmsnorm_forward_kernel<<<blocks_for(N, kRowsPerBlock), kThreads>>>(out, rstd, x, w, N, C, eps);
    CUDA_CHECK_LAUNCH();
}

void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      size_t N, size_t C) {
    if (N == 0) return;
    rmsnorm_backward_dx_kernel<<<blocks_for(N, kRowsPerBlock), kThreads>>>(dx, dout, x, w, rstd, N, C);
    CUDA_CHECK_LAUNCH();
    const size_t chunks = (N + kRowChunk - 1) / kRowChunk;
    float* partial = static_cast<float*>(scratch(kScratchReduce, chunks * C * sizeof(float)));
    rmsnorm_backward_dw_partial_kernel<<<dim3(blocks_for(C, kThreads), unsigned(chunks)), kThreads>>>(
        partial, dout, x, rstd, N, C);
    CUDA_CHECK_LAUNCH();
    column_sum_kernel<<<blocks_for(C, kThreads), kThreads>>>(dw, partial, chunks, C);
    CUDA_CHECK_LAUNCH();
}

void rope_forward(float* out, const float* qkv, const float* cos_t, const float* sin_t, size_t B, size_t Tn,
                  size_t C, size_t H) {
    rope_forward_kernel<<<grid_for(B * Tn * 3 * C), kThreads>>>(out, qkv, cos_t, sin_t, B * Tn, Tn, C, C / H);
    CUDA_CHECK_LAUNCH();
}

void rope_backward(float* dqkv, const float* dout, const float* cos_t, const float* sin_t, size_t B, size_t Tn,
                   size_t C, size_t H) {
    rope_backward_kernel<<<grid_for(B * Tn * 3 * C), kThreads>>>(dqkv, dout, cos_t, sin_t, B * Tn, Tn, C, C / H);
    CUDA_CHECK_LAUNCH();
}

void swiglu_forward(float* out, const float* fc, size_t N, size_t F) {
    swiglu_forward_kernel<<<grid_for(N * F), kThreads>>>(out, fc, N, F);
    CUDA_CHECK_LAUNCH();
}

void swiglu_backward(float* dfc, const float* dout, const float* fc, size_t N, size_t F) {
    swiglu_backward_kernel<<<grid_for(N * F), kThreads>>>(dfc, dout, fc, N, F);
    CUDA_CHECK_LAUNCH();
}

void residual_add(float* x, const float* y, size_t n) {
    residual_add_kernel<<<grid_for(n), kThreads>>>(x, y, n);
    CUDA_CHECK_LAUNCH();
}

void crossentropy_forward(float* losses, const float* logits, const int32_t* targets, size_t N, size_t V) {
    if (N == 0) return;
    crossentropy_forward_kernel<<<unsigned(N), kCeThreads>>>(losses, logits, targets, V);
    CUDA_CHECK_LAUNCH();
}

void crossentropy_backward(float* dlogits, const float* logits, const int32_t* targets, float dloss, size_t N,
                           size_t V) {
    if (N == 0) return;
    crossentropy_backward_kernel<<<unsigned(N), kCeThreads>>>(dlogits, logits, targets, dloss, V);
    CUDA_CHECK_LAUNCH();
}

double sum_squares(const float* x, size_t n) {
    if (n == 0) return 0.0;
    const size_t chunks = (n + kSumChunk - 1) / kSumChunk;
    double* partial = static_cast<double*>(scratch(kScratchReduce, chunks * sizeof(double)));
    sum_squares_kernel<<<unsigned(chunks), kThreads>>>(partial, x, n);
    CUDA_CHECK_LAUNCH();
    std::vector<double> host(chunks);
    copy_to_host(host.data(), partial, chunks * sizeof(double));
    double total = 0.0;
    for (double p : host) total += p;
    return total;
}

void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, const AdamWHyper& hp,
                  size_t step, float grad_scale) {
    const float bias1 = float(1.0 - std::pow(hp.beta1, double(step)));
    const float bias2 = float(1.0 - std::pow(hp.beta2, double(step)));
    adamw_kernel<<<grid_for(n), kThreads>>>(params, grads, m, v, n, float(hp.beta1), float(hp.beta2), bias1, bias2,
                                            float(hp.lr), float(hp.eps), float(hp.weight_decay), grad_scale);
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
