// sinklab sample: generate text from a checkpoint, printing each token as soon as it is chosen.
#include <cmath>
#include <memory>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "io/hf_checkpoint.h"
#include "model/backend_cpu.h"
#include "model/model.h"
#include "model/sample.h"
#include "train/checkpoint.h"
#include "train/run_reader.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/json.h"
#include "util/rng.h"

namespace sinklab {

int cmd_sample(int argc, char** argv) {
    ArgParser args("sample", "Generate text from a checkpoint, streaming token by token.");
    args.option("checkpoint", "", "a run directory, a checkpoint directory or a model.safetensors file", "PATH");
    args.option("tokenizer", "", "tokenizer file (default: tokenizer.bin next to the run's training shards)", "FILE");
    args.option("prompt", "", "text to continue (generation starts after <|endoftext|>, as a new document)", "TEXT");
    args.option("tokens", "200", "number of tokens to generate", "N");
    args.option("temperature", "0.8", "softmax temperature; 0 = greedy", "T");
    args.option("top-k", "40", "sample among the K most likely tokens (0 = all)", "K");
    args.option("seed", "1337", "random seed", "S");
    args.threads_option();
    args.flag("bos", "start from the BOS token of an imported Hugging Face model (hf_import.json) instead of <|endoftext|>");
    args.flag("continue-past-end", "keep generating after <|endoftext|> (default: stop there)");
    args.epilog("Example:\n  sinklab sample --checkpoint runs/default --prompt \"The scheduler\" --tokens 100\n");
    if (!args.parse(argc, argv)) return 0;
    if (!args.has("checkpoint")) fail("--checkpoint is required");
    args.apply_threads();
    const double temperature = args.get_double("temperature");
    if (!(temperature >= 0) || !std::isfinite(temperature))
        fail("--temperature must be a finite number >= 0 (got {})", temperature);
    const size_t n_tokens = args.get_size("tokens");
    const size_t top_k = args.get_size("top-k");

    const std::string weights_path = resolve_weights_path(args.get("checkpoint"));
    const std::string tokenizer_path = args.has("tokenizer") ? args.get("tokenizer") : find_run_tokenizer(weights_path);
    const Tokenizer tok = Tokenizer::load(tokenizer_path);

    // The weights are read straight into a model built for inference: one copy (a 1B imported model
    // fits a 24 GiB machine).
    using Backend = CpuBackend<float>;
    std::unique_ptr<Model<Backend>> model_holder;
    const ModelConfig config = load_safetensors_into(weights_path, [&](const ModelConfig& c) {
        if (tok.vocab_size() > c.vocab_size)
            fail("{}: the tokenizer has {} ids but the model {} only {}: not the tokenizer this model was trained with",
                 tokenizer_path, tok.vocab_size(), weights_path, c.vocab_size);
        model_holder = std::make_unique<Model<Backend>>(c, ModelUse::inference);
        return model_holder->params();
    });
    Model<Backend>& model = *model_holder;
    const size_t V = config.vocab_size;

    // Generation starts after <|endoftext|> (a new document), or after an imported model's BOS.
    std::vector<int32_t> ids = {args.get_flag("bos") ? int32_t(imported_bos_token(weights_path)) : tok.eot_id()};
    const std::string prompt = args.get("prompt");
    if (!prompt.empty()) {
        const std::vector<int32_t> p = tok.encode(prompt);
        ids.insert(ids.end(), p.begin(), p.end());
    }
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);

    Rng rng(uint64_t(args.get_int("seed")));
    const size_t context = config.context;
    for (size_t step = 0; step < n_tokens; step++) {
        // The last `context` tokens; causal attention makes position T-1 the next-token prediction.
        const size_t T = std::min(ids.size(), context);
        const int32_t* window = ids.data() + (ids.size() - T);
        model.forward(window, nullptr, 1, T);
        // Only ids the tokenizer knows can be chosen (a model's vocabulary may be padded).
        const float* logits = model.acts().logits + (T - 1) * V;
        const int32_t next = sample_token(logits, tok.vocab_size(), temperature, top_k, rng);
        if (next == tok.eot_id() && !args.get_flag("continue-past-end")) break;
        ids.push_back(next);
        const std::string& bytes = tok.token_bytes(next);
        std::fwrite(bytes.data(), 1, bytes.size(), stdout);
        std::fflush(stdout);
    }
    std::fputc('\n', stdout);
    return 0;
}

}  // namespace sinklab
