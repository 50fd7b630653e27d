"""Perplexity and bits per byte of a language model on text, by sliding windows.

Each document is ``[bos] + tokens``. Windows of ``ctx`` tokens start every ``stride`` tokens; the
first window scores all its predictions, every later one only the ``stride`` predictions no
earlier window scored, so each token is predicted exactly once, with at least ``ctx - stride``
tokens of context once the document is long enough. Bits per byte divides the summed negative
log-likelihood (in bits) by the documents' UTF-8 size, which makes models with different
tokenizers comparable; perplexity is per token.

``forward`` is anything mapping an int64 ``[B, T]`` tensor to ``[B, T, V]`` logits: a kiln
runtime's ``logits``, or a transformers model wrapped in a lambda. Windows are right-padded to
a common length inside a batch; causal attention keeps padding from reaching scored positions.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch

Forward = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class EvalResult:
    nll_nats: float
    n_tokens: int
    n_bytes: int
    seconds: float
    agreement: float | None = None  # greedy next-token agreement with a reference model

    @property
    def bits_per_byte(self) -> float:
        return self.nll_nats / math.log(2) / max(self.n_bytes, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.nll_nats / max(self.n_tokens, 1), 700.0))

    def as_dict(self) -> dict:
        d = {"bits_per_byte": round(self.bits_per_byte, 4), "perplexity": round(self.perplexity, 3),
             "tokens": self.n_tokens, "bytes": self.n_bytes, "seconds": round(self.seconds, 1)}
        if self.agreement is not None:
            d["greedy_agreement"] = round(self.agreement, 4)
        return d


COMPRESSORS = ("xz -9", "bzip2 -9", "gzip -9")


def compressor_bits_per_byte(texts: Iterable[str]) -> dict[str, float]:
    """Bits per byte of standard compressors on the same text, each file compressed on its own (as the
    model scores each file on its own, from its first byte): ``xz -9`` (lzma preset 9), ``bzip2 -9``,
    ``gzip -9`` (zlib level 9; the container headers excluded for all three would change little)."""
    import bz2
    import lzma
    import zlib

    sizes = dict.fromkeys(COMPRESSORS, 0)
    n = 0
    for t in texts:
        b = t.encode("utf-8")
        n += len(b)
        sizes["xz -9"] += len(lzma.compress(b, preset=9))
        sizes["bzip2 -9"] += len(bz2.compress(b, 9))
        sizes["gzip -9"] += len(zlib.compress(b, 9))
    return {k: 8 * v / max(n, 1) for k, v in sizes.items()}


@dataclass(frozen=True)
class Window:
    ids: list[int]  # inputs; targets are ids[1:] plus the next token (held in `targets`)
    targets: list[int]
    first_scored: int  # index into targets of the first prediction this window scores


def windows(docs: Sequence[Sequence[int]], ctx: int, stride: int) -> list[Window]:
    if not 0 < stride <= ctx:
        raise ValueError(f"need 0 < stride <= ctx, got stride={stride}, ctx={ctx}")
    out = []
    for doc in docs:
        doc = list(doc)
        n_pred = len(doc) - 1
        if n_pred <= 0:
            continue
        start, scored = 0, 0  # predictions 0..scored-1 done
        while scored < n_pred:
            end = min(start + ctx, n_pred)
            out.append(Window(doc[start:end], doc[start + 1:end + 1], scored - start))
            scored = end
            start = max(0, min(start + stride, n_pred - ctx)) if end < n_pred else end
    return out


class Progress:
    """A one-line progress bar on stderr (a line per 10% when stderr is not a terminal)."""

    def __init__(self, total: int, label: str, enabled: bool = True):
        self.total, self.label, self.enabled = max(total, 1), label, enabled
        self.done, self.t0, self._last_decile = 0, time.perf_counter(), -1
        self.tty = sys.stderr.isatty()

    def update(self, n: int, extra: str = "") -> None:
        self.done += n
        if not self.enabled:
            return
        frac = min(self.done / self.total, 1.0)
        el = time.perf_counter() - self.t0
        eta = el / frac * (1 - frac) if frac > 0 else 0.0
        bar = "#" * int(frac * 24)
        line = f"{self.label} [{bar:<24}] {frac:4.0%} {extra} elapsed {_hms(el)} eta {_hms(eta)}"
        if self.tty:
            sys.stderr.write("\r" + line + "\x1b[K")
            sys.stderr.flush()
        elif int(frac * 10) != self._last_decile:
            self._last_decile = int(frac * 10)
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.enabled and self.tty:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _hms(s: float) -> str:
    s = int(s)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def evaluate(forward: Forward, docs: Sequence[Sequence[int]], n_bytes: int, *, ctx: int = 256,
             stride: int = 128, batch: int = 8, reference: Forward | None = None,
             progress: bool = True, label: str = "eval") -> EvalResult:
    """Negative log-likelihood of ``docs`` (token lists, each starting with bos) under ``forward``.
    With ``reference``, also the fraction of scored positions where both models' argmax agree."""
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    wins = windows(docs, ctx, stride)
    if not wins:
        raise ValueError("nothing to evaluate: every document is shorter than two tokens")
    # Longest first: batches of similar length waste less on padding.
    order = sorted(range(len(wins)), key=lambda i: -len(wins[i].ids))
    nll, n_tok, agree = 0.0, 0, 0
    total_pred = sum(len(w.targets) - w.first_scored for w in wins)
    bar = Progress(sum(len(w.ids) for w in wins), label, progress)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for b in range(0, len(order), batch):
            group = [wins[i] for i in order[b:b + batch]]
            width = max(len(w.ids) for w in group)
            ids = torch.zeros(len(group), width, dtype=torch.long)
            tgt = torch.full((len(group), width), -100, dtype=torch.long)
            for r, w in enumerate(group):
                ids[r, :len(w.ids)] = torch.tensor(w.ids)
                tgt[r, w.first_scored:len(w.targets)] = torch.tensor(w.targets[w.first_scored:])
            logits = forward(ids).float()
            mask = tgt != -100
            nll += torch.nn.functional.cross_entropy(logits[mask], tgt[mask], reduction="sum").item()
            n_tok += int(mask.sum())
            if reference is not None:
                ref = reference(ids)
                agree += int((logits.argmax(-1) == ref.argmax(-1))[mask].sum())
            # running estimate: bits per scored token so far, times the set's tokens per byte
            bar.update(sum(len(w.ids) for w in group),
                       f"{nll / math.log(2) / max(n_tok, 1) * total_pred / max(n_bytes, 1):.3f} bpb")
    bar.close()
    return EvalResult(nll, n_tok, n_bytes, time.perf_counter() - t0,
                      agree / max(n_tok, 1) if reference is not None else None)


def encode_docs(encode: Callable[[str], list[int]], texts: Iterable[str], bos: int) -> list[list[int]]:
    return [[bos] + list(encode(t)) for t in texts]
