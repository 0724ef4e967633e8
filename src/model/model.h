// The LLaMA-style model, written once for every backend (CpuBackend in backend_cpu.h, CudaBackend in
// cuda/backend_cuda.h): which layers, in what order, on which buffers.
//
//   tokens (B, T)
//     -> embedding                                  x_0 (B, T, C)
//     -> L pre-norm blocks:
//          x_mid = x_l + Wo . Attention(RoPE(Wqkv . RMSNorm(x_l)))
//          x_l+1 = x_mid + W3 . SwiGLU(W12 . RMSNorm(x_mid))   (or another FFN: `--ffn-type`)
//        (`--norm post`: x_mid = RMSNorm(x_l + Wo . Attention(...Wqkv . x_l)),
//                        x_l+1 = RMSNorm(x_mid + FFN(x_mid)), and no final norm)
//     -> final RMSNorm -> LM head (untied)          logits (B, T, V)
//     -> cross entropy against the next tokens      mean loss
//
// Parameters live in one allocation laid out by the declarations of params.h (names, shapes,
// initialisation: each tensor declared once there); gradients and the two AdamW moments use the
// same layout in allocations of their own.
#pragma once
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "model/backend.h"
#include "model/config.h"
#include "model/params.h"
#include "model/tensor_table.h"
#include "ops/adamw.h"
#include "ops/embedding.h"  // sinusoidal_table
#include "ops/rope.h"       // rope_table
#include "util/error.h"
#include "util/memory.h"
#include "util/rng.h"

namespace sinklab {

// Activations of one forward pass over B sequences of T tokens (N = B T), kept for backward,
// stacked per layer. `att_saved` holds what the backend's attention keeps for its backward: one
// value per row on both backends (the weights are recomputed). The full weights (L, B, H, T, T),
// which the sink analysis reads, are in `att_maps` only in the keep-maps mode
// (Model::keep_attention_maps), never in training.
template <typename T>
struct Activations {
    T* resid;       // (L+1, B, T, C)  residual stream entering each block; resid[L] = last block's output
    T* resid_mid;   // (L, B, T, C)    residual stream after the attention sub-block
    T* attn_norm;   // (L, B, T, C)    pre-norm only
    T* attn_pre_norm;  // (L, B, T, C) post-norm only: x + Attn(x), before its RMSNorm
    T* attn_rstd;   // (L, B, T)
    T* qkv;         // (L, B, T, 3C)   before RoPE
    T* qkv_rope;    // (L, B, T, 3C)   after RoPE (v copied); null without RoPE (then qkv is used)
    // the feature map of the kernel variants (null without one; docs/attention.md), over whole qkv
    // rows seen as (3 B T H, D) head rows:
    T* phi_pre;     // (L, B, T, 3C)   mlp: W1 . qkv_rope
    T* phi_act;     // (L, B, T, 3C)   elu: elu(qkv_rope) + 1;  mlp: relu(phi_pre)
    T* phi_out;     // (L, B, T, 3C)   mlp: W2 . phi_act
    T* qkv_feat;    // (L, B, T, 3C)   [phi(q) | phi(k) | v]: what the attention reads
    T* att_saved;   // (L, attention_saved_size) = (L, B, H, T): the row's log-normaliser (src/ops/attention.h)
    T* att_maps;    // (L, B, H, T, T) the weights w[l, b, h, i, j]: keep-maps mode only, else null
    T* att_z;       // (L, B, H, T)    normaliser Z_i
    T* att_slot;    // (L, B, H, T)    the key slot's weight w_i* (null without a key slot)
    T* attn_y;      // (L, B, T, C)    attention output, heads concatenated
    T* attn_sum;    // (L, B, T, D)    the heads summed (`--head-output sum` only)
    T* attn_head_normed;  // (L, B, T, C)  `--head-norm rms`: attn_y RMSNorm'ed per head
    T* attn_head_rstd;    // (L, B, T, H)  its 1/rms per head
    T* attn_gate_z; // (L, B, T, G)    `--attention-gate`: the gates' logits x W_g
    T* attn_gated;  // (L, B, T, C)    `--attention-gate`: attn_y scaled by sig(attn_gate_z), what Wo reads
    T* ffn_norm;    // (L, B, T, C)    pre-norm only
    T* ffn_pre_norm;  // (L, B, T, C)  post-norm only: x_mid + FFN(x_mid), before its RMSNorm
    T* ffn_rstd;    // (L, B, T)
    T* ffn_fc;      // (L, B, T, FI)   [gate | up] (FI = 2F), or W1 n of a plain FFN (FI = F)
    T* ffn_act;     // (L, B, T, F)    f(gate) * up, or f(W1 n)
    T* final_norm;  // (B, T, C)
    T* final_rstd;  // (B, T)
    T* logits;      // (B, T, V)       overwritten by dlogits during backward
    T* losses;      // (B, T)
    // backward scratch, one layer at a time
    T* d_resid;     // (B, T, C)       gradient of the residual stream, flowing down the layers
    T* d_norm;      // (B, T, C)
    T* d_qkv_rope;  // (B, T, 3C)      with RoPE only
    T* d_qkv;       // (B, T, 3C)
    T* d_qkv_feat;  // (B, T, 3C)      with a feature map only, as are the three below
    T* d_phi_pre;   // (B, T, 3C)      mlp
    T* d_phi_act;   // (B, T, 3C)
    T* d_phi_out;   // (B, T, 3C)      mlp
    T* d_attn_y;    // (B, T, C)
    T* d_attn_sum;  // (B, T, D)       heads summed only
    T* d_attn_head_normed;  // (B, T, C)  head-wise RMSNorm only
    T* d_attn_gated;  // (B, T, C)     gated attention only, as is the one below
    T* d_attn_gate_z; // (B, T, G)
    T* d_slot_k;    // (B, H, D)       the key slot's k* (or sink logit: (B, H, 1)) and v* gradients per (b, h), before the sum
    T* d_slot_v;    // (B, H, D)       over b (and h when shared); null without them
    T* d_ffn_fc;    // (B, T, FI)
    T* d_ffn_act;   // (B, T, F)
};

// What a Model is built for: training keeps gradients and AdamW moments beside the parameters
// (four parameter-sized allocations); inference keeps the parameters only.
enum class ModelUse { training, inference };

template <ModelBackend Backend>
class Model {
public:
    using T = typename Backend::Scalar;

