"""Driving an ONNX export with plain ONNX Runtime: greedy generation over the exported KV cache.

``OrtGenerator(DIR)`` reads ``DIR/kiln_export.json``, opens ``prefill.onnx`` and ``decode.onnx`` and
generates the way kiln's runtime does: the prompts packed into one row for one prefill call, then one
decode call per step with one token per sequence, the cache outputs fed back as the next call's cache
inputs. Each sequence gets its own blocks (``block_table`` row ``s`` lists blocks ``s*MB ..
s*MB+MB-1``), enough for its prompt and the new tokens. What the tests and ``kiln bench`` use; the
15-line version of the same loop is in docs/export.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kiln.errors import KilnError

CACHE_NP = {"f32": np.float32, "f16": np.float16, "i8": np.int8}


class OrtGenerator:
    def __init__(self, path: str | Path, threads: int | None = None):
        try:
            import onnxruntime as ort
        except ImportError:
            raise KilnError("running an ONNX export needs onnxruntime: pip install onnxruntime") from None
        self.root = Path(path)
        try:
            self.spec = json.loads((self.root / "kiln_export.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise KilnError(f"{str(self.root)!r} is not a kiln ONNX export: {e}") from None
        if self.spec.get("format") != "onnx":
            raise KilnError(f"{str(self.root)!r} is a {self.spec.get('format')} export, not onnx")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        progs = self.spec["programs"]

        def session(name):
            return ort.InferenceSession(str(self.root / progs[name]["file"]), opts,
                                        providers=["CPUExecutionProvider"])

        self.forward = session("forward")
        if "prefill" not in progs or "decode" not in progs:
            raise KilnError("this export has no prefill/decode programs (compiled without the kv-cache pass)")
        self.prefill, self.decode = session("prefill"), session("decode")
        self.cache_inputs = list(progs["decode"]["cache"])  # e.g. k_cache, v_cache (and int8 scales)

    def new_cache(self, sequences: int, positions: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """A block table and zeroed cache tensors for ``sequences`` of up to ``positions`` positions."""
        inputs = {i["name"]: i for i in self.spec["programs"]["decode"]["inputs"]}
        bs = self.spec["kv_cache"]["block_size"]
        mb = -(-positions // bs)
        table = np.arange(sequences * mb, dtype=np.int64).reshape(sequences, mb)
        caches = {}
        for name in self.cache_inputs:
            shape = [sequences * mb if d == "NB" else d for d in inputs[name]["shape"]]
            caches[name] = np.zeros(shape, CACHE_NP.get(inputs[name]["dtype"], np.float32))
        return table, caches

    def generate(self, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
        """Greedy: each prompt followed by ``new_tokens`` tokens (no stop tokens)."""
        s = len(prompts)
        table, caches = self.new_cache(s, max(map(len, prompts)) + new_tokens)
        ids = np.array([[t for p in prompts for t in p]], dtype=np.int64)
        pos = np.concatenate([np.arange(len(p)) for p in prompts]).astype(np.int64)
        seq = np.concatenate([np.full(len(p), i) for i, p in enumerate(prompts)]).astype(np.int64)
        last = np.cumsum([len(p) for p in prompts]).astype(np.int64) - 1
        logits = self._step(self.prefill, {"input_ids": ids, "pos": pos, "seq": seq, "block_table": table,
                                                "logits_at": last}, caches)
        out = [list(p) for p in prompts]
        for step in range(new_tokens):
            toks = logits[0].argmax(-1)
            for o, t in zip(out, toks):
                o.append(int(t))
            if step + 1 < new_tokens:
                feed = {"input_ids": toks[None].astype(np.int64), "pos": np.array([len(o) - 1 for o in out], np.int64),
                            "seq": np.arange(s, dtype=np.int64), "block_table": table}
                logits = self._step(self.decode, feed, caches)
        return out

    def _step(self, session, feed: dict, caches: dict) -> np.ndarray:
        """Run one program; its cache outputs replace ``caches``; returns the logits."""
        names = [o.name for o in session.get_outputs()]
        outs = session.run(None, {**feed, **caches})
        for name in self.cache_inputs:
            caches[name] = outs[names.index(f"{name}_out")]
        return outs[names.index("logits")]
