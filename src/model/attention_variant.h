// The attention variant as data, and its math written once.
//
// Every attention of the model computes, for head h, query i and each key j that i sees:
//   s_ij  = scale q_i.k_j + bias(h, i, j)         the score          (scale = 1 / sqrt(D))
//   g_ij  = sim(s_ij)                             the score function
//   Z_i   = normaliser(sum_j g_ij)                the normaliser     (1 when there is none)
//   w_ij  = g_ij / Z_i                            the weight
//   out_i = sum_j w_ij v_j
// An AttentionSpec names the pieces: which score function, which normaliser, which bias, and which
// keys a query sees (the mask). The functions below are the per-element math of those pieces. The
// CPU reference (src/ops/attention.h), the fused CUDA kernels (cuda/kernels/attention.cuh,
// cuda/kernels/attention_mma.cuh) and the CPU emulation of those kernels (tests/test_cuda_emulated.cpp) all
// compile this header, so a new score function, normaliser, bias or mask is written here once and
// the loops around it only choose where to apply it. docs/attention.md has the math of each variant.
//
// Where the variants of the later issues land (the places this header leaves for them):
//   score function  sim and sim_grad                    (kernel feature maps: identity on phi(q).phi(k))
//   normaliser      row_normaliser, row_delta and       (max(|sum|, 1), the alpha-scaled softmax and
//                   score_grad; softpick_*               softpick are there)
//   score bias      score_bias(h, i, j)                 (ALiBi, T5 buckets)
//   mask            keys_seen, queries_seeing,          (causal, sliding window and prefix LM are there)
//                   key_visible, block_fully_visible
//   extra slot      slot_score_bias, and the slot term   (sink token, K/V biases are there; a learned
//                   in the loops                         sink logit is a slot with a fixed score)
// The masks must keep both ranges monotone: keys_seen(i).begin and .end never decrease with i, and
// likewise queries_seeing(j) with j. The kernels rely on it to bound a tile's walk by its first and
// last rows.
//
// The functions are templated on the scalar (float in training, double in the gradient checks) and
// on a Math policy giving exp and the reciprocal: the CPU passes its vectorizable exp, the fp32
// kernels expf, the tensor-core kernels their fast exp2-based one. Plain C++17, no std:: calls, so
// that nvcc compiles it for the device.
#pragma once
#include <string>
#include <type_traits>

#include "util/host_device.h"