    // use: training (parameters, gradients and both AdamW moments) or inference (the parameters
    // only: forward passes, e.g. measuring the sinks of a 1B-parameter imported model on the CPU).
    explicit Model(const ModelConfig& config, ModelUse use = ModelUse::training) : config_(config), use_(use) {
        config_.validate();
        table_ = make_param_table(config_);
        const size_t n = table_.total();
        const bool training = use_ == ModelUse::training;
        require_memory((training ? 4.0 : 1.0) * double(n) * sizeof(T) +
                           double(config_.context) * double(config_.d_model) * 2 * sizeof(T),
                       fmt::format("the model ({} parameters{}, and its position tables for context {})", n,
                                   training ? ", with gradients and AdamW moments" : "", config_.context),
                       "reduce --width, --layers, --ffn, --vocab or --context");
        params_ = Backend::template alloc<T>(n);
        if (training) {
            grads_ = Backend::template alloc<T>(n);
            adam_m_ = Backend::template alloc<T>(n);
            adam_v_ = Backend::template alloc<T>(n);
        }
        // The pointers never move: carved once, for the whole model and for each block.
        p_ = carve_params(params_, config_);
        if (training) g_ = carve_params(grads_, config_);
        for (size_t l = 0; l < config_.n_layers; l++) {
            p_layers_.push_back(layer_view(p_, config_, l));
            if (training) g_layers_.push_back(layer_view(g_, config_, l));
        }
        // RoPE tables (context, D/2), computed once on the host.
        const size_t half = config_.head_dim() / 2;
        std::vector<T> cos_host(config_.context * half), sin_host(config_.context * half);
        rope_table(cos_host.data(), sin_host.data(), config_.context, config_.head_dim(), config_.rope_base);
        rope_cos_ = Backend::template alloc<T>(cos_host.size());
        rope_sin_ = Backend::template alloc<T>(sin_host.size());
        Backend::upload(rope_cos_, cos_host.data(), cos_host.size());
        Backend::upload(rope_sin_, sin_host.data(), sin_host.size());
        // The sinusoidal absolute positions (context, C).
        if (config_.position == PositionKind::sinusoidal) {
            std::vector<T> table(config_.context * config_.d_model);
            sinusoidal_table(table.data(), config_.context, config_.d_model);
            position_table_ = Backend::template alloc<T>(table.size());
            Backend::upload(position_table_, table.data(), table.size());
        }
    }
    ~Model() {
        for (T* p : {params_, grads_, adam_m_, adam_v_, rope_cos_, rope_sin_, position_table_, act_memory_})
            Backend::release(p);
        Backend::release(tokens_);
    }
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    const ModelConfig& config() const { return config_; }
    const TensorTable& param_table() const { return table_; }
    size_t n_params() const { return table_.total(); }
    T* params() { return params_; }
    T* grads() { return grads_; }
    T* adam_m() { return adam_m_; }
    T* adam_v() { return adam_v_; }
    const Activations<T>& acts() const { return acts_; }
    size_t activation_bytes() const { return act_total_ * sizeof(T); }

    // The keep-maps mode, for the sink analysis at small T: while on, every forward also writes
    // each layer's full attention weights into acts().att_maps (L, B, H, T, T). Off by default
    // (training never holds a T x T matrix per (b, h)). Only a backend with
    // attention_forward_keeping_maps (the CPU) has it. The activations are reallocated (with or
    // without att_maps) by the next forward.
    void keep_attention_maps(bool keep) {
        if constexpr (!BackendKeepsAttentionMaps<Backend>) {
            if (keep) fail("this backend does not write attention maps (the sink analysis runs on the CPU)");
        }
        keep_maps_ = keep;
    }
    bool keeps_attention_maps() const { return keep_maps_; }

    // Initialisation, on the host with the project's own RNG, then uploaded: each tensor by the
    // InitKind its declaration gives (params.h; the formulas are in docs/model.md). Each tensor
    // draws from its own stream (seed, tensor index), so adding a tensor does not change the others.
    void init_weights(uint64_t seed) {
        std::vector<T> host(table_.total());
        const double C = double(config_.d_model), L = double(config_.n_layers);
        const bool paper = config_.init == InitScheme::paper;
        size_t index = 0;
        for_each_param<T>(config_, [&](const ParamDecl<T>& d) {
            const TensorSpec& s = table_.specs()[index];
            Rng rng(seed * 1000003ull + index);
            index++;
            T* p = host.data() + s.offset;
            const double bound = 1.0 / std::sqrt(double(s.shape.back()));  // torch: U(-1/sqrt(fan_in), ..)
            for (size_t k = 0; k < s.numel; k++) {
                double value;
                if (d.init == InitKind::norm_gain)
                    value = 1.0;
                else if (d.init == InitKind::slot)
                    value = 0.02 * rng.normal();
                else if (paper && d.init == InitKind::output_projection)
                    value = 1.0 / (std::sqrt(C) * L) * rng.normal();
                else if (paper)
                    value = std::sqrt(2.0 / (5.0 * C)) * rng.normal();
                else if (d.init == InitKind::embedding)
                    value = rng.normal();
                else
                    value = (2.0 * rng.uniform() - 1.0) * bound;
                p[k] = T(value);
            }
        });
        Backend::upload(params_, host.data(), host.size());
        if (use_ == ModelUse::inference) return;
        Backend::zero(grads_, table_.total());
        Backend::zero(adam_m_, table_.total());
        Backend::zero(adam_v_, table_.total());
    }

