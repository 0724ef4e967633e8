// The CUDA twins of the CPU operations in src/ops/ (one header per operation): same names, same
// shapes, same math (see the comment above each CPU function), same accumulate (+=) conventions.
// fp32 device pointers; everything runs in order on the default stream. Plain C++ declarations: each
// operation's launches are in the .cu file of the same name as its CPU header (src/ops/rmsnorm.h
// <-> cuda/rmsnorm.cu), its kernels in cuda/kernels/<op>.cuh.
#pragma once
#include <cstddef>
#include <cstdint>

namespace sinklab {
struct AttentionSpec;
struct AdamWHyper;
enum class Activation : int;
}  // namespace sinklab

namespace sinklab::cuda {

void embedding_forward(float* out, const int32_t* tokens, const float* wte, size_t N, size_t C);
// Deterministic: the positions of each token id are summed in position order (as on the CPU).
void embedding_backward(float* dwte, const float* dout, const int32_t* tokens, size_t N, size_t C);

void rmsnorm_forward(float* out, float* rstd, const float* x, const float* w, size_t N, size_t C, float eps);
void rmsnorm_backward(float* dx, float* dw, const float* dout, const float* x, const float* w, const float* rstd,
                      size_t N, size_t C);
void rmsnorm_groups_forward(float* out, float* rstd, const float* x, const float* w, size_t N, size_t C, size_t G,
                            float eps);
void rmsnorm_groups_backward(float* dx, float* dw, const float* dout, const float* x, const float* w,
                             const float* rstd, size_t N, size_t C, size_t G);

// cuBLAS; the precision setting (cuda_api.h) selects fp32 or bf16 tensor-core compute.
void matmul_forward(float* out, const float* inp, const float* weight, size_t N, size_t IC, size_t OC);
void matmul_backward(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                     size_t N, size_t IC, size_t OC);

void rope_forward(float* out, const float* qkv, const float* cos_t, const float* sin_t, size_t B, size_t Tn,
                  size_t C, size_t H);
void rope_backward(float* dqkv, const float* dout, const float* cos_t, const float* sin_t, size_t B, size_t Tn,
                   size_t C, size_t H);

// Fused causal attention (attention.cu). `saved` (B, H, T): the softmax log-sum-exp per row
// (0 for the other variants); att_z (B, H, T): Z_i as on the CPU (1 for softmax and the
// unnormalised variants). No T x T matrix is written. The backward also takes the forward's
// output `out` (for Delta_i = dO_i . O_i of the normalised variants). The key slot's arguments
// (att_slot, slot_k, slot_v, d_slot_k, d_slot_v) as in src/ops/attention.h.
void attention_forward(float* out, float* saved, float* att_z, float* att_slot, const float* qkv, const float* slot_k,
                       const float* slot_v, size_t B, size_t Tn, size_t C, size_t H, const AttentionSpec& spec);
void attention_backward(float* dqkv, float* d_slot_k, float* d_slot_v, const float* dout, const float* out,
                        const float* qkv, const float* slot_k, const float* slot_v, const float* saved,
                        const float* att_z, const float* att_slot, size_t B, size_t Tn, size_t C, size_t H,
                        const AttentionSpec& spec);
// Head dimensions the fused kernels take: any even D <= 128 (tiles are padded to 16/32/64/96/128).
bool attention_supports_head_dim(size_t D);

void activation_forward(float* out, const float* x, size_t n, Activation f);
void activation_backward(float* dx, const float* dout, const float* x, size_t n, Activation f);
void qkv_merge_forward(float* out, const float* qk_src, const float* v_src, size_t N, size_t C);
void qkv_merge_backward(float* dqk_src, float* dv_src, const float* dout, size_t N, size_t C);

void glu_forward(float* out, const float* fc, size_t N, size_t F, Activation f);
void glu_backward(float* dfc, const float* dout, const float* fc, size_t N, size_t F, Activation f);
void residual_add(float* x, const float* y, size_t n);
void bias_add_forward(float* x, const float* bias, size_t rows, size_t n);
void head_sum_forward(float* out, const float* y, size_t N, size_t H, size_t D);
void head_sum_backward(float* dy, const float* dout, size_t N, size_t H, size_t D);
void gate_forward(float* out, const float* y, const float* z, size_t N, size_t C, size_t G);
void gate_backward(float* dy, float* dz, const float* dout, const float* y, const float* z, size_t N, size_t C, size_t G);
void bias_add_backward(float* dbias, const float* dx, size_t rows, size_t n);

void crossentropy_forward(float* losses, const float* logits, const int32_t* targets, size_t N, size_t V);
void crossentropy_backward(float* dlogits, const float* logits, const int32_t* targets, float dloss, size_t N,
                           size_t V);

// Sum of squares in double: fixed chunks reduced in a fixed order (bitwise reproducible).
double sum_squares(const float* x, size_t n);
void adamw_update(float* params, const float* grads, float* m, float* v, size_t n, const AdamWHyper& hp,
                  size_t step, float grad_scale);

}  // namespace sinklab::cuda
