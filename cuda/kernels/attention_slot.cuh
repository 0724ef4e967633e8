// The key slot of the fused attention (`--slot k-bias`, `kv-bias`, `sink-token`, `sink-logit`,
// `off-by-one`): device code only,
// included by attention.cu and run on the CPU emulation by tests/test_cuda_emulated.cpp. The math is
// the slot's part of attention_forward / attention_backward in src/ops/attention.h: the slot is one
// more key of every row, with score s_i* = scale q_i.k* + b, weight w_i* and value v* (or 0).
//
// The fused kernels never see k* or v*. Around them:
//   forward:  attention_slot_score_kernel writes s_i*; the fused forward starts each row's running
//             statistics from it (slot_row_start in attention.cuh), so that LSE_i or
//             Z_i include the slot; then attention_slot_output_kernel adds w_i* v* to out_i and
//             keeps w_i* (att_slot).
//   backward: Delta_i = dO_i . O_i already includes the slot (O_i does), and the fused backward
//             recomputes the weights of the real keys from the full LSE_i or Z_i; then
//             attention_slot_backward_kernel adds the slot's terms: dq_i += ds_i* k*, and per
//             (b, h) dk* = sum_i ds_i* q_i, dv* = sum_i w_i* dO_i.
#pragma once
#include <cmath>

#include "kernels/attention.cuh"