    // Forward over B sequences of T tokens (host arrays of B*T ids). With targets (next tokens,
    // -1 = ignored), computes the losses and returns their mean over the counted positions;
    // without, returns 0 and leaves the logits. Checks every id against the vocabulary.
    double forward(const int32_t* inputs, const int32_t* targets, size_t B, size_t Tn) {
        const ModelConfig& c = config_;
        if (Tn > c.context) fail("sequence length {} exceeds the model's context {}", Tn, c.context);
        check_ids(inputs, B * Tn, "input");
        if (targets) check_ids(targets, B * Tn, "target");
        ensure_activations(B, Tn);
        const size_t L = c.n_layers, C = c.d_model, V = c.vocab_size, N = B * Tn;
        Backend::upload(tokens_, inputs, N);
        if (targets) Backend::upload(tokens_ + N, targets, N);
        const ParamTensors<T>& p = p_;
        Activations<T>& a = acts_;
        const T eps = T(c.norm_eps);

        Backend::embedding_forward(a.resid, tokens_, p.embed, N, C);
        if (const T* positions = absolute_positions(p))  // x_0 (B, T C) += P[0 .. T) (T C) on every row
            Backend::bias_add_forward(a.resid, positions, B, Tn * C);
        for (size_t l = 0; l < L; l++) {
            const Activations<T> al = layer_acts(l);
            attention_block_forward(p_layers_[l], al, B, Tn);
            ffn_block_forward(p_layers_[l], al, N);
        }
        // The LM head reads the final norm's output, or x_L itself with post-norm (no final norm).
        const T* head_in = a.resid + L * N * C;
        if (!c.post_norm) {
            Backend::rmsnorm_forward(a.final_norm, a.final_rstd, a.resid + L * N * C, p.final_norm, N, C, eps);
            head_in = a.final_norm;
        }
        Backend::matmul_forward(a.logits, head_in, p.lm_head, N, C, V);
        if (!targets) return 0.0;

        Backend::crossentropy_forward(a.losses, a.logits, tokens_ + N, N, V);
        std::vector<T> losses(N);
        Backend::download(losses.data(), a.losses, N);
        double sum = 0.0;
        counted_ = 0;
        for (size_t n = 0; n < N; n++)
            if (targets[n] >= 0) {
                sum += double(losses[n]);
                counted_++;
            }
        has_targets_ = true;
        return counted_ ? sum / double(counted_) : 0.0;
    }

    void zero_grad() {
        require_training("zero_grad");
        Backend::zero(grads_, table_.total());
    }

    // Backward of (scale x the mean loss) of the last forward; accumulates into the gradients.
    // (scale = 1 / micro-batches for gradient accumulation.)
    void backward(double scale = 1.0) {
        require_training("backward");
        if (!has_targets_) fail("backward() needs a forward() with targets first");
        has_targets_ = false;  // the logits are about to be overwritten by their gradient
        const ModelConfig& c = config_;
        const size_t L = c.n_layers, C = c.d_model, V = c.vocab_size;
        const size_t B = act_B_, Tn = act_T_, N = B * Tn;
        const ParamTensors<T>& p = p_;
        const ParamTensors<T>& g = g_;
        Activations<T>& a = acts_;
        const T dloss = counted_ ? T(scale / double(counted_)) : T(0);

        // LM head and final norm. The logits buffer becomes dlogits.
        Backend::crossentropy_backward(a.logits, a.logits, tokens_ + N, dloss, N, V);
        Backend::zero(a.d_resid, N * C);
        if (c.post_norm) {
            Backend::matmul_backward(a.d_resid, g.lm_head, a.logits, a.resid + L * N * C, p.lm_head, N, C, V);
        } else {
            Backend::zero(a.d_norm, N * C);
            Backend::matmul_backward(a.d_norm, g.lm_head, a.logits, a.final_norm, p.lm_head, N, C, V);
            Backend::rmsnorm_backward(a.d_resid, g.final_norm, a.d_norm, a.resid + L * N * C, p.final_norm,
                                      a.final_rstd, N, C);
        }
        // Blocks, last to first. d_resid holds dLoss/dx_{l+1} on entry and dLoss/dx_l on exit.
        for (size_t l = L; l-- > 0;) {
            const Activations<T> al = layer_acts(l);
            ffn_block_backward(p_layers_[l], g_layers_[l], al, N);
            attention_block_backward(p_layers_[l], g_layers_[l], al, B, Tn);
        }
        Backend::embedding_backward(g.embed, a.d_resid, tokens_, N, C);
        if (config_.position == PositionKind::learned) Backend::bias_add_backward(g.pos_embed, a.d_resid, B, Tn * C);
    }

    // L2 norm of all gradients (in double, deterministic).
    double grad_norm() const {
        require_training("grad_norm");
        return std::sqrt(Backend::sum_squares(grads_, table_.total()));
    }

