// Fused attention on the GPU, forward and backward, for every variant of AttentionSpec. The twin of
// attention_forward / attention_backward in src/ops/attention.h; the variant's math (mask, score bias, score
// function, normaliser, score gradient) is the same header for both, src/model/attention_variant.h.
//
// Tiling of the fp32 kernels (kernels/attention.cuh; FlashAttention-style, no T x T matrix ever
// reaches device memory; the bf16 kernels are described under Precision below):
//   One block of 128 threads per (tile of Br = 32 query rows, batch, head) in the forward. It keeps
//   its Q tile in shared memory and walks the key tiles of Bc = 32 keys that its rows see
//   (keys_seen; causal: up to the diagonal):
//   S = Q K^T into a shared fp32 tile, the score function applied in place row by row (a group of
//   4 threads per row), then O += P V into a shared fp32 accumulator.
//     softmax:             running maximum m and running sum l (O and l rescaled by exp(m_old - m_new));
//                          keeps LSE = m + log l per row for the backward.
//     softpick:            the same walk with m = max(max_j s, 0) (starting at 0), P = relu(exp(s - m) -
//                          exp(-m)) and l the sum of |exp(s - m) - exp(-m)|; keeps log Z = m + log(l + eps
//                          exp(-m)) per row, in the LSE's place (and in att_z).
//     sigmoid / elu:       no running maximum (the values are bounded or grow linearly); the running
//                          sum gives the normaliser Z (row_normaliser), saved in att_z.
//   Backward, without atomics (bitwise deterministic):
//     Delta_i = dO_i . O_i (one warp per row, from the forward's output, which the backward receives);
//     kernel dK/dV: one block (128 threads) per key tile walks the query tiles that see its keys
//                   (queries_seeing; causal: from the diagonal down), dK and dV in shared memory;
//     kernel dQ:    one block (128 threads) per query tile walks the key tiles its rows see,
//                   dQ accumulated in shared memory.
//     Both recompute S = Q K^T and dP = dO V^T, then per element (s = scale q.k + bias):
//       softmax:      w = exp(s - LSE_i);      otherwise g = sim(s), w = g / Z_i;
//       ds = score_grad(dP, w, g, 1 / Z_i, Delta_i) (attention_variant.h);
//       softpick:     e = exp(s - log Z_i), w = relu(e - exp(-log Z_i)), ds = softpick_score_grad(dP, s, e, Delta_i).
//     dV_j += sum_i w_ij dO_i,  dK_j += scale sum_i ds_ij q_i,  dQ_i += scale sum_j ds_ij k_j.
//   Each output element is owned by one block and summed in a fixed order.
// The key slot (`--slot`): kernels/attention_slot.cuh, around the fused kernels (its header says how).
//
// Precision (cuda_api.h):
//   fp32: tiles stay fp32 in shared memory and the tile products run on CUDA cores (Br = Bc = 32);
//         the kernels of kernels/attention.cuh, described above.
//   bf16: the kernels of kernels/attention_mma.cuh: tiles rounded to bf16 in shared memory, tile products
//         on the tensor cores (mma.sync m16n8k16, fp32 accumulation), and each warp keeps its rows'
//         scores, weights and accumulators in registers (FlashAttention-2's scheme; Br = Bc = 64);
//         statistics, scores, the score function and all accumulators stay fp32.
// Head dimensions: any even D <= 128; tiles are padded with zeros to Dp in {16, 32, 64, 96, 128}.
#include <cuda_runtime.h>

#include <cmath>

#include "common.cuh"
#include "cuda_api.h"
#include "kernels/attention.cuh"
#include "kernels/attention_mma.cuh"
#include "kernels/attention_slot.cuh"
#include "model/config.h"
#include "ops_cuda.h"

