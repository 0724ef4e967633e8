#!/usr/bin/env python3
"""Compare sinklab's logits with Hugging Face transformers' on the same checkpoint.

    tools/compare_hf_logits.py --checkpoint runs/softmax [--sinklab build/sinklab] [--tokens 32]

Exports the sinklab checkpoint with `sinklab export --hf` (or uses --hf DIR, an exported or an
original Hugging Face LLaMA checkpoint, which it then imports with `sinklab import`), runs the same
token ids through `sinklab logits` and through transformers' AutoModelForCausalLM in float32, and
prints the largest absolute difference of the logits. Exit codes: 0 they agree within --tolerance,
1 they do not, 77 (skipped) when torch or transformers is not installed.
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="a sinklab checkpoint (a run, a checkpoint directory or model.safetensors)")
    parser.add_argument("--hf", help="a Hugging Face LLaMA checkpoint directory (instead of --checkpoint)")
    parser.add_argument("--sinklab", default="build/sinklab", help="the sinklab binary (default: build/sinklab)")
    parser.add_argument("--tokens", type=int, default=32, help="sequence length (default 32)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tolerance", type=float, default=1e-3, help="largest allowed |difference| (default 1e-3)")
    args = parser.parse_args()
    if bool(args.checkpoint) == bool(args.hf):
        parser.error("give exactly one of --checkpoint and --hf")

    try:
        import numpy as np
        import torch
        from transformers import AutoModelForCausalLM
    except ImportError as e:  # the comparison needs both; without them there is nothing to compare
        print(f"skipped: {e.name or e} is not installed (pip install torch transformers numpy)")
        return 77

    work = tempfile.mkdtemp(prefix="sinklab_compare_")
    try:
        if args.checkpoint:
            hf_dir = os.path.join(work, "hf")
            subprocess.run([args.sinklab, "export", "--checkpoint", args.checkpoint, "--hf", hf_dir], check=True)
            ours = args.checkpoint
        else:
            hf_dir = args.hf
            ours = os.path.join(work, "imported")
            subprocess.run([args.sinklab, "import", "--hf", hf_dir, "--out", ours], check=True)

        model = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32)
        model.eval()
        vocab = model.config.vocab_size
        length = min(args.tokens, model.config.max_position_embeddings)
        ids = np.random.default_rng(args.seed).integers(0, vocab, size=length)

        out_file = os.path.join(work, "logits.f32")
        subprocess.run([args.sinklab, "logits", "--checkpoint", ours, "--ids", ",".join(map(str, ids)),
                        "--out", out_file], check=True, stdout=subprocess.DEVNULL)
        ours_logits = np.fromfile(out_file, dtype="<f4").reshape(length, vocab)
        with torch.no_grad():
            theirs = model(torch.tensor(ids[None, :], dtype=torch.long)).logits[0].float().numpy()

        diff = np.abs(ours_logits - theirs).max()
        scale = np.abs(theirs).max()
        same_argmax = (ours_logits.argmax(-1) == theirs.argmax(-1)).mean()
        print(f"{length} tokens x {vocab} logits: max |sinklab - transformers| = {diff:.3g} "
              f"(max |logit| {scale:.3g}); same argmax at {100 * same_argmax:.1f}% of positions")
        if diff > args.tolerance:
            print(f"FAIL: above the tolerance {args.tolerance}")
            return 1
        print("OK")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