    // One AdamW update of every parameter (weight decay on all, docs/model.md) with the
    // gradients multiplied by grad_scale (the clipping factor). step is 1-based.
    void adamw_step(const AdamWHyper& hp, size_t step, double grad_scale) {
        require_training("adamw_step");
        Backend::adamw_update(params_, grads_, adam_m_, adam_v_, table_.total(), hp, step, T(grad_scale));
    }

private:
    // ---- the two sub-blocks of a layer, forward and backward, over layer l's views: pl, gl the
    // parameters and gradients of block l (layer_view), al the activations of layer l (layer_acts),
    // with al.resid = x_l (N, C), al.resid_mid = x_mid, al.resid + N C = x_{l+1}. ----

    // Attention sub-block, forward:  x_mid = x + Wo . Attention(phi(RoPE(Wqkv . RMSNorm(x))))
    //   attn_norm (N, C) -> qkv (N, 3C) -> qkv_rope (N, 3C) [-> qkv_feat (N, 3C)] -> attn_y (N, C)
    //   -> resid_mid (N, C);  phi: the feature map of the kernel variants, on q and k only.
    //   `--slot`: the key slot k* (and v*) joins the attention; the V bias is added to attn_y.
    //   `--head-output sum`: attn_y's heads summed into attn_sum (N, D), and Wo of (C, D).
    //   `--norm post`: Wqkv reads x itself, and x_mid = RMSNorm(attn_pre_norm), attn_pre_norm = x + Wo . (...).
    //   Between the attention and Wo, in this order (each optional):
    //   `--head-norm rms`: attn_head_normed = RMSNorm of each head's D values of attn_y, own D gains;
    //   `--attention-gate`: attn_gated = (its input) * sig(attn_gate_z), attn_gate_z = (what Wqkv
    //   reads) . W_g (N, G).
    void attention_block_forward(const ParamTensors<T>& pl, const Activations<T>& al, size_t B, size_t Tn) {
        const size_t C = config_.d_model, H = config_.n_heads, N = B * Tn;
        const bool post = config_.post_norm;
        if (!post) Backend::rmsnorm_forward(al.attn_norm, al.attn_rstd, al.resid, pl.attn_norm, N, C, T(config_.norm_eps));
        Backend::matmul_forward(al.qkv, post ? al.resid : al.attn_norm, pl.attn_qkv, N, C, 3 * C);
        if (config_.has_rope()) Backend::rope_forward(al.qkv_rope, al.qkv, rope_cos_, rope_sin_, B, Tn, C, H);
        const T* attn_in = feature_map_forward(pl, al, positioned_qkv(al), N);
        const AttentionSpec& spec = attention_spec_;
        const T* slot_v = spec.has_key_slot() ? pl.attn_slot_v : nullptr;
        if constexpr (BackendKeepsAttentionMaps<Backend>) {
            if (keep_maps_) {
                Backend::attention_forward_keeping_maps(al.att_maps, al.attn_y, al.att_saved, al.att_z, al.att_slot,
                                                        attn_in, pl.attn_slot_k, slot_v, B, Tn, C, H, spec);
            } else {
                Backend::attention_forward(al.attn_y, al.att_saved, al.att_z, al.att_slot, attn_in, pl.attn_slot_k,
                                           slot_v, B, Tn, C, H, spec);
            }
        } else {
            Backend::attention_forward(al.attn_y, al.att_saved, al.att_z, al.att_slot, attn_in, pl.attn_slot_k, slot_v,
                                       B, Tn, C, H, spec);
        }
        if (spec.slot == SlotKind::value) {  // the V bias: attn_y (N, H, D) += v* on every row
            const size_t S = size_t(spec.slot_heads(int(H)));
            Backend::bias_add_forward(al.attn_y, pl.attn_slot_v, N * H / S, S * config_.head_dim());
        }
        const T* heads = al.attn_y;  // what the output projection reads, after the optional steps below
        if (config_.head_norm) {  // attn_head_normed (N, H, D): each head's values RMSNorm'ed, its own gains
            Backend::rmsnorm_groups_forward(al.attn_head_normed, al.attn_head_rstd, heads, pl.attn_head_norm, N, C, H,
                                            T(config_.norm_eps));
            heads = al.attn_head_normed;
        }
        const size_t G = config_.gate_count();
        if (G > 0) {  // the gate: attn_gated = heads * sig(x W_g), x what Wqkv read
            Backend::matmul_forward(al.attn_gate_z, post ? al.resid : al.attn_norm, pl.attn_gate, N, C, G);
            Backend::gate_forward(al.attn_gated, heads, al.attn_gate_z, N, C, G);
            heads = al.attn_gated;
        }
        T* sum = post ? al.attn_pre_norm : al.resid_mid;  // x + Wo . attention
        if (config_.sum_heads) {  // attn_sum (N, D) = sum_h heads (N, H, D), then the (C, D) projection
            const size_t D = config_.head_dim();
            Backend::head_sum_forward(al.attn_sum, heads, N, H, D);
            Backend::matmul_forward(sum, al.attn_sum, pl.attn_out, N, D, C);
        } else {
            Backend::matmul_forward(sum, heads, pl.attn_out, N, C, C);
        }
        Backend::residual_add(sum, al.resid, N * C);
        if (post) Backend::rmsnorm_forward(al.resid_mid, al.attn_rstd, sum, pl.attn_norm, N, C, T(config_.norm_eps));
    }

