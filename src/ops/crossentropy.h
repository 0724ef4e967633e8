// The loss: cross entropy of the logits against the next token, and its fused softmax backward.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "ops/common.h"
#include "ops/exp.h"

namespace sinklab {

// Cross entropy, forward.  logits: (N, V), targets: (N)  ->  losses: (N)
//   losses[n] = logsumexp(logits[n, :]) - logits[n, targets[n]];  a negative target is ignored (loss 0).
template <typename T>
void crossentropy_forward(T* losses, const T* logits, const int32_t* targets, size_t N, size_t V) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        if (targets[n] < 0) {
            losses[n] = 0;
            continue;
        }
        const T* row = logits + n * V;
        const T max_l = row_max(row, V);
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (size_t v = 0; v < V; v++) sum += exp_of(row[v] - max_l);
        losses[n] = std::log(sum) + max_l - row[size_t(targets[n])];
    }
}

// Cross entropy fused with the softmax over the vocabulary, backward. Writes (=, not +=):
//   dlogits[n, v] = dloss * (softmax(logits[n])[v] - [v == targets[n]])   (0 for ignored rows)
// dlogits may be the same buffer as logits (each row is read fully before it is written).
template <typename T>
void crossentropy_backward(T* dlogits, const T* logits, const int32_t* targets, T dloss, size_t N, size_t V) {
#pragma omp parallel for schedule(static)
    for (size_t n = 0; n < N; n++) {
        const T* row = logits + n * V;
        T* drow = dlogits + n * V;
        if (targets[n] < 0) {
            for (size_t v = 0; v < V; v++) drow[v] = 0;
            continue;
        }
        const T max_l = row_max(row, V);
        // drow = exp(logits - max) first (in place is fine: element v is read, then written) ...
        T sum = 0;
#pragma omp simd reduction(+ : sum)
        for (size_t v = 0; v < V; v++) {
            drow[v] = exp_of(row[v] - max_l);
            sum += drow[v];
        }
        // ... then scaled by dloss / sum, minus dloss at the target
        const T factor = dloss / sum;
#pragma omp simd
        for (size_t v = 0; v < V; v++) drow[v] *= factor;
        drow[size_t(targets[n])] -= dloss;
    }
}

}  // namespace sinklab