namespace sinklab {

// The score function g = sim(s).
//   exp:      g = exp(s)                         (with the softmax normaliser: softmax)
//   sigmoid:  g = 1 / (1 + exp(-s))
//   elu:      g = elu(s) + 1 = s + 1 (s > 0), exp(s) (s <= 0)
//   identity: g = s                              (kernel attention: s = scale phi(q).phi(k))
enum class ScoreFunction : int { exp, sigmoid, elu, identity };

// The normaliser Z_i of a row, from the sum of its g.
//   softmax: Z = sum_j exp(s_ij); computed stably by subtracting the row maximum first (the kernels
//            keep LSE_i = log Z_i instead of Z_i).
//   sum:     Z = sum_j g_ij + 1e-8
//   abs_sum: Z = max(|sum_j g_ij|, 1)            (the linear and mlp kernels: g may be negative)
//   none:    Z = 1 (the weights are g itself and need not sum to one)
//   softpick: with the exp score function only (Zuhri et al. 2025, arXiv 2504.20966):
//            w_ij = relu(exp(s_ij) - 1) / Z_i,  Z_i = sum_j |exp(s_ij) - 1| + 1e-6. Not g / Z: the
//            numerator is rectified while the normaliser sums magnitudes, so the rows sum to at most one
//            and a row whose scores are all <= 0 is all zeros. Computed stably with
//            m_i = max(max_j s_ij, 0) (softpick_* below); att_z keeps log Z_i.
enum class Normalizer : int { softmax, sum, none, abs_sum, softpick };

// The feature map phi applied per head to q and k (after RoPE) before the scores, in the kernel
// variants: none (phi(x) = x), elu (phi(x) = elu(x) + 1), mlp (phi(x) = W2 relu(W1 x), W1 and W2
// of D x D, one pair per layer shared by q, k and all heads). The model applies it (the attention
// sub-block in src/model/model.h); the attention operations see phi(q) and phi(k) as q and k.
enum class FeatureMap : int { none, elu, mlp };

// Which keys a query i sees.
//   causal:  keys 0 .. i
//   window:  the last w keys up to i, i itself included: keys max(0, i - w + 1) .. i
//   prefix:  a prefix LM with prefix p: keys 0 .. max(i, p - 1). The first p tokens see each other
//            (bidirectional); every later token sees the whole prefix and the keys up to itself.
enum class MaskKind : int { causal, window, prefix };

// A position bias added to the scores (docs/attention.md, "Position biases"); the model then has no
// RoPE (`--position alibi`, `--position t5`):
//   none
//   alibi:  b(h, i, j) = m_h (j - i),  m_h = 2^(-8 (h + 1) / H) for the heads h = 0 .. H-1
//   t5:     b(h, i, j) = bucket(i - j), T5's unidirectional bucket index (32 buckets, max distance
//           128) added as a fixed number, as the paper's reference code does
enum class PositionBias : int { none, alibi, t5 };

// An extra key/value slot (`--slot`, docs/attention.md "Extra key/value slots"): a learned key k*
// that every query sees besides the keys of its mask, position-free (no RoPE, no position bias),
// with the value v* or 0; or a learned value v* added to every output, without a slot. k* and v*
// are one vector of D per head, or one shared by all heads (`--slot-shared`).
//   none
//   key:         key k*, value 0                              (`--slot k-bias`)
//   key_value:   key k*, value v*                             (`--slot kv-bias`)
//   sink_token:  key k*, value v*: the same computation as key_value, under the paper's name for it
//                                                             (`--slot sink-token`)
//   value:       out_i += v*, no slot                         (`--slot v-bias`)
//   logit:       a slot without key or value whose score is a learned scalar s_h per head: the
//                weights of the real keys sum to less than one (gpt-oss's sink logit)
//                                                             (`--slot sink-logit`)
//   zero_logit:  the same with s_h = 0 fixed, no parameter: exp(s_ij) / (1 + sum_j exp(s_ij)),
//                the off-by-one softmax                       (`--slot off-by-one`)
// The sink measurement sees a key slot (every kind but value) as key 0 of a (T+1)-key map whose
// query 0 is q_0 = 0.
enum class SlotKind : int { none, key, key_value, sink_token, value, logit, zero_logit };

// The epsilon of the sum normaliser.
constexpr double kAttentionNormEps = 1e-8;
// The epsilon of the softpick normaliser, added to sum_j |exp(s_ij) - 1| (docs/attention.md, "Softpick").
constexpr double kSoftpickEps = 1e-6;

struct AttentionSpec {
    ScoreFunction score = ScoreFunction::exp;
    Normalizer normalizer = Normalizer::softmax;
    double score_bias = 0.0;  // b added to every score (`--sigmoid-bias`; the sigmoid variants only)
    double softmax_alpha = 1.0;  // softmax only: the weights of a row sum to alpha (`--softmax-alpha`)
    FeatureMap feature_map = FeatureMap::none;
    MaskKind mask = MaskKind::causal;
    int window = 0;  // keys per query of the window mask (`--window`)
    int prefix = 0;  // prefix length of the prefix mask (`--prefix`)
    SlotKind slot = SlotKind::none;
    bool slot_shared = false;  // one k* (and v*) for all heads instead of one per head
    PositionBias position_bias = PositionBias::none;  // set by ModelConfig::attention_spec from `--position`
    double alibi_ratio = 0.0;  // 2^(-8/H), ALiBi's ratio between the slopes of two heads: set by for_shape