    // Feed-forward sub-block, forward (`--ffn-type`; FI = 2F gated, F plain):
    //   gated:  x_{l+1} = x_mid + W3 . (f(W1 n) * W2 n),   n = RMSNorm(x_mid)   (SwiGLU: f = silu)
    //   plain:  x_{l+1} = x_mid + W2 . f(W1 n)
    //   ffn_norm (N, C) -> ffn_fc (N, FI) [gate | up] or [W1 n] -> ffn_act (N, F) -> x_{l+1} (N, C)
    //   `--norm post`: n = x_mid itself, and x_{l+1} = RMSNorm(ffn_pre_norm), ffn_pre_norm = x_mid + FFN.
    void ffn_block_forward(const ParamTensors<T>& pl, const Activations<T>& al, size_t N) {
        const size_t C = config_.d_model, F = config_.d_ffn, FI = ffn_in_width();
        const Activation f = ffn_activation(config_.ffn);
        T* x_next = al.resid + N * C;
        const bool post = config_.post_norm;
        if (!post) Backend::rmsnorm_forward(al.ffn_norm, al.ffn_rstd, al.resid_mid, pl.ffn_norm, N, C, T(config_.norm_eps));
        Backend::matmul_forward(al.ffn_fc, post ? al.resid_mid : al.ffn_norm, pl.ffn_in, N, C, FI);
        if (ffn_is_gated(config_.ffn))
            Backend::glu_forward(al.ffn_act, al.ffn_fc, N, F, f);
        else
            Backend::activation_forward(al.ffn_act, al.ffn_fc, N * F, f);
        T* sum = post ? al.ffn_pre_norm : x_next;  // x_mid + FFN
        Backend::matmul_forward(sum, al.ffn_act, pl.ffn_out, N, F, C);
        Backend::residual_add(sum, al.resid_mid, N * C);
        if (post) Backend::rmsnorm_forward(x_next, al.ffn_rstd, sum, pl.ffn_norm, N, C, T(config_.norm_eps));
    }

    // Feed-forward sub-block, backward. d_resid: dLoss/dx_{l+1} on entry (the residual passes it to
    // x_mid unchanged; with post-norm, first back through the norm), dLoss/dx_mid on exit (the
    // branch's gradient added).
    void ffn_block_backward(const ParamTensors<T>& pl, const ParamTensors<T>& gl, const Activations<T>& al, size_t N) {
        const size_t C = config_.d_model, F = config_.d_ffn, FI = ffn_in_width();
        const Activation f = ffn_activation(config_.ffn);
        const bool post = config_.post_norm;
        if (post) through_post_norm(al.d_resid, pl.ffn_norm, gl.ffn_norm, al.ffn_pre_norm, al.ffn_rstd, al.d_norm, N);
        Backend::zero(al.d_ffn_act, N * F);
        Backend::matmul_backward(al.d_ffn_act, gl.ffn_out, al.d_resid, al.ffn_act, pl.ffn_out, N, F, C);
        Backend::zero(al.d_ffn_fc, N * FI);
        if (ffn_is_gated(config_.ffn))
            Backend::glu_backward(al.d_ffn_fc, al.d_ffn_act, al.ffn_fc, N, F, f);
        else
            Backend::activation_backward(al.d_ffn_fc, al.d_ffn_act, al.ffn_fc, N * F, f);
        if (post) {  // the FFN read x_mid itself
            Backend::matmul_backward(al.d_resid, gl.ffn_in, al.d_ffn_fc, al.resid_mid, pl.ffn_in, N, C, FI);
            return;
        }
        Backend::zero(al.d_norm, N * C);
        Backend::matmul_backward(al.d_norm, gl.ffn_in, al.d_ffn_fc, al.ffn_norm, pl.ffn_in, N, C, FI);
        Backend::rmsnorm_backward(al.d_resid, gl.ffn_norm, al.d_norm, al.resid_mid, pl.ffn_norm, al.ffn_rstd, N, C);
    }

    // Post-norm, backward through x = RMSNorm(h): d (N, C) holds dLoss/dx on entry and dLoss/dh on
    // exit (h = the residual sum, which passes it to both of its terms); scratch: an (N, C) buffer.
    void through_post_norm(T* d, const T* w, T* dw, const T* h, const T* rstd, T* scratch, size_t N) {
        const size_t C = config_.d_model;
        Backend::zero(scratch, N * C);
        Backend::rmsnorm_backward(scratch, dw, d, h, w, rstd, N, C);
        Backend::zero(d, N * C);
        Backend::residual_add(d, scratch, N * C);
    }

    // The width of the FFN's first projection: 2F gated ([gate | up]), F plain.
    size_t ffn_in_width() const { return (ffn_is_gated(config_.ffn) ? 2 : 1) * config_.d_ffn; }

