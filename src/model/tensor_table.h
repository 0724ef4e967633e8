// Named tensors carved out of one allocation. A table lists (name, shape) in order; each tensor's
// offset is the sum of the sizes before it. Parameters, gradients and both AdamW moments share one
// table (so "the gradient of X" is at the same offset as X), and so do the activations.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "util/error.h"

namespace sinklab {

struct TensorSpec {
    std::string name;
    std::vector<size_t> shape;
    size_t offset = 0;  // in elements from the start of the allocation
    size_t numel = 0;
};

class TensorTable {
public:
    // Appends a tensor; returns its offset.
    size_t add(const std::string& name, std::vector<size_t> shape) {
        TensorSpec spec{name, std::move(shape), total_, 1};
        for (size_t d : spec.shape) spec.numel *= d;
        total_ += spec.numel;
        specs_.push_back(spec);
        return spec.offset;
    }
    const TensorSpec& find(const std::string& name) const {
        for (const TensorSpec& s : specs_)
            if (s.name == name) return s;
        fail("no tensor named '{}'", name);
    }
    bool contains(const std::string& name) const {
        for (const TensorSpec& s : specs_)
            if (s.name == name) return true;
        return false;
    }
    const std::vector<TensorSpec>& specs() const { return specs_; }
    size_t total() const { return total_; }

private:
    std::vector<TensorSpec> specs_;
    size_t total_ = 0;
};

}  // namespace sinklab
