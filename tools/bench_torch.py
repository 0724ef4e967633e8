#!/usr/bin/env python3
"""The PyTorch yardstick for the GPU benchmark (run by tools/gpu_check.sh only; the project never
imports it and nothing in the build or the tests needs PyTorch).

  python3 tools/bench_torch.py [--json PATH] [--quick] [--no-compile]

1. PyTorch's fused attention (F.scaled_dot_product_attention, causal, bf16, the flash backend
   forced) forward and backward at the shapes of bench_gpu: 8 heads, (head dim, context) in
   (96, 2048), (128, 2048), (96, 4096), 131072 tokens per call (B x H = 64 x 8 at T = 2048).
   Same FLOP convention (forward 4 B H T^2 D / 2, backward 2.5x forward).
2. The tinyllama-60m model (the preset in src/model/config.cpp) written in PyTorch (pre-norm RMSNorm, fused qkv,
   RoPE rotate-half, softmax attention, SwiGLU, untied head), bf16 autocast over fp32 weights,
   fused AdamW, clipping at 1.0; batch 8 x 2048; tokens/s eager and with torch.compile.
Times: CUDA events, median over repetitions after warm-up.
"""
import argparse
import json
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("bench_torch: skipped: PyTorch is not installed")
    sys.exit(77)

PEAK_BF16 = 989e12


def time_ms(fn, warmup, reps):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    times.sort()
    return times[len(times) // 2]


ATTENTION_SHAPES = [(96, 2048, 8), (128, 2048, 8), (96, 4096, 8)]  # (head dim, context, heads)
ATTENTION_TOKENS = 131072


def bench_sdpa(D, T, H, reps):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    B = ATTENTION_TOKENS // T
    q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
    dout = torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16)
    with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
        fwd = time_ms(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), 2, reps)
        out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        bwd = time_ms(lambda: torch.autograd.grad(out, (q, k, v), dout, retain_graph=True), 2, reps)
    flops = 4.0 * B * H * T * T * D / 2.0
    return {"bench": "torch_attention", "head_dim": D, "context": T, "batch": B, "heads": H,
            "fwd_ms": fwd, "bwd_ms": bwd, "fwd_tflops": flops / fwd / 1e9, "bwd_tflops": 2.5 * flops / bwd / 1e9}