    // Attention sub-block, backward. d_resid: dLoss/dx_mid on entry, dLoss/dx_l on exit.
    void attention_block_backward(const ParamTensors<T>& pl, const ParamTensors<T>& gl, const Activations<T>& al,
                                  size_t B, size_t Tn) {
        const size_t C = config_.d_model, H = config_.n_heads, N = B * Tn;
        const bool post = config_.post_norm;
        if (post) through_post_norm(al.d_resid, pl.attn_norm, gl.attn_norm, al.attn_pre_norm, al.attn_rstd, al.d_norm, N);
        // attn_y -> [head norm] -> normed -> [gate] -> heads -> Wo, the gradients back along it
        const size_t G = config_.gate_count();
        const T* normed = config_.head_norm ? al.attn_head_normed : al.attn_y;  // what the gate read
        const T* heads = G > 0 ? al.attn_gated : normed;                        // what the output projection read
        T* d_normed = config_.head_norm ? al.d_attn_head_normed : al.d_attn_y;
        T* d_heads = G > 0 ? al.d_attn_gated : d_normed;
        Backend::zero(d_heads, N * C);
        if (config_.sum_heads) {
            const size_t D = config_.head_dim();
            Backend::zero(al.d_attn_sum, N * D);
            Backend::matmul_backward(al.d_attn_sum, gl.attn_out, al.d_resid, al.attn_sum, pl.attn_out, N, D, C);
            Backend::head_sum_backward(d_heads, al.d_attn_sum, N, H, D);
        } else {
            Backend::matmul_backward(d_heads, gl.attn_out, al.d_resid, heads, pl.attn_out, N, C, C);
        }
        if (G > 0) {  // through the gate: d_normed, and the gates' logits (W_g's part comes last, below)
            Backend::zero(d_normed, N * C);
            Backend::zero(al.d_attn_gate_z, N * G);
            Backend::gate_backward(d_normed, al.d_attn_gate_z, al.d_attn_gated, normed, al.attn_gate_z, N, C, G);
        }
        if (config_.head_norm) {  // through the head-wise RMSNorm: d_attn_y and its gains
            Backend::zero(al.d_attn_y, N * C);
            Backend::rmsnorm_groups_backward(al.d_attn_y, gl.attn_head_norm, al.d_attn_head_normed, al.attn_y,
                                             pl.attn_head_norm, al.attn_head_rstd, N, C, H);
        }
        const AttentionSpec& spec = attention_spec_;
        const size_t D = config_.head_dim(), S = size_t(spec.slot_heads(int(H)));
        if (spec.slot == SlotKind::value)  // the V bias: dv* += the sum of d_attn_y over the rows
            Backend::bias_add_backward(gl.attn_slot_v, al.d_attn_y, N * H / S, S * D);
        const bool has_phi = spec.feature_map != FeatureMap::none, rope = config_.has_rope();
        T* d_positioned = rope ? al.d_qkv_rope : al.d_qkv;  // the gradient of positioned_qkv(al)
        T* d_attn_in = has_phi ? al.d_qkv_feat : d_positioned;
        Backend::zero(d_attn_in, N * 3 * C);
        const T* slot_v = spec.has_key_slot() ? pl.attn_slot_v : nullptr;
        Backend::attention_backward(d_attn_in, al.d_slot_k, al.d_slot_v, al.d_attn_y, al.attn_y,
                                    has_phi ? al.qkv_feat : positioned_qkv(al), pl.attn_slot_k, slot_v, al.att_saved, al.att_z,
                                    al.att_slot, B, Tn, C, H, spec);
        if (spec.has_key_slot()) {  // k* or s_h (and v*): the per-(b, h) gradients summed over b (and h when shared)
            const size_t W = size_t(spec.slot_score_width(int(D)));
            if (spec.has_slot_score_param()) Backend::bias_add_backward(gl.attn_slot_k, al.d_slot_k, B * H / S, S * W);
            if (slot_v) Backend::bias_add_backward(gl.attn_slot_v, al.d_slot_v, B * H / S, S * D);
        }
        if (has_phi) {
            Backend::zero(d_positioned, N * 3 * C);
            feature_map_backward(pl, gl, al, positioned_qkv(al), d_positioned, N);
        }
        if (rope) {
            Backend::zero(al.d_qkv, N * 3 * C);
            Backend::rope_backward(al.d_qkv, al.d_qkv_rope, rope_cos_, rope_sin_, B, Tn, C, H);
        }
        if (post) {  // the attention (and the gate) read x itself
            Backend::matmul_backward(al.d_resid, gl.attn_qkv, al.d_qkv, al.resid, pl.attn_qkv, N, C, 3 * C);
            if (G > 0) Backend::matmul_backward(al.d_resid, gl.attn_gate, al.d_attn_gate_z, al.resid, pl.attn_gate, N, C, G);
            return;
        }
        Backend::zero(al.d_norm, N * C);
        Backend::matmul_backward(al.d_norm, gl.attn_qkv, al.d_qkv, al.attn_norm, pl.attn_qkv, N, C, 3 * C);
        if (G > 0) Backend::matmul_backward(al.d_norm, gl.attn_gate, al.d_attn_gate_z, al.attn_norm, pl.attn_gate, N, C, G);
        Backend::rmsnorm_backward(al.d_resid, gl.attn_norm, al.d_norm, al.resid, pl.attn_norm, al.attn_rstd, N, C);
    }

    // The feature map phi of the kernel variants (docs/attention.md) on q and k, v kept, over whole
    // qkv rows seen as (3 N H, D) head rows (v's rows are computed and then dropped by the merge):
    //   elu: qkv_feat = merge(elu(x) + 1, x)
    //   mlp: qkv_feat = merge(W2 . relu(W1 . x), x)          (x: q, k after RoPE, when there is RoPE)
    // x: positioned_qkv(al). Returns what the attention reads: qkv_feat, or x without a feature map.
    const T* feature_map_forward(const ParamTensors<T>& pl, const Activations<T>& al, const T* x, size_t N) {
        const size_t C = config_.d_model, D = config_.head_dim(), head_rows = 3 * N * config_.n_heads;
        switch (config_.attention.feature_map) {
            case FeatureMap::none: return x;
            case FeatureMap::elu:
                Backend::activation_forward(al.phi_act, x, N * 3 * C, Activation::elu_plus_one);
                Backend::qkv_merge_forward(al.qkv_feat, al.phi_act, x, N, C);
                break;
            case FeatureMap::mlp:
                Backend::matmul_forward(al.phi_pre, x, pl.attn_phi_w1, head_rows, D, D);
                Backend::activation_forward(al.phi_act, al.phi_pre, N * 3 * C, Activation::relu);
                Backend::matmul_forward(al.phi_out, al.phi_act, pl.attn_phi_w2, head_rows, D, D);
                Backend::qkv_merge_forward(al.qkv_feat, al.phi_out, x, N, C);
                break;
        }
        return al.qkv_feat;
    }