    // The command-line name of the score function, normaliser and feature map (config.cpp: e.g.
    // "softmax", "sigmoid-norm", "mlp-kernel").
    std::string name() const;
    // The name with every setting that differs from the default, e.g. "softmax, window 64".
    std::string describe() const;
    // True when the weights are not a probability distribution (no normaliser, or weights that may
    // be negative): the sink metric then uses proxy scores A~ = |w| / (sum_j |w| + 1e-8)
    // (docs/sinks.md).
    // Softpick's rows sum to less than one (and a row may be all zeros), so it is measured by proxy too.
    SINKLAB_HD bool needs_proxy() const {
        return normalizer == Normalizer::none || normalizer == Normalizer::abs_sum || normalizer == Normalizer::softpick;
    }
    // A kernel variant: scores are plain dot products of feature maps (no exponential).
    SINKLAB_HD bool is_kernel() const { return score == ScoreFunction::identity; }
    // The softmax normaliser: a running maximum, and LSE_i saved for the backward.
    SINKLAB_HD bool is_softmax() const { return normalizer == Normalizer::softmax; }
    // The softpick normaliser: a running maximum clamped at 0, and log Z_i saved for the backward.
    SINKLAB_HD bool is_softpick() const { return normalizer == Normalizer::softpick; }
    // The loops that keep a running maximum m_i and save a log-normaliser (LSE_i, or log Z_i for
    // softpick) instead of Z_i: softmax and softpick.
    SINKLAB_HD bool keeps_log_normaliser() const { return is_softmax() || is_softpick(); }
    // Any normaliser: the weights are divided by Z_i, and the backward needs
    // Delta_i = sum_j w_ij dL/dw_ij.
    SINKLAB_HD bool is_normalised() const { return normalizer != Normalizer::none; }
    // A slot that joins every row as one more key (the K and KV biases, the sink token, the sink logits).
    SINKLAB_HD bool has_key_slot() const {
        return slot == SlotKind::key || slot == SlotKind::key_value || slot == SlotKind::sink_token || slot_is_logit();
    }
    // A slot whose score is a logit (learned or 0) instead of scale q_i.k* + b.
    SINKLAB_HD bool slot_is_logit() const { return slot == SlotKind::logit || slot == SlotKind::zero_logit; }
    // The slot's score parameter: k* (D per head) or the learned logit (1 per head); none for off-by-one.
    SINKLAB_HD bool has_slot_score_param() const { return has_key_slot() && slot != SlotKind::zero_logit; }
    SINKLAB_HD int slot_score_width(int D) const { return slot_is_logit() ? 1 : D; }
    // A learned value v*: the slot's value, or the V bias added to every output.
    SINKLAB_HD bool has_slot_value() const {
        return slot == SlotKind::key_value || slot == SlotKind::sink_token || slot == SlotKind::value;
    }
    // The rows of k* and v*: one per head, or one shared by all heads.
    SINKLAB_HD int slot_heads(int n_heads) const { return slot_shared ? 1 : n_heads; }
};

// ------------------------------------------------------------------------------------------------
// The mask: the keys [begin, end) that a query sees, and the queries that see a key.
//
// The functions below assume a prefix no longer than the sequence: the attention operations first
// call for_shape(spec, T, H), which shortens a longer prefix to T (all tokens then see each other).
struct IndexRange {
    int begin, end;
};

SINKLAB_HD int max_of(int a, int b) { return a > b ? a : b; }
SINKLAB_HD int min_of(int a, int b) { return a < b ? a : b; }

// 2^-x for 0 <= x <= 8, without std:: (device code): halvings for the whole part, the series of
// exp(-f ln 2) for the fraction f (to double precision).
SINKLAB_HD double exp2_negative(double x) {
    double v = 1.0;
    while (x >= 1.0) {
        v *= 0.5;
        x -= 1.0;
    }
    double term = 1.0, sum = 1.0;
    for (int k = 1; k < 24; k++) {
        term *= -x * 0.69314718055994530942 / double(k);
        sum += term;
    }
    return v * sum;
}

// The spec as it applies to sequences of T tokens and H heads.
SINKLAB_HD AttentionSpec for_shape(AttentionSpec spec, int T, int H) {
    if (spec.mask == MaskKind::prefix) spec.prefix = min_of(spec.prefix, T);
    spec.alibi_ratio = exp2_negative(8.0 / double(H));
    return spec;
}

SINKLAB_HD IndexRange keys_seen(const AttentionSpec& spec, int i) {
    switch (spec.mask) {
        case MaskKind::window: return {max_of(0, i - spec.window + 1), i + 1};
        case MaskKind::prefix: return {0, max_of(i + 1, spec.prefix)};
        case MaskKind::causal: break;
    }
    return {0, i + 1};
}
SINKLAB_HD IndexRange queries_seeing(const AttentionSpec& spec, int j, int T) {
    switch (spec.mask) {
        case MaskKind::window: return {j, min_of(T, j + spec.window)};
        case MaskKind::prefix: return {j < spec.prefix ? 0 : j, T};
        case MaskKind::causal: break;
    }
    return {j, T};
}
SINKLAB_HD bool key_visible(const AttentionSpec& spec, int i, int j) {
    const IndexRange keys = keys_seen(spec, i);
    return j >= keys.begin && j < keys.end;
}
// True when every query in [i_first, i_last] sees every key in [j_first, j_last], so that a kernel
// may skip the per-element mask on that tile.
SINKLAB_HD bool block_fully_visible(const AttentionSpec& spec, int i_first, int i_last, int j_first, int j_last) {
    switch (spec.mask) {
        case MaskKind::window: return j_last <= i_first && j_first >= i_last - spec.window + 1;
        case MaskKind::prefix: return j_last <= i_first || j_last < spec.prefix;
        case MaskKind::causal: break;
    }
    return j_last <= i_first;
}

// ------------------------------------------------------------------------------------------------
// The score bias b(h, i, j) added to scale q_i.k_j: the sigmoid's constant b, and the position bias.

// T5's unidirectional bucket of a relative position n = i - j (num_buckets 32, max_distance 128):
// n for n < 16; else 16 + floor(log(n / 16) / log(128 / 16) * 16), at most 31; 0 for n < 0 (a key
// after the query, which only the prefix mask allows). Written as the formula's thresholds (the
// first n of each bucket from 17 on), so that every backend gets the same integer;
// test_ops_grad.cpp checks the thresholds against the formula.
SINKLAB_HD int t5_bucket(int n) {
    if (n < 16) return n < 0 ? 0 : n;
    return 16 + (n >= 19) + (n >= 21) + (n >= 24) + (n >= 27) + (n >= 31) + (n >= 35) + (n >= 40) + (n >= 46) +
           (n >= 52) + (n >= 59) + (n >= 67) + (n >= 77) + (n >= 87) + (n >= 99) + (n >= 113);
}

// ALiBi's slope of head h: m_h = r^(h + 1) with r = spec.alibi_ratio = 2^(-8/H), so that
// m_h = 2^(-8 (h + 1) / H) (at H = 8: 1/2, 1/4, ..., 1/256).
template <typename T>
SINKLAB_HD T alibi_slope(const AttentionSpec& spec, int h) {
    const T r = T(spec.alibi_ratio);
    T m = r;
    for (int k = 0; k < h; k++) m *= r;
    return m;
}

// The bias of one row (head h, query i), the kind of position bias P a compile-time constant and
// the head's slope worked out once: RowScoreBias<P, T> bias(spec, h, i); ... bias(j) ... It is the
// form for the CPU's loops over keys, which GCC vectorizes only without a switch inside (AVX2 has
// no masked arithmetic to if-convert one); see with_position_bias. score_bias dispatches to it.
template <PositionBias P, typename T>
struct RowScoreBias {
    T constant, slope;
    int i;
    SINKLAB_HD RowScoreBias(const AttentionSpec& spec, int h, int i_)
        : constant(T(spec.score_bias)), slope(P == PositionBias::alibi ? alibi_slope<T>(spec, h) : T(0)), i(i_) {}
    SINKLAB_HD T operator()(int j) const {
        if constexpr (P == PositionBias::alibi) return constant + slope * T(j - i);
        else if constexpr (P == PositionBias::t5) return constant + T(t5_bucket(i - j));
        else return constant;
    }
};
template <typename T>
SINKLAB_HD T score_bias(const AttentionSpec& spec, int h, int i, int j) {
    switch (spec.position_bias) {
        case PositionBias::alibi: return RowScoreBias<PositionBias::alibi, T>(spec, h, i)(j);
        case PositionBias::t5: return RowScoreBias<PositionBias::t5, T>(spec, h, i)(j);
        case PositionBias::none: break;
    }
    return RowScoreBias<PositionBias::none, T>(spec, h, i)(j);
}

// Calls body(tag) with the position bias kind as a compile-time constant, tag.value (the tags of
// these dispatchers are std::integral_constant):
//   with_position_bias(spec.position_bias, [&](auto P) { RowScoreBias<P.value, T> bias(spec, h, i); ... });
template <PositionBias P>
using PositionBiasTag = std::integral_constant<PositionBias, P>;
template <class Body>
SINKLAB_HD auto with_position_bias(PositionBias p, Body&& body) {
    switch (p) {
        case PositionBias::alibi: return body(PositionBiasTag<PositionBias::alibi>{});
        case PositionBias::t5: return body(PositionBiasTag<PositionBias::t5>{});
        case PositionBias::none: break;
    }
    return body(PositionBiasTag<PositionBias::none>{});
}

// The bias added to the slot's score scale q_i.k*: the constant part of score_bias only, as the
// slot has no position.
template <typename T>
SINKLAB_HD T slot_score_bias(const AttentionSpec& spec) {
    return T(spec.score_bias);
}

// The slot's score s_i*: scale q_i.k* + b for a key slot (q_dot_k = q_i.k*, computed by the caller
// only then); the learned logit s_h (score_row: head h's row of the parameter) or 0 for the logit
// slots.
template <typename T>
SINKLAB_HD T slot_score(const AttentionSpec& spec, T scale, T q_dot_k, const T* score_row) {
    if (spec.slot == SlotKind::zero_logit) return T(0);
    if (spec.slot == SlotKind::logit) return score_row[0];
    return scale * q_dot_k + slot_score_bias<T>(spec);
}

// ------------------------------------------------------------------------------------------------
// The score function g = sim(s), chosen at compile time (for loops that vectorize) or at run time.
template <ScoreFunction F, class Math, typename T>
SINKLAB_HD T sim(T s) {
    if constexpr (F == ScoreFunction::sigmoid) return Math::rcp(T(1) + Math::exp(-s));
    else if constexpr (F == ScoreFunction::elu) return s > T(0) ? s + T(1) : Math::exp(s);
    else if constexpr (F == ScoreFunction::identity) return s;
    else return Math::exp(s);
}
template <class Math, typename T>
SINKLAB_HD T sim(ScoreFunction f, T s) {
    switch (f) {
        case ScoreFunction::sigmoid: return sim<ScoreFunction::sigmoid, Math>(s);
        case ScoreFunction::elu: return sim<ScoreFunction::elu, Math>(s);
        case ScoreFunction::identity: return sim<ScoreFunction::identity, Math>(s);
        case ScoreFunction::exp: break;
    }
    return sim<ScoreFunction::exp, Math>(s);
}

// Calls body(tag) with the score function as a compile-time constant, tag.value:
//   with_score_function(f, [&](auto F) { ... sim<F.value, Math>(s) ... });
template <ScoreFunction F>
using ScoreFunctionTag = std::integral_constant<ScoreFunction, F>;
template <class Body>
SINKLAB_HD auto with_score_function(ScoreFunction f, Body&& body) {
    switch (f) {
        case ScoreFunction::sigmoid: return body(ScoreFunctionTag<ScoreFunction::sigmoid>{});
        case ScoreFunction::elu: return body(ScoreFunctionTag<ScoreFunction::elu>{});
        case ScoreFunction::identity: return body(ScoreFunctionTag<ScoreFunction::identity>{});
        case ScoreFunction::exp: break;
    }
    return body(ScoreFunctionTag<ScoreFunction::exp>{});
}

// The same for the normaliser: with_normalizer(n, [&](auto N) { ... score_grad<N.value>(...) ... }).
template <Normalizer N>
using NormalizerTag = std::integral_constant<Normalizer, N>;
template <class Body>
SINKLAB_HD auto with_normalizer(Normalizer n, Body&& body) {
    switch (n) {
        case Normalizer::sum: return body(NormalizerTag<Normalizer::sum>{});
        case Normalizer::none: return body(NormalizerTag<Normalizer::none>{});
        case Normalizer::abs_sum: return body(NormalizerTag<Normalizer::abs_sum>{});
        case Normalizer::softpick: return body(NormalizerTag<Normalizer::softpick>{});
        case Normalizer::softmax: break;
    }
    return body(NormalizerTag<Normalizer::softmax>{});
}

// dg/ds written in terms of g (what the backward has):
//   exp: g' = g;   sigmoid: g' = g (1 - g);   elu+1: g' = 1 (s > 0), exp(s) = g (s <= 0)  ->  min(g, 1)
//   identity: g' = 1
template <ScoreFunction F, typename T>
SINKLAB_HD T sim_grad(T g) {
    if constexpr (F == ScoreFunction::sigmoid) return g * (T(1) - g);
    else if constexpr (F == ScoreFunction::elu) return g < T(1) ? g : T(1);
    else if constexpr (F == ScoreFunction::identity) return T(1);
    else return g;
}
template <typename T>
SINKLAB_HD T sim_grad(ScoreFunction f, T g) {
    switch (f) {
        case ScoreFunction::sigmoid: return sim_grad<ScoreFunction::sigmoid>(g);
        case ScoreFunction::elu: return sim_grad<ScoreFunction::elu>(g);
        case ScoreFunction::identity: return sim_grad<ScoreFunction::identity>(g);
        case ScoreFunction::exp: break;
    }
    return sim_grad<ScoreFunction::exp>(g);
}

// ------------------------------------------------------------------------------------------------
// The normaliser Z_i of a row, as saved for the backward (att_z), from the row's sum of g (for
// softmax: the sum of exp(s - max); dividing by sum / alpha makes the row sum to alpha). For
// abs_sum the saved value keeps the sign of the sum (Z = sum when |sum| > 1, else 1): the
// backward needs it. The weights are g / |Z| (normaliser_divisor).
template <typename T>
SINKLAB_HD T row_normaliser(const AttentionSpec& spec, T sum) {
    switch (spec.normalizer) {
        case Normalizer::sum: return sum + T(kAttentionNormEps);
        case Normalizer::none: return T(1);
        case Normalizer::abs_sum: return sum > T(1) || sum < T(-1) ? sum : T(1);
        case Normalizer::softpick:  // the loops use softpick_normaliser instead
        case Normalizer::softmax: break;
    }
    return sum / T(spec.softmax_alpha);
}

// What the weights of a row are divided by, from its saved normaliser z: |z|.
template <typename T>
SINKLAB_HD T normaliser_divisor(T z) {
    return z < T(0) ? -z : z;
}

// Delta_i as score_grad needs it, from dot = sum_j w_ij dw_ij (= dO_i . O_i) and the row's saved
// normaliser z:
//   softmax with alpha: w = alpha p, and the gradient through the softmax needs sum_j p_ij dw_ij;
//   abs_sum: d|sum|/dg_j = sign(sum) where |sum| > 1, and Z does not depend on g where it is 1.
template <typename T>
SINKLAB_HD T row_delta(const AttentionSpec& spec, T dot, T z) {
    switch (spec.normalizer) {
        case Normalizer::softmax: return dot / T(spec.softmax_alpha);
        case Normalizer::abs_sum: return z > T(1) ? dot : (z < T(-1) ? -dot : T(0));
        case Normalizer::sum:
        case Normalizer::softpick:
        case Normalizer::none: break;
    }
    return dot;
}

// The gradient of the loss with respect to the score, times `scale` (ready for dq and dk), from
//   dw = dL/dw_ij,  w = w_ij,  g = g_ij,  inv_z = 1 / |Z_i|,  delta = row_delta(sum_j' w_ij' dw_ij', Z_i):
//   softmax:      ds = w (dw - delta)          (alpha p (dw - sum_j' p dw), p the plain softmax)
//   sum, abs_sum: ds = (dw - delta) / |Z| g'(g)
//   none:         ds = dw g'(g)
// The first form takes the normaliser N as a compile-time constant and g'(g) ready (sim_grad), for
// the CPU's loops over keys (see RowScoreBias); the second dispatches at run time.
template <Normalizer N, typename T>
SINKLAB_HD T score_grad(T scale, T dw, T w, T g_prime, T inv_z, T delta) {
    if constexpr (N == Normalizer::sum || N == Normalizer::abs_sum) return scale * ((dw - delta) * inv_z) * g_prime;
    else if constexpr (N == Normalizer::none) return scale * dw * g_prime;
    else return scale * w * (dw - delta);  // softmax (softpick: the loops use softpick_score_grad instead)
}
template <typename T>
SINKLAB_HD T score_grad(const AttentionSpec& spec, T scale, T dw, T w, T g, T inv_z, T delta) {
    const T g_prime = sim_grad(spec.score, g);  // (softmax does not use it)
    switch (spec.normalizer) {
        case Normalizer::sum: return score_grad<Normalizer::sum>(scale, dw, w, g_prime, inv_z, delta);
        case Normalizer::abs_sum: return score_grad<Normalizer::abs_sum>(scale, dw, w, g_prime, inv_z, delta);
        case Normalizer::none: return score_grad<Normalizer::none>(scale, dw, w, g_prime, inv_z, delta);
        case Normalizer::softpick:
        case Normalizer::softmax: break;
    }
    return score_grad<Normalizer::softmax>(scale, dw, w, g_prime, inv_z, delta);
}

// ------------------------------------------------------------------------------------------------
// Softpick (docs/attention.md, "Softpick"). A row's scores s_j over the keys it sees give
//   a_j = exp(s_j) - 1,   Z = sum_j |a_j| + eps,   w_j = relu(a_j) / Z.
// Stabilised with m = max(max_j s_j, 0): numerator and Z are multiplied by exp(-m), which is at most
// 1, so that neither exp(s_j - m) nor exp(-m) can overflow (m = max_j s_j alone would make
// exp(-m) overflow when every score is very negative):
//   d_j = exp(s_j - m) - exp(-m) = exp(-m) a_j,   Z' = sum_j |d_j| + eps exp(-m) = exp(-m) Z,
//   w_j = relu(d_j) / Z'  (exact: the factor exp(-m) cancels),   log Z = m + log Z'.
// A masked key contributes nothing (it is not in the sums). The loops keep m as a running maximum
// that starts at 0 and rescale the running sums by exp(m_old - m_new) when it grows, as for softmax.
// The backward gets L = log Z (saved in att_z, and in place of the LSE in the kernels) and recomputes
//   e_j = exp(s_j - L) = exp(s_j) / Z,   w_j = relu(e_j - exp(-L)).
// Since m >= 0, Z' >= eps exp(-m) gives L >= log eps, so exp(-L) <= 1 / eps.

// The shifted term d = exp(s - m) - shift of one score, with shift = exp(-m) (the row's).
template <class Math, typename T>
SINKLAB_HD T softpick_term(T s, T m, T shift) {
    return Math::exp(s - m) - shift;
}

// The row's stabilised normaliser Z' from sum_j |d_j| and shift = exp(-m).
template <typename T>
SINKLAB_HD T softpick_normaliser(T abs_sum, T shift) {
    return abs_sum + T(kSoftpickEps) * shift;
}

// The gradient of the loss with respect to the score s, times `scale`, from dw = dL/dw_j,
// e = exp(s - L) = exp(s) / Z and delta = sum_j' w_j' dw_j' (row_delta):
//   dw_k/ds_j = [k = j] [s_j > 0] exp(s_j) / Z - w_k sign(s_j) exp(s_j) / Z
//   ds_j = e (dw - delta) (s > 0),  e delta (s < 0),  0 (s = 0: relu and |.| both have slope 0 taken there)
template <typename T>
SINKLAB_HD T softpick_score_grad(T scale, T dw, T s, T e, T delta) {
    const T inner = s > T(0) ? dw - delta : (s < T(0) ? delta : T(0));
    return scale * e * inner;
}

// The weight of a key slot in its own row: query 0 of the (T+1)-key map that the sink measurement
// reads, with q_0 = 0, sees the slot alone, whose score is then the bias b. So w = sim(b) / Z(sim(b))
// (softmax: alpha; sum: ~1), or sim(b) without a normaliser.
template <class Math, typename T>
SINKLAB_HD T slot_own_weight(const AttentionSpec& spec) {
    if (spec.is_softmax()) return T(spec.softmax_alpha);
    const T g = sim<Math>(spec.score, slot_score_bias<T>(spec));
    return spec.is_normalised() ? g / normaliser_divisor(row_normaliser(spec, g)) : g;
}

}  // namespace sinklab