class Block(nn.Module):
    def __init__(self, C, H, Fh):
        super().__init__()
        self.H = H
        self.attn_norm = nn.RMSNorm(C, eps=1e-5)
        self.qkv = nn.Linear(C, 3 * C, bias=False)
        self.out = nn.Linear(C, C, bias=False)
        self.ffn_norm = nn.RMSNorm(C, eps=1e-5)
        self.ffn_in = nn.Linear(C, 2 * Fh, bias=False)
        self.ffn_out = nn.Linear(Fh, C, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        D = C // self.H
        q, k, v = self.qkv(self.attn_norm(x)).view(B, T, 3, self.H, D).permute(2, 0, 3, 1, 4)

        def rope(t):
            t1, t2 = t[..., : D // 2], t[..., D // 2:]
            return torch.cat((t1 * cos - t2 * sin, t2 * cos + t1 * sin), dim=-1).to(t.dtype)

        y = F.scaled_dot_product_attention(rope(q), rope(k), v, is_causal=True)
        x = x + self.out(y.transpose(1, 2).reshape(B, T, C))
        gate, up = self.ffn_in(self.ffn_norm(x)).chunk(2, dim=-1)
        return x + self.ffn_out(F.silu(gate) * up)


class TinyLlama(nn.Module):
    def __init__(self, L=10, C=768, H=8, Fh=1536, V=50432, T=2048):
        super().__init__()
        self.embed = nn.Embedding(V, C)
        self.blocks = nn.ModuleList(Block(C, H, Fh) for _ in range(L))
        self.final_norm = nn.RMSNorm(C, eps=1e-5)
        self.lm_head = nn.Linear(C, V, bias=False)
        D = C // H
        inv = 10000.0 ** (-torch.arange(0, D // 2, dtype=torch.float64) * 2.0 / D)
        angle = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
        self.register_buffer("cos", angle.cos().float(), persistent=False)
        self.register_buffer("sin", angle.sin().float(), persistent=False)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.embed(idx)
        cos, sin = self.cos[:T], self.sin[:T]
        for b in self.blocks:
            x = b(x, cos, sin)
        logits = self.lm_head(self.final_norm(x))
        return F.cross_entropy(logits.float().view(-1, logits.shape[-1]), targets.view(-1))


def flops_per_token(L=10, C=768, Fh=1536, V=50432, T=2048):
    params = L * (2 * C + 4 * C * C + 3 * C * Fh) + C + 2 * V * C
    return 6.0 * (params - V * C) + 3.0 * 2.0 * 2.0 * L * C * T / 2.0  # as ModelConfig::train_flops_per_token


def bench_model(compiled, reps):
    torch.manual_seed(0)
    B, T, V = 8, 2048, 50432
    model = TinyLlama().cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=4e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, fused=True)
    run = torch.compile(model) if compiled else model
    idx = torch.randint(0, V, (B, T), device="cuda")
    tgt = torch.randint(0, V, (B, T), device="cuda")

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = run(idx, tgt)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    t0 = time.time()
    torch.cuda.reset_peak_memory_stats()
    ms = time_ms(step, 3, reps)
    tps = B * T / (ms / 1e3)
    return {"bench": "torch_model", "mode": "compiled" if compiled else "eager", "batch": B, "context": T,
            "step_ms": ms, "tokens_per_s": tps, "mfu_bf16": flops_per_token() * tps / PEAK_BF16,
            "peak_device_gib": torch.cuda.max_memory_allocated() / 2**30, "wall_s": time.time() - t0}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("bench_torch: skipped: PyTorch sees no GPU")
        sys.exit(77)
    reps = 5 if args.quick else 15
    print(f"bench_torch: torch {torch.__version__} on {torch.cuda.get_device_name(0)}")
    out = open(args.json, "w") if args.json else None

    class Results(list):  # one JSON object per line, written as each result comes
        def append(self, r):
            super().append(r)
            if out:
                out.write(json.dumps(r) + "\n")
                out.flush()

    results = Results()
    print(f"{'sdpa':<10} {'D':>4} {'T':>6} {'B x H':>7} {'fwd ms':>10} {'fwd TF/s':>10} {'bwd ms':>10} {'bwd TF/s':>10}")
    for D, T, H in ATTENTION_SHAPES:
        r = bench_sdpa(D, T, H, reps)
        results.append(r)
        bxh = f"{r['batch']}x{H}"
        print(f"{'flash':<10} {D:>4} {T:>6} {bxh:>7} "
              f"{r['fwd_ms']:>10.3f} {r['fwd_tflops']:>10.1f} {r['bwd_ms']:>10.3f} {r['bwd_tflops']:>10.1f}", flush=True)
        torch.cuda.empty_cache()
    print(f"{'torch model':<24} {'step ms':>10} {'tokens/s':>12} {'MFU':>8} {'peak GiB':>9}")
    for compiled in ([False] if args.no_compile else [False, True]):
        try:
            r = bench_model(compiled, 3 if args.quick else 6)
        except Exception as e:  # torch.compile may be unavailable (no compiler); report, continue
            print(f"bench_torch: model ({'compiled' if compiled else 'eager'}) failed: {e}")
            continue
        results.append(r)
        print(f"{r['mode']:<24} {r['step_ms']:>10.1f} {r['tokens_per_s']:>12.0f} {100 * r['mfu_bf16']:>7.1f}% "
              f"{r['peak_device_gib']:>9.2f}", flush=True)
        torch.cuda.empty_cache()
    if out:
        out.close()


if __name__ == "__main__":
    main()