    // The feature map, backward: d_qkv_feat -> dx (+=, zeroed by the caller; x = positioned_qkv(al))
    // and the gradients of W1, W2. The merge sends v's gradient straight to dx and leaves zeros in
    // v's rows of d_phi_*, so those rows add nothing to the weight gradients.
    void feature_map_backward(const ParamTensors<T>& pl, const ParamTensors<T>& gl, const Activations<T>& al,
                              const T* x, T* dx, size_t N) {
        const size_t C = config_.d_model, D = config_.head_dim(), head_rows = 3 * N * config_.n_heads;
        switch (config_.attention.feature_map) {
            case FeatureMap::none: break;
            case FeatureMap::elu:
                Backend::zero(al.d_phi_act, N * 3 * C);
                Backend::qkv_merge_backward(al.d_phi_act, dx, al.d_qkv_feat, N, C);
                Backend::activation_backward(dx, al.d_phi_act, x, N * 3 * C,
                                             Activation::elu_plus_one);
                break;
            case FeatureMap::mlp:
                Backend::zero(al.d_phi_out, N * 3 * C);
                Backend::qkv_merge_backward(al.d_phi_out, dx, al.d_qkv_feat, N, C);
                Backend::zero(al.d_phi_act, N * 3 * C);
                Backend::matmul_backward(al.d_phi_act, gl.attn_phi_w2, al.d_phi_out, al.phi_act, pl.attn_phi_w2,
                                         head_rows, D, D);
                Backend::zero(al.d_phi_pre, N * 3 * C);
                Backend::activation_backward(al.d_phi_pre, al.d_phi_act, al.phi_pre, N * 3 * C, Activation::relu);
                Backend::matmul_backward(dx, gl.attn_phi_w1, al.d_phi_pre, x, pl.attn_phi_w1,
                                         head_rows, D, D);
                break;
        }
    }

    // q, k, v as the attention (or its feature map) reads them: after RoPE, or the projection's
    // output itself without RoPE (`--position` other than rope).
    const T* positioned_qkv(const Activations<T>& al) const { return config_.has_rope() ? al.qkv_rope : al.qkv; }

    // The absolute position table added to the embeddings: the sinusoidal table, the learned one
    // (a parameter), or null.
    const T* absolute_positions(const ParamTensors<T>& p) const {
        if (config_.position == PositionKind::sinusoidal) return position_table_;
        if (config_.position == PositionKind::learned) return p.pos_embed;
        return nullptr;
    }

    // The activations with every per-layer buffer moved to layer l's slice (the others unchanged).
    Activations<T> layer_acts(size_t l) const {
        Activations<T> view = acts_;
        for (const auto& [field, layer_numel] : act_layer_numel_) view.*field += l * layer_numel;
        return view;
    }

    void check_ids(const int32_t* ids, size_t n, const char* what) const {
        for (size_t i = 0; i < n; i++) {
            const bool ignored_target = what[0] == 't' && ids[i] == -1;
            if (!ignored_target && (ids[i] < 0 || size_t(ids[i]) >= config_.vocab_size))
                fail("{} token id {} at position {} is outside the vocabulary (size {})", what, ids[i], i,
                     config_.vocab_size);
        }
    }