namespace sinklab::cuda {

namespace {

// ------------------------------------------------------------------------------------------------
// Host side.

using namespace attn;

int padded_head_dim(size_t D) {
    if (D <= 16) return 16;
    if (D <= 32) return 32;
    if (D <= 64) return 64;
    if (D <= 96) return 96;
    return 128;
}

AttnArgs make_args(const float* qkv, size_t B, size_t Tn, size_t C, size_t H, const AttentionSpec& spec) {
    const size_t D = C / H;
    if (!attention_supports_head_dim(D) || C % H != 0)
        throw Error(fmt::format("CUDA attention: head dimension {} is not supported (even, at most 128)", D));
    if (Tn > size_t(1) << 24 || C > size_t(1) << 20 || B * H > 65535)
        throw Error(fmt::format("CUDA attention: shape B={} T={} C={} H={} is out of range", B, Tn, C, H));
    return attention_args(qkv, Tn, C, H, spec);
}

template <typename Kernel>
void launch(Kernel kernel, unsigned threads, size_t smem_bytes, dim3 grid, const AttnArgs& a) {
    static int max_optin = -1;
    if (max_optin < 0) {
        int dev = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    }
    if (smem_bytes > size_t(max_optin))
        throw Error(fmt::format("CUDA attention: needs {} bytes of shared memory per block, the GPU allows {}",
                                smem_bytes, max_optin));
    CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem_bytes)));
    kernel<<<grid, threads, smem_bytes>>>(a);
    CUDA_CHECK_LAUNCH();
}

// The fp32 CUDA-core kernels (kernels/attention.cuh): a block of 4 warps per 32 rows.
template <int Dp>
void forward_impl(const AttnArgs& a, size_t B) {
    using K = Cfg<Dp>;
    const dim3 grid(unsigned((a.T + K::Br - 1) / K::Br), unsigned(B * size_t(a.H)));
    if (a.spec.keeps_log_normaliser())
        launch(attention_forward_kernel<Dp, true>, K::NT, K::kForwardBytes, grid, a);
    else
        launch(attention_forward_kernel<Dp, false>, K::NT, K::kForwardBytes, grid, a);
}

template <int Dp>
void backward_impl(const AttnArgs& a, size_t B) {
    using K = Cfg<Dp>;
    const dim3 grid(unsigned((a.T + K::Br - 1) / K::Br), unsigned(B * size_t(a.H)));
    launch(attention_backward_kv_kernel<Dp>, K::NT, K::kBackwardKVBytes, grid, a);
    launch(attention_backward_q_kernel<Dp>, K::NT, K::kBackwardQBytes, grid, a);
}

// The bf16 tensor-core kernels (kernels/attention_mma.cuh): a block of 4 warps per 64 rows.
template <int Dp>
void forward_mma(const AttnArgs& a, size_t B) {
    using K = MmaCfg<Dp>;
    const dim3 grid(unsigned((a.T + K::Br - 1) / K::Br), unsigned(B * size_t(a.H)));
    if (a.spec.keeps_log_normaliser())
        launch(attention_forward_mma_kernel<Dp, true>, K::NT, K::kForwardBytes, grid, a);
    else
        launch(attention_forward_mma_kernel<Dp, false>, K::NT, K::kForwardBytes, grid, a);
}

template <int Dp>
void backward_mma(const AttnArgs& a, size_t B) {
    using K = MmaCfg<Dp>;
    const dim3 grid(unsigned((a.T + K::Br - 1) / K::Br), unsigned(B * size_t(a.H)));
    launch(attention_backward_kv_mma_kernel<Dp>, K::NT, K::kBackwardBytes, grid, a);
    launch(attention_backward_q_mma_kernel<Dp>, K::NT, K::kBackwardBytes, grid, a);
}

// bf16: the tensor-core kernels; fp32: the CUDA-core kernels of kernels/attention.cuh.
template <typename Tin, int Dp>
void run(bool forward, const AttnArgs& a, size_t B) {
    if constexpr (std::is_same_v<Tin, bf16>)
        forward ? forward_mma<Dp>(a, B) : backward_mma<Dp>(a, B);
    else
        forward ? forward_impl<Dp>(a, B) : backward_impl<Dp>(a, B);
}

template <typename Tin>
void dispatch(bool forward, int Dp, const AttnArgs& a, size_t B) {
    switch (Dp) {
        case 16: run<Tin, 16>(forward, a, B); break;
        case 32: run<Tin, 32>(forward, a, B); break;
        case 64: run<Tin, 64>(forward, a, B); break;
        case 96: run<Tin, 96>(forward, a, B); break;
        default: run<Tin, 128>(forward, a, B); break;
    }
}

}  // namespace

