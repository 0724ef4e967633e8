// sinklab logits: the logits of one token sequence, as raw float32, for comparing this model with
// another implementation of it (tools/compare_hf_logits.py compares an exported model with
// Hugging Face transformers).
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "model/backend_cpu.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "util/error.h"
#include "util/fileio.h"

namespace sinklab {

int cmd_logits(int argc, char** argv) {
    ArgParser args("logits", "Write the logits of one token sequence (T, V) as little-endian float32.");
    args.option("checkpoint", "", "model.safetensors, a checkpoint directory, or a run directory", "PATH");
    args.option("ids", "", "the token ids, separated by commas or spaces", "IDS");
    args.option("out", "", "the output file: T x V float32 values, row by row", "FILE");
    args.threads_option();
    args.epilog("example:\n  sinklab logits --checkpoint imported/tinyllama --ids 1,450,4996 --out logits.f32");
    if (!args.parse(argc, argv)) return 0;
    if (!args.has("checkpoint")) fail("--checkpoint: required (see sinklab logits --help)");
    if (!args.has("ids")) fail("--ids: required");
    if (!args.has("out")) fail("--out: required");
    args.apply_threads();
    std::vector<int32_t> ids;
    {
        std::string text = args.get("ids");
        for (char& c : text)
            if (c == ',') c = ' ';
        std::istringstream in(text);
        std::string word;
        while (in >> word) {
            size_t used = 0;
            long long v = -1;
            try {
                v = std::stoll(word, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != word.size() || v < 0 || v > INT32_MAX) fail("--ids: '{}' is not a token id", word);
            ids.push_back(int32_t(v));
        }
    }
    if (ids.empty()) fail("--ids: no token ids");
    const std::string weights_path = resolve_weights_path(args.get("checkpoint"));
    std::unique_ptr<Model<CpuBackend<float>>> model;
    const ModelConfig config = load_safetensors_into(weights_path, [&](const ModelConfig& c) {
        if (ids.size() > c.context) fail("--ids: {} tokens exceed the model's context {}", ids.size(), c.context);
        for (const int32_t id : ids)
            if (size_t(id) >= c.vocab_size) fail("--ids: {} is outside the model's vocabulary of {}", id, c.vocab_size);
        model = std::make_unique<Model<CpuBackend<float>>>(c, ModelUse::inference);
        return model->params();
    });
    model->forward(ids.data(), nullptr, 1, ids.size());
    const size_t n = ids.size() * config.vocab_size;
    write_file_atomic(args.get("out"), std::string(reinterpret_cast<const char*>(model->acts().logits), n * sizeof(float)));
    fmt::print("wrote {}: {} x {} float32 logits\n", args.get("out"), ids.size(), config.vocab_size);
    return 0;
}

}  // namespace sinklab