    // (Re)allocates the activations for B sequences of T tokens (and the keep-maps mode), all in one
    // allocation.
    void ensure_activations(size_t B, size_t Tn) {
        if (B == act_B_ && Tn == act_T_ && keep_maps_ == act_keep_maps_) return;
        Backend::release(act_memory_);
        Backend::release(tokens_);
        const size_t L = config_.n_layers, C = config_.d_model, F = config_.d_ffn, V = config_.vocab_size;
        const size_t H = config_.n_heads, N = B * Tn;
        // Each buffer is added with the field that points at it (bound when added, not by position);
        // a per-layer buffer is stacked over the layers, given one layer's shape.
        TensorTable t;
        std::vector<std::pair<T* Activations<T>::*, size_t>> bindings;  // (field, offset)
        act_layer_numel_.clear();
        using A = Activations<T>;
        auto once = [&](T* A::*field, const char* name, std::vector<size_t> shape) {
            bindings.push_back({field, t.add(name, std::move(shape))});
        };
        auto per_layer = [&](T* A::*field, const char* name, size_t layers, std::vector<size_t> layer_shape) {
            size_t layer_numel = 1;
            for (size_t s : layer_shape) layer_numel *= s;
            act_layer_numel_.push_back({field, layer_numel});
            layer_shape.insert(layer_shape.begin(), layers);
            once(field, name, std::move(layer_shape));
        };
        per_layer(&A::resid, "resid", L + 1, {N, C});
        per_layer(&A::resid_mid, "resid_mid", L, {N, C});
        if (config_.post_norm) {
            per_layer(&A::attn_pre_norm, "attn_pre_norm", L, {N, C});
            per_layer(&A::ffn_pre_norm, "ffn_pre_norm", L, {N, C});
        } else {
            per_layer(&A::attn_norm, "attn_norm", L, {N, C});
            per_layer(&A::ffn_norm, "ffn_norm", L, {N, C});
        }
        per_layer(&A::attn_rstd, "attn_rstd", L, {N});
        per_layer(&A::qkv, "qkv", L, {N, 3 * C});
        if (config_.has_rope()) per_layer(&A::qkv_rope, "qkv_rope", L, {N, 3 * C});
        const FeatureMap phi = config_.attention.feature_map;
        if (phi == FeatureMap::mlp) per_layer(&A::phi_pre, "phi_pre", L, {N, 3 * C});
        if (phi != FeatureMap::none) per_layer(&A::phi_act, "phi_act", L, {N, 3 * C});
        if (phi == FeatureMap::mlp) per_layer(&A::phi_out, "phi_out", L, {N, 3 * C});
        if (phi != FeatureMap::none) per_layer(&A::qkv_feat, "qkv_feat", L, {N, 3 * C});
        per_layer(&A::att_saved, "att_saved", L, {Backend::attention_saved_size(B, H, Tn)});
        if (keep_maps_) per_layer(&A::att_maps, "att_maps", L, {B, H, Tn, Tn});
        per_layer(&A::att_z, "att_z", L, {B, H, Tn});
        const AttentionSpec& spec = config_.attention;
        if (spec.has_key_slot()) per_layer(&A::att_slot, "att_slot", L, {B, H, Tn});
        per_layer(&A::attn_y, "attn_y", L, {N, C});
        if (config_.sum_heads) per_layer(&A::attn_sum, "attn_sum", L, {N, config_.head_dim()});
        if (config_.head_norm) {
            per_layer(&A::attn_head_normed, "attn_head_normed", L, {N, C});
            per_layer(&A::attn_head_rstd, "attn_head_rstd", L, {N, H});
        }
        const size_t G = config_.gate_count();
        if (G > 0) {
            per_layer(&A::attn_gate_z, "attn_gate_z", L, {N, G});
            per_layer(&A::attn_gated, "attn_gated", L, {N, C});
        }
        per_layer(&A::ffn_rstd, "ffn_rstd", L, {N});
        per_layer(&A::ffn_fc, "ffn_fc", L, {N, ffn_in_width()});
        per_layer(&A::ffn_act, "ffn_act", L, {N, F});
        if (!config_.post_norm) {
            once(&A::final_norm, "final_norm", {N, C});
            once(&A::final_rstd, "final_rstd", {N});
        }
        once(&A::logits, "logits", {N, V});
        once(&A::losses, "losses", {N});
        once(&A::d_resid, "d_resid", {N, C});
        once(&A::d_norm, "d_norm", {N, C});
        if (config_.has_rope()) once(&A::d_qkv_rope, "d_qkv_rope", {N, 3 * C});
        once(&A::d_qkv, "d_qkv", {N, 3 * C});
        if (phi != FeatureMap::none) once(&A::d_qkv_feat, "d_qkv_feat", {N, 3 * C});
        if (phi == FeatureMap::mlp) once(&A::d_phi_pre, "d_phi_pre", {N, 3 * C});
        if (phi != FeatureMap::none) once(&A::d_phi_act, "d_phi_act", {N, 3 * C});
        if (phi == FeatureMap::mlp) once(&A::d_phi_out, "d_phi_out", {N, 3 * C});
        once(&A::d_attn_y, "d_attn_y", {N, C});
        if (config_.sum_heads) once(&A::d_attn_sum, "d_attn_sum", {N, config_.head_dim()});
        if (config_.head_norm) once(&A::d_attn_head_normed, "d_attn_head_normed", {N, C});
        if (G > 0) {
            once(&A::d_attn_gated, "d_attn_gated", {N, C});
            once(&A::d_attn_gate_z, "d_attn_gate_z", {N, G});
        }
        if (spec.has_slot_score_param())
            once(&A::d_slot_k, "d_slot_k", {B, H, size_t(spec.slot_score_width(int(config_.head_dim())))});
        if (spec.has_key_slot() && spec.has_slot_value()) once(&A::d_slot_v, "d_slot_v", {B, H, config_.head_dim()});
        once(&A::d_ffn_fc, "d_ffn_fc", {N, ffn_in_width()});
        once(&A::d_ffn_act, "d_ffn_act", {N, F});
        require_memory(double(t.total()) * sizeof(T),
                       fmt::format("the activations of {} sequences of {} tokens", B, Tn), "reduce --batch or --seq");
        act_memory_ = Backend::template alloc<T>(t.total());
        act_total_ = t.total();
        tokens_ = Backend::template alloc<int32_t>(2 * N);
        acts_ = Activations<T>{};  // the buffers of this shape and mode only; the others null
        for (const auto& [field, offset] : bindings) acts_.*field = act_memory_ + offset;
        act_B_ = B;
        act_T_ = Tn;
        act_keep_maps_ = keep_maps_;
        has_targets_ = false;
    }

    void require_training(const char* what) const {
        if (use_ != ModelUse::training) fail("Model::{}: this model was built for inference (no gradients)", what);
    }

    ModelConfig config_;
    ModelUse use_ = ModelUse::training;
    TensorTable table_;
    T* params_ = nullptr;
    T* grads_ = nullptr;
    T* adam_m_ = nullptr;
    T* adam_v_ = nullptr;
    ParamTensors<T> p_{}, g_{};                        // parameters and gradients, by tensor
    std::vector<ParamTensors<T>> p_layers_, g_layers_;  // the same for block l (layer_view)
    T* rope_cos_ = nullptr;
    T* rope_sin_ = nullptr;
    T* position_table_ = nullptr;  // (context, C): the sinusoidal positions (`--position sinusoidal`)
    const AttentionSpec attention_spec_ = config_.attention_spec();  // with the position bias
    T* act_memory_ = nullptr;
    size_t act_total_ = 0;
    int32_t* tokens_ = nullptr;  // (2, N): inputs then targets, on the backend
    Activations<T> acts_{};
    std::vector<std::pair<T* Activations<T>::*, size_t>> act_layer_numel_;  // per-layer buffers, one layer's size
    size_t act_B_ = 0, act_T_ = 0;
    bool keep_maps_ = false;      // keep_attention_maps
    bool act_keep_maps_ = false;  // the mode the activations were allocated in
    size_t counted_ = 0;  // positions with a target in the last forward
    bool has_targets_ = false;
};

}  // namespace sinklab