namespace sinklab::cuda::attn {

// Forward, before the fused kernel: slot_s (B, H, T) = scale q_i.k* + b, or the sink logit s_h
// (slot_k: the logits, null for off-by-one: 0). One warp per (b, h, i).
__global__ void attention_slot_score_kernel(float* slot_s, const float* qkv, const float* slot_k, int B, int T, int C,
                                            int H, int D, float scale, AttentionSpec spec) {
    const size_t row = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;  // (b H + h) T + i
    const int lane = int(threadIdx.x) % 32;
    if (row >= size_t(B) * H * T) return;
    const int i = int(row % T), h = int(row / T % H);
    const size_t b = row / T / H;
    const float* k = slot_k ? slot_row(slot_k, spec, h, spec.slot_score_width(D)) : nullptr;
    float dot = 0.0f;
    if (!spec.slot_is_logit()) {
        const float* q = qkv + (b * T + i) * size_t(3) * C + size_t(h) * D;
        for (int d = lane; d < D; d += 32) dot += q[d] * k[d];
        dot = warp_sum(dot);
    }
    if (lane == 0) slot_s[row] = slot_score(spec, scale, dot, k);
}

// Forward, after the fused kernel: att_slot (B, H, T) = w_i*, and out_i += w_i* v* (slot_v null:
// v* = 0). w_i* from the row's statistics: softmax exp(s* - LSE_i); else sim(s*) / |Z_i|, or sim(s*)
// without a normaliser. One warp per (b, h, i).
__global__ void attention_slot_output_kernel(float* out, float* att_slot, const float* slot_s, const float* lse,
                                             const float* z, const float* slot_v, int B, int T, int C, int H, int D,
                                             AttentionSpec spec) {
    const size_t row = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
    const int lane = int(threadIdx.x) % 32;
    if (row >= size_t(B) * H * T) return;
    const int i = int(row % T), h = int(row / T % H);
    const size_t b = row / T / H;
    const float s = slot_s[row];
    float w;
    if (spec.is_softmax()) {
        w = expf(s - lse[row]);
    } else {
        w = sim<DeviceMath>(spec.score, s);
        if (spec.is_normalised()) w /= normaliser_divisor(z[row]);
    }
    if (lane == 0) att_slot[row] = w;
    if (!slot_v) return;
    const float* v = slot_row(slot_v, spec, h, D);
    float* o = out + (b * T + i) * C + size_t(h) * D;
    for (int d = lane; d < D; d += 32) o[d] += w * v[d];
}

// Backward, after the fused kernels. One block of kSlotBackwardWarps warps per (b, h); warp w takes
// the rows i = w, w + warps, ... and lane l the dimensions l, l + 32, l + 64, l + 96 (D <= 128):
//   dw_i* = dO_i . v*,  ds_i* = score_grad(dw_i*, w_i*, ...),  dq_i += ds_i* k*,
//   dk* += ds_i* q_i,  dv* += w_i* dO_i.
// The learned sink logit: ds_h += ds_i* (unscaled; d_slot_k (B, H, 1)), no dq; off-by-one: nothing
// (the kernel is not launched).
// Each warp sums its rows in order, then warp 0 adds the warps' sums in order: d_slot_k and
// d_slot_v (B, H, D) are written, deterministic. delta: Delta_i (null without a normaliser).
constexpr int kSlotBackwardWarps = 8;
constexpr int kSlotMaxD = 128;

__global__ void __launch_bounds__(32 * kSlotBackwardWarps)
    attention_slot_backward_kernel(float* dqkv, float* d_slot_k, float* d_slot_v, const float* dout, const float* qkv,
                                   const float* slot_k, const float* slot_v, const float* att_slot, const float* z,
                                   const float* delta, int T, int C, int H, int D, float scale, AttentionSpec spec) {
    constexpr int kPerLane = kSlotMaxD / 32;
    __shared__ float part_k[kSlotBackwardWarps][kSlotMaxD];
    __shared__ float part_v[kSlotBackwardWarps][kSlotMaxD];
    const int warp = int(threadIdx.x) / 32, lane = int(threadIdx.x) % 32;
    const int bh = int(blockIdx.x), h = bh % H;
    const size_t b = size_t(bh / H), C3 = size_t(3) * C;
    const bool logit = spec.slot_is_logit();
    const int W = spec.slot_score_width(D);
    const float* k_star = slot_row(slot_k, spec, h, W);
    const float* v_star = slot_v ? slot_row(slot_v, spec, h, D) : nullptr;
    float acc_k[kPerLane] = {}, acc_v[kPerLane] = {};
    for (int i = warp; i < T; i += kSlotBackwardWarps) {
        const size_t row = size_t(bh) * T + i;
        const float* q = qkv + (b * T + i) * C3 + size_t(h) * D;
        const float* dO = dout + (b * T + i) * C + size_t(h) * D;
        float* dq = dqkv + (b * T + i) * C3 + size_t(h) * D;
        float dw = 0.0f;
        if (v_star)
            for (int d = lane; d < D; d += 32) dw += dO[d] * v_star[d];
        dw = warp_sum(dw);
        const float w = att_slot[row], divisor = normaliser_divisor(z[row]);
        const float ds =
            score_grad(spec, logit ? 1.0f : scale, dw, w, w * divisor, 1.0f / divisor, delta ? delta[row] : 0.0f);
        if (logit) {  // ds is the same in every lane: lane 0 keeps it
            if (lane == 0) acc_k[0] += ds;
            continue;
        }
#pragma unroll
        for (int u = 0; u < kPerLane; u++) {
            const int d = lane + 32 * u;
            if (d >= D) break;
            dq[d] += ds * k_star[d];
            acc_k[u] += ds * q[d];
            acc_v[u] += w * dO[d];
        }
    }
#pragma unroll
    for (int u = 0; u < kPerLane; u++) {
        part_k[warp][lane + 32 * u] = acc_k[u];
        part_v[warp][lane + 32 * u] = acc_v[u];
    }
    __syncthreads();
    if (warp != 0) return;
    for (int d = lane; d < D; d += 32) {
        float sum_k = 0.0f, sum_v = 0.0f;
        for (int w = 0; w < kSlotBackwardWarps; w++) {
            sum_k += part_k[w][d];
            sum_v += part_v[w][d];
        }
        if (d < W) d_slot_k[size_t(bh) * W + d] = sum_k;
        if (d_slot_v) d_slot_v[size_t(bh) * D + d] = sum_v;
    }
}

}  // namespace sinklab::cuda::attn
