#!/usr/bin/env python3
"""A random Hugging Face LLaMA checkpoint of TinyLlama-1.1B's shape (bf16, 2.2 GB), for checking that
`sinklab import` and `sinklab sink` handle a 1B model on a 24 GiB machine without downloading one:

    python3 tools/fake_llama_1b.py /tmp/fake1b
    /usr/bin/time -v build/sinklab import --hf /tmp/fake1b --out /tmp/fake1b-imported
    /usr/bin/time -v build/sinklab sink --checkpoint /tmp/fake1b-imported --probe-kind random \
        --count 100 --length 64 --first-token 1

Weights: random signs, magnitudes in [2^-7, 2^-6); the RMSNorm weights 1. Standard library only.
"""
import json, os, struct, sys
out = sys.argv[1] if len(sys.argv) > 1 else "fake-llama-1b"
os.makedirs(out, exist_ok=True)
cfg = {"architectures": ["LlamaForCausalLM"], "hidden_size": 2048, "intermediate_size": 5632,
       "num_hidden_layers": 22, "num_attention_heads": 32, "num_key_value_heads": 4,
       "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 2048,
       "vocab_size": 32000, "tie_word_embeddings": False, "hidden_act": "silu", "model_type": "llama",
       "torch_dtype": "bfloat16"}
json.dump(cfg, open(f"{out}/config.json", "w"), indent=1)
C, F, L, V, KV = 2048, 5632, 22, 32000, 4 * 64
shapes = [("model.embed_tokens.weight", [V, C])]
for i in range(L):
    p = f"model.layers.{i}."
    shapes += [(p + "input_layernorm.weight", [C]), (p + "self_attn.q_proj.weight", [C, C]),
               (p + "self_attn.k_proj.weight", [KV, C]), (p + "self_attn.v_proj.weight", [KV, C]),
               (p + "self_attn.o_proj.weight", [C, C]), (p + "post_attention_layernorm.weight", [C]),
               (p + "mlp.gate_proj.weight", [F, C]), (p + "mlp.up_proj.weight", [F, C]),
               (p + "mlp.down_proj.weight", [C, F])]
shapes += [("model.norm.weight", [C]), ("lm_head.weight", [V, C])]
header, offset = {}, 0
for name, shape in shapes:
    n = 1
    for s in shape: n *= s
    header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + 2 * n]}
    offset += 2 * n
h = json.dumps(header).encode()
h += b" " * ((8 - len(h) % 8) % 8)
table = bytes(((b & 0x80) | 0x3C) for b in range(256))  # sign random, |w| in [2^-7, 2^-6)
one = struct.pack("<H", 0x3F80)  # bf16 1.0 for the norms
with open(f"{out}/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h))); f.write(h)
    for name, shape in shapes:
        n = 1
        for s in shape: n *= s
        if len(shape) == 1:
            f.write(one * n); continue
        left = n
        while left:
            m = min(left, 1 << 26)
            buf = bytearray(os.urandom(2 * m))
            buf[1::2] = bytes(buf[1::2]).translate(table)
            f.write(buf); left -= m
print("wrote", offset / 2, "parameters")
