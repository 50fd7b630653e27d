"""Train kiln's bundled models on the CPython standard library: a code model and its draft.

    python examples/train_tiny.py                    # ~60 min on 2 cores; writes examples/models/
    python examples/train_tiny.py --smoke --out /tmp/m --work-dir /tmp/w   # seconds, for tests

Stages, each resumable (rerun the same command after an interruption; ``--fresh`` starts over):

1. the corpus: stdlib ``*.py`` files in a fixed order, split by module (``kiln.data``);
2. a byte-level BPE tokenizer (``tokenizers``) trained on the training files only;
3. the target: a Llama-architecture model trained in plain PyTorch (AdamW, cosine schedule),
   checkpointed every ``--ckpt-every`` steps with its optimizer and data-sampler state;
4. the draft: a model with >= 4x fewer parameters sharing the tokenizer, trained on the same
   stream with a loss that mixes cross-entropy and KL divergence to the target's next-token
   distribution, so that its greedy choices agree with the target's (what speculative decoding
   needs);
5. evaluation on the held-out files (bits per byte, perplexity, draft/target agreement) of the
   files as written (float16 weights), and a model card per model.

Everything is a function of ``--seed``: data order, initialisation and sampling use seeded
generators, and torch runs with a fixed thread count.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kiln import data, evaluate

BOS = "<|endoftext|>"


@dataclass(frozen=True)
class ModelSize:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ffn: int


@dataclass(frozen=True)
class Recipe:
    vocab: int = 4096
    ctx: int = 256  # training window
    max_positions: int = 512
    batch: int = 16
    target: ModelSize = ModelSize(256, 6, 8, 4, 688)
    draft: ModelSize = ModelSize(128, 3, 4, 2, 344)
    target_steps: int = 2400
    draft_steps: int = 1200
    target_lr: float = 2e-3
    draft_lr: float = 3e-3
    warmup: int = 100
    distill_weight: float = 0.9  # share of the draft's loss that is KL to the target
    max_train_bytes: int | None = None
    eval_ctx: int = 256
    eval_stride: int = 128
    eval_max_bytes: int | None = None
    slice_bytes: int = 16384  # the slice the shipped-model test re-measures


SMOKE = Recipe(vocab=300, ctx=32, max_positions=64, batch=4, target=ModelSize(32, 2, 4, 2, 64),
               draft=ModelSize(16, 1, 2, 1, 32), target_steps=6, draft_steps=4, warmup=2,
               max_train_bytes=60_000, eval_ctx=32, eval_stride=16, eval_max_bytes=4000, slice_bytes=2000)


# ---------------------------------------------------------------------------------------------
# progress


class Bar(evaluate.Progress):
    pass


def log(msg: str) -> None:
    print(f"[train-tiny] {msg}", file=sys.stderr, flush=True)


def atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# corpus and tokenizer


def corpus(recipe: Recipe):
    files = data.stdlib_files()
    train, heldout = data.split(files)
    if recipe.max_train_bytes is not None:
        kept, used = [], 0
        for f in train:
            if used + f.n_bytes > recipe.max_train_bytes:
                break
            kept.append(f)
            used += f.n_bytes
        train = kept
    return train, heldout


def train_tokenizer(texts: list[str], vocab: int, path: Path):
    from tokenizers import ByteLevelBPETokenizer, Tokenizer

    if path.exists():
        log(f"tokenizer: reusing {path}")
        return Tokenizer.from_file(str(path))
    t0 = time.perf_counter()
    tok = ByteLevelBPETokenizer(add_prefix_space=False)
    tok.train_from_iterator(texts, vocab_size=vocab, min_frequency=2, special_tokens=[BOS], show_progress=False)
    tok.save(str(path))
    log(f"tokenizer: {tok.get_vocab_size()} tokens in {time.perf_counter() - t0:.0f}s")
    return Tokenizer.from_file(str(path))


def token_stream(tok, texts: list[str], path: Path) -> np.ndarray:
    """All training files as one uint16 stream, each file preceded by bos."""
    if path.exists():
        return np.load(path)
    bos = tok.token_to_id(BOS)
    parts = []
    for enc in tok.encode_batch(texts):
        parts.append(np.asarray([bos] + enc.ids, dtype=np.uint16))
    arr = np.concatenate(parts)
    np.save(path, arr)
    return arr


# ---------------------------------------------------------------------------------------------
# models


def make_config(size: ModelSize, recipe: Recipe, bos: int):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=recipe.vocab, hidden_size=size.hidden, intermediate_size=size.ffn,
        num_hidden_layers=size.layers, num_attention_heads=size.heads, num_key_value_heads=size.kv_heads,
        max_position_embeddings=recipe.max_positions, rms_norm_eps=1e-5, rope_theta=10000.0,
        tie_word_embeddings=True, bos_token_id=bos, eos_token_id=bos, pad_token_id=bos,
        attn_implementation="sdpa", torch_dtype="float16")


def make_model(size: ModelSize, recipe: Recipe, bos: int, seed: int):
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(make_config(size, recipe, bos))
    return model


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    t = (step - warmup) / max(total - warmup, 1)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0))))


def optimizer(model, lr: float):
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": other, "weight_decay": 0.0}],
                             lr=lr, betas=(0.9, 0.95), eps=1e-8)


def batch_at(stream: torch.Tensor, gen: torch.Generator, batch: int, ctx: int) -> torch.Tensor:
    starts = torch.randint(0, len(stream) - ctx - 1, (batch,), generator=gen)
    return torch.stack([stream[s:s + ctx + 1] for s in starts.tolist()]).long()


def train_model(name: str, model, stream: torch.Tensor, steps: int, peak_lr: float, recipe: Recipe,
                seed: int, ckpt: Path, ckpt_every: int, quick_eval, teacher=None) -> dict:
    """Trains in place, resuming from ``ckpt`` when it exists. Returns the training log."""
    opt = optimizer(model, peak_lr)
    gen = torch.Generator().manual_seed(seed)
    state = {"step": 0, "losses": [], "evals": [], "seconds": 0.0}
    if ckpt.exists():
        saved = torch.load(ckpt, weights_only=False)
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["opt"])
        gen.set_state(saved["gen"])
        state = saved["state"]
        log(f"{name}: resuming at step {state['step']}/{steps}")
    if state["step"] >= steps:
        return state
    model.train()
    bar = Bar(steps, f"{name:6s}")
    bar.done = state["step"]
    t_start, t_before = time.perf_counter(), state["seconds"]
    ema = None
    while state["step"] < steps:
        step = state["step"]
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, peak_lr, recipe.warmup)
        xb = batch_at(stream, gen, recipe.batch, recipe.ctx)
        inp, tgt = xb[:, :-1], xb[:, 1:]
        logits = model(input_ids=inp).logits
        ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        loss = ce
        if teacher is not None:
            with torch.inference_mode():
                t_logp = F.log_softmax(teacher(input_ids=inp).logits.float(), -1)
            kl = F.kl_div(F.log_softmax(logits, -1).reshape(-1, logits.shape[-1]),
                          t_logp.reshape(-1, logits.shape[-1]).clone(), log_target=True, reduction="batchmean")
            loss = (1 - recipe.distill_weight) * ce + recipe.distill_weight * kl
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        state["step"] = step + 1
        state["losses"].append(round(ce.item(), 4))
        ema = ce.item() if ema is None else 0.95 * ema + 0.05 * ce.item()
        extra = f"loss {ema:.3f}"
        if quick_eval is not None and (state["step"] % max(steps // 6, 1) == 0 or state["step"] == steps):
            model.eval()
            bpb = quick_eval(model)
            model.train()
            state["evals"].append((state["step"], round(bpb, 4)))
            log(f"{name}: step {state['step']} held-out slice {bpb:.3f} bits/byte")
        if state["step"] % ckpt_every == 0 or state["step"] == steps:
            state["seconds"] = t_before + time.perf_counter() - t_start
            atomic_save({"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(),
                         "state": state}, ckpt)
        bar.update(1, extra)
    bar.close()
    state["seconds"] = t_before + time.perf_counter() - t_start
    model.eval()
    return state


def forward_of(model):
    return lambda ids: model(input_ids=ids).logits


def save_hf(model, tok_path: Path, out: Path, bos_id: int) -> None:
    from transformers import PreTrainedTokenizerFast

    out.mkdir(parents=True, exist_ok=True)
    model.to(torch.float16).save_pretrained(out, safe_serialization=True)
    model.to(torch.float32)
    fast = PreTrainedTokenizerFast(tokenizer_file=str(tok_path), bos_token=BOS, eos_token=BOS, unk_token=None,
                                   pad_token=BOS, model_max_length=model.config.max_position_embeddings)
    fast.save_pretrained(out)
    (out / "generation_config.json").unlink(missing_ok=True)


def load_hf(path: Path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()


# ---------------------------------------------------------------------------------------------
# model cards


def card(kind: str, info: dict) -> str:
    e = info["eval"]
    size = info["size"]
    lines = [
        f"# kiln-code-{kind}",
        "",
        "A small Llama-architecture model of Python source, trained by kiln itself "
        "(`examples/train_tiny.py`) on the CPython standard library. It exists so that kiln's demo, "
        "perplexity checks and speculative decoding have a model that has learned something without "
        "downloading one." + (" It is the draft model for `kiln-code-target`, sharing its tokenizer." if kind == "draft"
                              else ""),
        "",
        "## Data",
        "",
        (f"- Every `*.py` file under the stdlib directory of Python {info['python']} "
        f"(`sysconfig.get_paths()['stdlib']`; site-packages excluded), sorted by path."),
        (f"- Held-out split by module (`kiln/data.py`): a module is held out when "
        f"`zlib.crc32(module_name) % {data.HELDOUT_MODULUS} == 0`. That gives {info['heldout_files']} files, "
        f"{info['heldout_bytes']:,} bytes. Held-out files never enter tokenizer or model training."),
        (f"- Training: {info['train_files']} files, {info['train_bytes']:,} bytes, "
        f"{info['train_tokens']:,} tokens."),
        (f"- Tokenizer: byte-level BPE, {info['vocab']} tokens, trained on the training files only; "
        f"`{BOS}` is bos, eos and pad."),
        "",
        "## Model",
        "",
        (f"- Llama: hidden {size['hidden']}, {size['layers']} layers, {size['heads']} heads "
        f"({size['kv_heads']} KV heads), MLP {size['ffn']}, RoPE theta 10000, tied embeddings, "
        f"**{info['params']:,} parameters**, stored as float16 ({info['file_mb']:.1f} MB)."),
        f"- Context: trained on {info['ctx']}-token windows; `max_position_embeddings` is {info['max_positions']}.",
        "",
        "## Training",
        "",
        f"- {info['steps']} steps of {info['batch']} x {info['ctx']} tokens "
        f"({info['steps'] * info['batch'] * info['ctx']:,} tokens), AdamW (0.9, 0.95), weight decay 0.1, "
        f"peak learning rate {info['lr']}, {info['warmup']} warm-up steps, cosine decay to 10%, "
        "gradient clipping at 1.0, seed " + str(info["seed"]) + ".",
    ]
    if kind == "draft":
        lines.append(f"- Loss: {1 - info['distill_weight']:.1f} x cross-entropy + {info['distill_weight']:.1f} x "
                     "KL(target || draft) on the target's next-token distribution.")
    lines += [
        (f"- Wall time: {info['train_seconds'] / 60:.1f} min on {info['machine']} "
        f"({info['threads']} torch threads)."),
        "",
        "## Evaluation (held-out files, float16 weights as shipped)",
        "",
        (f"Sliding windows of {info['eval_ctx']} tokens, stride {info['eval_stride']} "
        "(each token predicted once, with at least half a window of context once a file is long enough)."),
        "",
        "| metric | value |",
        "| --- | --- |",
        f"| bits per byte | **{e['bits_per_byte']:.4f}** |",
        f"| perplexity (per token) | {e['perplexity']:.3f} |",
        f"| tokens / bytes | {e['tokens']:,} / {e['bytes']:,} |",
    ]
    if "greedy_agreement" in e:
        lines.append(f"| greedy next-token agreement with the target | **{e['greedy_agreement']:.1%}** |")
    if "params_ratio" in info:
        lines.append(f"| target params / draft params | {info['params_ratio']:.2f}x |")
    lines += [
        (f"| bits per byte on the first {info['slice']['max_bytes']:,} held-out bytes "
        f"(re-checked by `tests/test_bundled_models.py`) | {info['slice']['bits_per_byte']:.4f} |"),
        "",
        "For comparison, general-purpose compressors on the same held-out files (all files concatenated, "
        "measured by the training script): " + ", ".join(f"{k} {v:.3f}" for k, v in info["compressors"].items())
        + " bits per byte.",
        "",
        ("Reproduce: `python examples/train_tiny.py` (or `kiln eval examples/models/kiln-code-"
        f"{kind}` for the figures alone). `info.json` holds these numbers."),
        "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "examples" / "models")
    ap.add_argument("--work-dir", type=Path, default=ROOT / ".kiln-train")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--target-steps", type=int)
    ap.add_argument("--draft-steps", type=int)
    ap.add_argument("--ckpt-every", type=int, default=50)
    ap.add_argument("--smoke", action="store_true", help="tiny models, a few steps, a slice of the data")
    ap.add_argument("--fresh", action="store_true", help="ignore checkpoints in --work-dir and start over")
    ap.add_argument("--stop-after", type=int, help="stop the target after this many steps (tests resuming)")
    ap.add_argument("--cards-only", action="store_true", help="rewrite the model cards from info.json and stop")
    args = ap.parse_args(argv)
    if args.cards_only:
        write_cards(args.out)
        return 0

    recipe = SMOKE if args.smoke else Recipe()
    if args.target_steps:
        recipe = Recipe(**{**asdict_shallow(recipe), "target_steps": args.target_steps})
    if args.draft_steps:
        recipe = Recipe(**{**asdict_shallow(recipe), "draft_steps": args.draft_steps})
    torch.set_num_threads(args.threads)
    torch.use_deterministic_algorithms(True)
    work = args.work_dir
    if args.fresh and work.exists():
        for p in work.iterdir():
            p.unlink()
    work.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()

    train, heldout = corpus(recipe)
    train_bytes = sum(f.n_bytes for f in train)
    log(f"corpus: {len(train)} training files ({train_bytes / 1e6:.1f} MB), {len(heldout)} held-out files "
        f"({sum(f.n_bytes for f in heldout) / 1e6:.2f} MB) from {data.stdlib_dir()}")
    tok_path = work / "tokenizer.json"
    tok = train_tokenizer([f.text for f in train], recipe.vocab, tok_path)
    bos = tok.token_to_id(BOS)
    stream = torch.from_numpy(token_stream(tok, [f.text for f in train], work / "train_tokens.npy").astype(np.int64))
    log(f"tokens: {len(stream):,} training tokens ({train_bytes / len(stream):.2f} bytes/token)")

    ev_files = heldout if recipe.eval_max_bytes is None else data.heldout_files(recipe.eval_max_bytes)
    ev_docs = evaluate.encode_docs(lambda t: tok.encode(t).ids, [f.text for f in ev_files], bos)
    ev_bytes = sum(f.n_bytes for f in ev_files)
    sl_files = data.heldout_files(recipe.slice_bytes)
    sl_docs = evaluate.encode_docs(lambda t: tok.encode(t).ids, [f.text for f in sl_files], bos)
    sl_bytes = sum(f.n_bytes for f in sl_files)
    quick_files = data.heldout_files(min(65536, recipe.eval_max_bytes or 65536))
    quick_docs = evaluate.encode_docs(lambda t: tok.encode(t).ids, [f.text for f in quick_files], bos)
    quick_bytes = sum(f.n_bytes for f in quick_files)

    def quick_eval(model):
        return evaluate.evaluate(forward_of(model), quick_docs, quick_bytes, ctx=recipe.eval_ctx,
                                 stride=recipe.eval_stride, progress=False).bits_per_byte

    target = make_model(recipe.target, recipe, bos, args.seed)
    steps = min(recipe.target_steps, args.stop_after) if args.stop_after else recipe.target_steps
    t_log = train_model("target", target, stream, steps, recipe.target_lr, recipe, args.seed + 1,
                        work / "target.ckpt", args.ckpt_every, quick_eval)
    if args.stop_after and args.stop_after < recipe.target_steps:
        log(f"stopped after {args.stop_after} target steps; rerun to resume")
        return 0

    draft = make_model(recipe.draft, recipe, bos, args.seed + 2)
    d_log = train_model("draft", draft, stream, recipe.draft_steps, recipe.draft_lr, recipe, args.seed + 3,
                        work / "draft.ckpt", args.ckpt_every, quick_eval, teacher=target)

    # Evaluate the files as written (float16), reloaded the way any user's model would be.
    out_t, out_d = args.out / "kiln-code-target", args.out / "kiln-code-draft"
    save_hf(target, tok_path, out_t, bos)
    save_hf(draft, tok_path, out_d, bos)
    target_l, draft_l = load_hf(out_t), load_hf(out_d)
    kw = {"ctx": recipe.eval_ctx, "stride": recipe.eval_stride}
    ev_t = evaluate.evaluate(forward_of(target_l), ev_docs, ev_bytes, label="eval target", **kw)
    ev_d = evaluate.evaluate(forward_of(draft_l), ev_docs, ev_bytes, reference=forward_of(target_l),
                             label="eval draft ", **kw)
    sl_t = evaluate.evaluate(forward_of(target_l), sl_docs, sl_bytes, progress=False, **kw)
    sl_d = evaluate.evaluate(forward_of(draft_l), sl_docs, sl_bytes, progress=False, **kw)
    total = time.perf_counter() - t_all

    common = {"python": platform.python_version(), "heldout_files": len(ev_files), "heldout_bytes": ev_bytes,
              "train_files": len(train), "train_bytes": train_bytes, "train_tokens": len(stream),
              "vocab": recipe.vocab, "ctx": recipe.ctx, "max_positions": recipe.max_positions,
              "batch": recipe.batch, "warmup": recipe.warmup, "seed": args.seed, "threads": args.threads,
              "machine": machine(), "eval_ctx": recipe.eval_ctx, "eval_stride": recipe.eval_stride,
              "heldout_rule": f"zlib.crc32(module) % {data.HELDOUT_MODULUS} == 0",
              "compressors": compressor_baselines(ev_files),
              "total_seconds_this_run": round(total, 1)}
    infos = {}
    for kind, model, lg, ev, sl, size, lr, out in (
            ("target", target_l, t_log, ev_t, sl_t, recipe.target, recipe.target_lr, out_t),
            ("draft", draft_l, d_log, ev_d, sl_d, recipe.draft, recipe.draft_lr, out_d)):
        info = {**common, "size": asdict(size), "params": n_params(model), "steps": len(lg["losses"]),
                "lr": lr, "train_seconds": round(lg["seconds"], 1), "eval": ev.as_dict(),
                "quick_evals": lg["evals"],
                "slice": {"max_bytes": recipe.slice_bytes, "bits_per_byte": round(sl.bits_per_byte, 4),
                          "ctx": recipe.eval_ctx, "stride": recipe.eval_stride},
                "file_mb": sum(p.stat().st_size for p in out.iterdir()) / 1e6}
        if kind == "draft":
            info["distill_weight"] = recipe.distill_weight
            info["params_ratio"] = round(infos["target"]["params"] / info["params"], 3)
        infos[kind] = info
        (out / "info.json").write_text(json.dumps(info, indent=1) + "\n")
        (out / "README.md").write_text(card(kind, info))
    log(f"target: {ev_t.bits_per_byte:.4f} bits/byte, {infos['target']['params']:,} params; "
        f"draft: {ev_d.bits_per_byte:.4f} bits/byte, {infos['draft']['params']:,} params "
        f"({infos['draft']['params_ratio']:.2f}x fewer), agreement {ev_d.agreement:.1%}; "
        f"total {total / 60:.1f} min this run")
    return 0


def compressor_baselines(files) -> dict[str, float]:
    """Bits per byte of xz -9, bzip2 -9 and zlib -9 on the files concatenated."""
    import bz2
    import lzma
    import zlib

    blob = b"".join(f.text.encode("utf-8") for f in files)
    n = max(len(blob), 1)
    return {"xz -9": round(8 * len(lzma.compress(blob, preset=9)) / n, 4),
            "bzip2 -9": round(8 * len(bz2.compress(blob, 9)) / n, 4),
            "zlib -9": round(8 * len(zlib.compress(blob, 9)) / n, 4)}


def write_cards(out: Path) -> None:
    """Rewrite both model cards from their info.json (python examples/train_tiny.py --cards-only)."""
    for kind in ("target", "draft"):
        d = out / f"kiln-code-{kind}"
        info = json.loads((d / "info.json").read_text())
        (d / "README.md").write_text(card(kind, info))


def asdict_shallow(r: Recipe) -> dict:
    return {k: getattr(r, k) for k in r.__dataclass_fields__}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main())
