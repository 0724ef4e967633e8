// sinklab import --hf DIR --out DIR: a Hugging Face LLaMA-family checkpoint -> a sinklab checkpoint
// (docs/hf.md); sinklab export --checkpoint PATH --hf DIR: the reverse.
#include <filesystem>

#include <fmt/format.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "io/hf_checkpoint.h"
#include "train/checkpoint.h"
#include "util/error.h"
#include "util/fileio.h"

namespace sinklab {

namespace fs = std::filesystem;

int cmd_import(int argc, char** argv) {
    ArgParser args("import", "Convert a Hugging Face LLaMA-family checkpoint into a sinklab checkpoint.");
    args.option("hf", "", "the Hugging Face checkpoint directory: config.json and model.safetensors (or shards with "
                "model.safetensors.index.json); F32, F16 or BF16", "DIR");
    args.option("out", "", "where to write model.safetensors, hf_import.json (and tokenizer.json when the source has one)",
                "DIR");
    args.flag("overwrite", "replace a model.safetensors already in --out");
    args.epilog(
        "Imports LlamaForCausalLM and MistralForCausalLM without a sliding window: RMSNorm, RoPE (rotate-half, "
        "rope_theta), SwiGLU,\n"
        "no biases. Grouped-query attention is expanded (each key/value head copied to the query heads that read it);\n"
        "tied embeddings are untied. rope_scaling, sliding_window, attention_bias, mlp_bias, another hidden_act or\n"
        "head_dim are refused, naming the config key. Weights become float32.\n\n"
        "example:\n"
        "  sinklab import --hf ~/models/TinyLlama-1.1B --out imported/tinyllama\n"
        "  sinklab sink --checkpoint imported/tinyllama --probe-kind random --count 100 --length 64 --bos");
    if (!args.parse(argc, argv)) return 0;
    if (!args.has("hf")) fail("--hf: required (see sinklab import --help)");
    if (!args.has("out")) fail("--out: required (see sinklab import --help)");
    import_hf_checkpoint(args.get("hf"), args.get("out"), args.get_flag("overwrite"), true);
    return 0;
}

int cmd_export(int argc, char** argv) {
    ArgParser args("export", "Write a sinklab model as a Hugging Face LLaMA checkpoint (config.json, model.safetensors).");
    args.option("checkpoint", "", "model.safetensors, a checkpoint directory, or a run directory (its latest checkpoint)",
                "PATH");
    args.option("hf", "", "the output directory", "DIR");
    args.flag("overwrite", "replace a config.json or model.safetensors already in --hf");
    args.epilog(
        "Only models a LLaMA config.json describes: softmax attention, RoPE, pre-norm, SwiGLU, heads concatenated,\n"
        "no gate, no head norm, no slot, a causal mask; any other setting is refused, naming it. Key/value heads that\n"
        "are identical within groups of query heads are written back as grouped-query attention. An imported model's\n"
        "bos/eos ids (hf_import.json) and tokenizer.json, beside its weights, go along. transformers then loads it:\n"
        "  AutoModelForCausalLM.from_pretrained(DIR)   (tools/compare_hf_logits.py compares the logits)\n\n"
        "example:\n"
        "  sinklab export --checkpoint runs/softmax --hf exported/softmax");
    if (!args.parse(argc, argv)) return 0;
    if (!args.has("checkpoint")) fail("--checkpoint: required (see sinklab export --help)");
    if (!args.has("hf")) fail("--hf: required (see sinklab export --help)");
    const std::string weights_path = resolve_weights_path(args.get("checkpoint"));
    const LoadedWeights weights = load_safetensors(weights_path);
    const fs::path beside = fs::absolute(weights_path).parent_path();
    Json extra = Json::object();
    if (fs::exists(beside / "hf_import.json")) {
        const std::string record_path = (beside / "hf_import.json").string();
        const Json record = Json::parse(read_file(record_path), record_path);
        for (const char* key : {"bos_token_id", "eos_token_id"})
            if (record.is_object() && record.contains(key) && record.at(key).is_number()) extra[key] = record.at(key);
    }
    const std::string out = args.get("hf");
    export_hf_checkpoint(weights.config, weights.params.data(), out, extra, args.get_flag("overwrite"), true);
    if (fs::exists(beside / "tokenizer.json")) {
        write_file_atomic((fs::path(out) / "tokenizer.json").string(), read_file((beside / "tokenizer.json").string()));
        fmt::print("copied {}\n", (beside / "tokenizer.json").string());
    }
    return 0;
}

}  // namespace sinklab