bool attention_supports_head_dim(size_t D) { return D >= 2 && D <= 128 && D % 2 == 0; }

void attention_forward(float* out, float* saved, float* att_z, float* att_slot, const float* qkv, const float* slot_k,
                       const float* slot_v, size_t B, size_t Tn, size_t C, size_t H, const AttentionSpec& spec) {
    if (B == 0 || Tn == 0) return;
    AttnArgs a = make_args(qkv, B, Tn, C, H, spec);
    a.out = out;
    a.lse = saved;
    a.z = att_z;
    const size_t rows = B * H * Tn;
    if (spec.has_key_slot()) {  // the key slot's scores s_i*, which start each row's statistics (attention_slot.cuh)
        float* slot_s = static_cast<float*>(scratch(kScratchAttention, rows * sizeof(float)));
        attention_slot_score_kernel<<<blocks_for(rows * 32, 256), 256>>>(slot_s, qkv, slot_k, int(B), a.T, a.C, a.H,
                                                                         a.D, a.scale, a.spec);
        CUDA_CHECK_LAUNCH();
        a.slot_s = slot_s;
    }
    const int Dp = padded_head_dim(C / H);
    if (precision() == Precision::bf16)
        dispatch<bf16>(true, Dp, a, B);
    else
        dispatch<float>(true, Dp, a, B);
    if (spec.has_key_slot()) {  // w_i*, and out_i += w_i* v*
        attention_slot_output_kernel<<<blocks_for(rows * 32, 256), 256>>>(out, att_slot, a.slot_s, saved, att_z, slot_v,
                                                                          int(B), a.T, a.C, a.H, a.D, a.spec);
        CUDA_CHECK_LAUNCH();
    }
}

void attention_backward(float* dqkv, float* d_slot_k, float* d_slot_v, const float* dout, const float* out,
                        const float* qkv, const float* slot_k, const float* slot_v, const float* saved,
                        const float* att_z, const float* att_slot, size_t B, size_t Tn, size_t C, size_t H,
                        const AttentionSpec& spec) {
    if (B == 0 || Tn == 0) return;
    AttnArgs a = make_args(qkv, B, Tn, C, H, spec);
    a.lse = const_cast<float*>(saved);
    a.z = const_cast<float*>(att_z);
    a.dout = dout;
    a.dqkv = dqkv;
    a.delta = nullptr;
    if (spec.is_normalised()) {
        float* delta = static_cast<float*>(scratch(kScratchAttention, B * H * Tn * sizeof(float)));
        const size_t rows = B * H * Tn;
        attention_delta_kernel<<<blocks_for(rows * 32, 256), 256>>>(delta, dout, out, att_z, int(B), int(Tn),
                                                                    int(C), int(H), int(C / H), a.spec);
        CUDA_CHECK_LAUNCH();
        a.delta = delta;
    }
    const int Dp = padded_head_dim(C / H);
    if (precision() == Precision::bf16)
        dispatch<bf16>(false, Dp, a, B);
    else
        dispatch<float>(false, Dp, a, B);
    if (spec.has_slot_score_param()) {  // the slot's terms: dq_i += ds_i* k*, and d_slot_k, d_slot_v per (b, h)
        attention_slot_backward_kernel<<<unsigned(B * H), 32 * kSlotBackwardWarps>>>(
            dqkv, d_slot_k, slot_v ? d_slot_v : nullptr, dout, qkv, slot_k, slot_v, att_slot, att_z, a.delta, a.T, a.C,
            a.H, a.D, a.scale, a.spec);
        CUDA_CHECK_LAUNCH();
    }
}

void attention_weights(float* att, float* att_z, float* att_slot, const float* qkv, const float* slot_k, size_t B,
                       size_t Tn, size_t C, size_t H, const AttentionSpec& spec) {
    if (B == 0 || Tn == 0) return;
    const AttnArgs a = make_args(qkv, B, Tn, C, H, spec);
    attention_weights_kernel<<<dim3(unsigned(Tn), unsigned(B * H)), 128>>>(att, att_z, att_slot, qkv, slot_k, a.T, a.C,
                                                                           a.H, a.D, a.scale, a.spec);
    CUDA_CHECK_LAUNCH();
}

}  // namespace sinklab::cuda
