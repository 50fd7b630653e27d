"""Golden IR tests: for every pass (and the option sets that matter), a checked-in input module and
the module expected after running exactly that one pass on it, as MLIR's FileCheck tests and xDSL's
filecheck tests pin a pass's output.

Files, in ``tests/golden/`` (``CASES`` below lists the cases)::

    <case>.input.mlir      the IR immediately before the pass (comment header: case, pass, model, what
                           ran before it); ``// pass: kv-cache{layout=paged,block_size=16}`` names the pass
    <case>.expected.mlir   the IR after the pass (the same printer: ``print_module(m, with_meta=True)``)
    <case>.draft.mlir      (speculative drafter=model only) the compiled draft model the pass merges

The inputs are generated from the smallest presets shrunk further through transformers' public config
(one layer, hidden 32; see ``MODELS``), captured by ``kiln.frontend.import_model`` from a temporary
Hugging Face directory and run through the pipeline up to the pass. A module parsed from text has no
weights, so the test and this tool give it deterministic ones: ``golden_weights`` draws each weight from a
generator seeded by its name and type. ``run_case`` (shared with ``tests/test_golden.py``) parses an input,
adds those weights, runs the one pass under the pass manager (verifier before and after) and prints the
result; the expected file is exactly that text. Nothing is normalised: every pass is deterministic here.

Usage::

    python tools/golden.py                 # regenerate in memory, show unified diffs, exit 1 if any differ
    python tools/golden.py --write         # write the files (and delete golden files no case makes)
    python tools/golden.py --expected-only # keep the inputs; rerun only the pass (no capture, seconds)
    python tools/golden.py kv-cache-paged cse   # only these cases
    python tools/golden.py --list
"""

from __future__ import annotations

import argparse
import copy
import difflib
import math
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = ROOT / "tests" / "golden"
WRITE_HINT = "python tools/golden.py --write"

# ---------------------------------------------------------------------------
# models: presets shrunk through their transformers config (the public route: a model directory)

_LLAMA_SHRINK = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
                 "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 64, "max_position_embeddings": 64}


@dataclass(frozen=True)
class Model:
    preset: str  # kiln.frontend.presets.PRESETS name whose config is shrunk
    overrides: dict[str, Any]
    description: str


MODELS: dict[str, Model] = {
    "llama": Model("llama-tiny", _LLAMA_SHRINK,
                   "llama-tiny shrunk to 1 layer, hidden 32, 4 heads / 2 KV heads (head dim 8), MLP 64, "
                   "vocab 64, context 64"),
    "llama-2layers": Model("llama-tiny", {**_LLAMA_SHRINK, "num_hidden_layers": 2},
                           "llama-tiny shrunk to 2 layers, hidden 32, 4 heads / 2 KV heads (head dim 8), MLP 64, "
                           "vocab 64, context 64"),
    "llama-draft": Model("llama-tiny", {**_LLAMA_SHRINK, "hidden_size": 16, "intermediate_size": 32,
                                        "num_attention_heads": 2, "num_key_value_heads": 1},
                         "llama-tiny shrunk to 1 layer, hidden 16, 2 heads / 1 KV head (head dim 8), MLP 32, "
                         "vocab 64, context 64"),
    "qwen2": Model("qwen2-tiny", _LLAMA_SHRINK,
                   "qwen2-tiny (q/k/v bias, tied embeddings) shrunk to 1 layer, hidden 32, 4 heads / 2 KV heads "
                   "(head dim 8), MLP 64, vocab 64, context 64"),
    "gpt2": Model("gpt2-tiny", {"n_embd": 32, "n_layer": 1, "n_head": 4, "vocab_size": 64, "n_positions": 64},
                  "gpt2-tiny shrunk to 1 layer, hidden 32, 4 heads, MLP 128, vocab 64, context 64"),
}


def capture(model: str):
    """The model's module as ``kiln.frontend.import_model`` captures it (seed 0 weights)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from kiln.frontend import import_model
    from kiln.frontend.presets import PRESETS

    spec = MODELS[model]
    cfg = PRESETS[spec.preset].config()
    d = cfg.to_dict()
    d.pop("layer_types", None)  # derived from the layer count
    d.update(spec.overrides)
    cfg = type(cfg).from_dict(d)
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp, torch.random.fork_rng():
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(cfg).save_pretrained(tmp)
        return import_model(tmp).module


# ---------------------------------------------------------------------------
# cases


@dataclass(frozen=True)
class Case:
    name: str
    pass_spec: str  # the one pass the test runs, as parse_passes reads it
    model: str  # a MODELS key
    before: tuple[str, ...]  # the passes that made the input
    before_desc: str  # where those come from (pipeline and position, or kiln compile)
    tweak: Callable[[Any], None] | None = field(default=None, compare=False)  # edits the input after `before`
    tweak_desc: str = ""
    draft: str = ""  # a MODELS key: the draft model (speculative drafter=model), given the same `before`
    draft_file: str = ""  # where the draft goes (cases with the same draft may share one file)
    note: str = ""


def _items(pipeline: str) -> list[str]:
    from kiln.passes.manager import PIPELINES

    return list(PIPELINES[pipeline][1])


def at(pipeline: str, spec: str, nth: int = 1) -> dict[str, Any]:
    """The case options for the ``nth`` ``spec`` of a pipeline: the pass itself and every pass before it."""
    items = _items(pipeline)
    hits = [i for i, s in enumerate(items) if s == spec]
    if len(hits) < nth:
        raise ValueError(f"golden: pipeline {pipeline!r} has no {nth}. {spec!r} any more; update cases() in {__file__}")
    i = hits[nth - 1]
    where = f"pipeline {pipeline!r}, its first {i} passes" if i else f"the first pass of pipeline {pipeline!r}"
    return {"pass_spec": spec, "before": tuple(items[:i]), "before_desc": where}


def after(pipeline: str, spec: str, how: str) -> dict[str, Any]:
    """The case options for a pass that kiln compile appends after a whole pipeline."""
    return {"pass_spec": spec, "before": tuple(_items(pipeline)),
            "before_desc": f"pipeline {pipeline!r}, all of it, as {how}"}


def _return_final_norm(module) -> None:
    # forward returns the final norm's output: the vocabulary projection and its weight are dead
    fwd = module["forward"]
    fwd.set_outputs([fwd.outputs[0].owner.operands[0]])


def cases() -> list[Case]:
    spec_note = "the speculative pass can run alone except for what kiln compile gives it: "
    return [
        Case("canonicalize", model="llama", **at("default", "canonicalize")),
        Case("canonicalize-gpt2", model="gpt2", **at("default", "canonicalize")),
        Case("canonicalize-after-kv-cache", model="llama", **at("default", "canonicalize", 3)),
        Case("fold-constants", model="llama", **at("default", "fold-constants")),
        Case("fold-constants-gpt2", model="gpt2", **at("default", "fold-constants")),
        Case("cse", model="llama", **at("default", "cse")),
        Case("cse-quantized-tied-qwen2", model="qwen2", **at("int8", "cse", 2)),
        Case("dce", model="llama", **at("default", "dce")),
        Case("dce-dead-lm-head", model="llama", **at("default", "dce"), tweak=_return_final_norm,
             tweak_desc="forward returns the final norm's output instead of the logits (so the lm_head linear "
                        "and its weight are dead)"),
        Case("fuse-qkv", model="llama", **at("default", "fuse-qkv")),
        Case("fuse-qkv-qwen2", model="qwen2", **at("default", "fuse-qkv")),
        Case("fuse-gate-up", model="llama", **at("default", "fuse-gate-up")),
        Case("kv-cache-contiguous", model="llama", **at("default", "kv-cache")),
        Case("kv-cache-paged", model="llama", **at("paged", "kv-cache{layout=paged,block_size=16}")),
        Case("kv-cache-int8-weights", model="llama", **at("int8", "kv-cache")),
        Case("kv-cache-gpt2", model="gpt2", **at("default", "kv-cache")),
        Case("quantize-weights-int8", model="llama", **at("int8", "quantize-weights{format=int8}")),
        Case("quantize-weights-int4", model="llama", **at("int4", "quantize-weights{format=int4,group_size=32}")),
        Case("quantize-weights-int4-asymmetric", model="llama",
             **{**at("int4", "quantize-weights{format=int4,group_size=32}"),
                "pass_spec": "quantize-weights{format=int4,group_size=32,symmetric=false}"}),
        Case("quantize-weights-int8-partial", model="llama",
             **{**at("int8", "quantize-weights{format=int8}"),
                "pass_spec": "quantize-weights{format=int8,exclude=*.down_proj,embedding=false,lm_head=false}"}),
        Case("quantize-weights-int8-qwen2", model="qwen2", **at("int8", "quantize-weights{format=int8}")),
        Case("quantize-kv", model="llama", **at("int8-kv", "quantize-kv")),
        Case("speculative-ngram", model="llama",
             **after("default", "speculative{drafter=ngram}", "kiln compile --draft ngram")),
        Case("speculative-ngram-int8-kv", model="llama",
             **after("int8-kv", "speculative{drafter=ngram}", "kiln compile --pipeline int8-kv --draft ngram")),
        Case("speculative-self", model="llama-2layers",
             **after("default", "speculative{drafter=self,k=2,skip=1}",
                     "kiln compile --draft self --spec-k 2 --spec-skip 1"),
             note=spec_note + "calibration windows of held-out text; without them (here) it measures agreement "
                              "on its own seeded random token windows, with the golden weights"),
        Case("speculative-model", model="llama", draft="llama-draft",
             draft_file="speculative-model.draft.mlir",
             **after("default", "speculative{drafter=model,k=2}", "kiln compile --draft MODEL --spec-k 2"),
             note=spec_note + "the compiled draft model; the test parses it from the draft file, with golden "
                              "weights, and names its source golden:<draft file>"),
        Case("speculative-model-adaptive", model="llama", draft="llama-draft",
             draft_file="speculative-model.draft.mlir",
             **after("default", "speculative{drafter=model,k=2,adaptive=0.5}",
                     "kiln compile --draft MODEL --spec-k 2 --spec-adaptive 0.5"),
             note=spec_note + "the compiled draft model; the test parses it from the draft file, with golden "
                              "weights, and names its source golden:<draft file>"),
        Case("group-kernels", model="llama", **after("default", "group-kernels", "kiln compile --target cuda")),
        Case("group-kernels-gpt2", model="gpt2", **after("default", "group-kernels", "kiln compile --target cuda")),
        Case("group-kernels-int8", model="llama",
             **after("int8", "group-kernels", "kiln compile --pipeline int8 --target cuda")),
        Case("group-kernels-int4", model="llama",
             **after("int4", "group-kernels", "kiln compile --pipeline int4 --target cuda")),
        Case("group-kernels-int8-kv", model="llama",
             **after("int8-kv", "group-kernels", "kiln compile --pipeline int8-kv --target cuda")),
    ]


# ---------------------------------------------------------------------------
# weights, headers and the one-pass run (shared with tests/test_golden.py)


def golden_weight(name: str, typ) -> Any:
    """A deterministic tensor for weight ``name`` of type ``typ``: a generator seeded by crc32 of the name
    and the printed type. Float weights of rank >= 2 are normal / sqrt(last dim) (unit-scale outputs), of
    rank <= 1 1 + 0.1 normal (norm scales, biases); integer weights uniform over the dtype (i1: 0 or 1)."""
    import torch

    from kiln.ir.ops import TORCH_DTYPE
    from kiln.ir.printer import format_type

    if not typ.is_static:
        raise ValueError(f"weight {name!r} has a symbolic type {format_type(typ)}")
    g = torch.Generator().manual_seed(zlib.crc32(f"{name}:{format_type(typ)}".encode()))
    shape, dtype = tuple(typ.shape), TORCH_DTYPE[typ.dtype]
    if typ.dtype.is_float:
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        x = x / math.sqrt(shape[-1]) if len(shape) >= 2 else 1 + 0.1 * x
        return x.to(dtype)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    info = torch.iinfo(dtype)
    lo, hi = max(info.min, -128), min(info.max, 255)
    return torch.randint(lo, hi + 1, shape, generator=g, dtype=torch.int64).to(dtype)


def golden_weights(module) -> dict[str, Any]:
    """``golden_weight`` for every weight the module's programs name."""
    out: dict[str, Any] = {}
    for p in module.programs.values():
        for op in p.walk("kiln.weight"):
            out.setdefault(op.attrs["name"], golden_weight(op.attrs["name"], op.result.type))
    return out


def read_header(text: str) -> dict[str, str]:
    """``key: value`` from the ``//`` comment lines that start a golden file."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.startswith("//"):
            break
        key, sep, value = line[2:].strip().partition(": ")
        if sep and key.replace(" ", "").isalnum():
            out[key] = value.strip()
    return out


def strip_header(text: str) -> str:
    lines = text.splitlines(keepends=True)
    i = 0
    while i < len(lines) and lines[i].startswith("//"):
        i += 1
    return "".join(lines[i:])


def load_module(text: str):
    """Parse a golden file and give the module its golden weights."""
    from kiln.ir.parser import parse_module

    module = parse_module(text)
    module.weights = golden_weights(module)
    return module


def make_pass(spec: str):
    from kiln.passes.manager import parse_passes

    passes = parse_passes(spec)
    if len(passes) != 1:
        raise ValueError(f"a golden case runs one pass, {spec!r} names {len(passes)}")
    return passes[0]


def give_draft(p, draft_module, source: str) -> None:
    """What kiln compile gives a speculative pass with drafter=model (see kiln.compiler._prepare_speculative)."""
    p.draft_module = draft_module
    p.draft_source = source


def run_pass(module, p) -> None:
    from kiln.passes.manager import PassManager

    PassManager([p], verify=True, keep_ir=False).run(module)


def run_case(input_text: str, draft_text: str | None = None):
    """Parse a golden input, give it golden weights, run its ``// pass:`` and print the result.

    Returns (the module before the pass, the module after it, the printed IR after it)."""
    from kiln.ir.printer import print_module

    header = read_header(input_text)
    if "pass" not in header:
        raise ValueError("a golden input needs a '// pass: NAME{options}' header line")
    p = make_pass(header["pass"])
    module = load_module(input_text)
    before = module.clone()
    before.weights = dict(module.weights)
    if header.get("draft"):
        if draft_text is None:
            raise ValueError(f"this case needs its draft model {header['draft']!r}")
        give_draft(p, load_module(draft_text), f"golden:{header['draft']}")
    run_pass(module, p)
    return before, module, print_module(module, with_meta=True)


def diff(want: str, got: str, name: str) -> str:
    return "".join(difflib.unified_diff(want.splitlines(keepends=True), got.splitlines(keepends=True),
                                        f"{name} (checked in)", f"{name} (now)"))


# ---------------------------------------------------------------------------
# generation


def _wrap(key: str, value: str, width: int = 116) -> list[str]:
    """``// key: value`` lines, continued with ``//   ...`` (read_header keeps only the first line)."""
    words, lines, cur = value.split(" "), [], f"// {key}: "
    for w in words:
        if len(cur) + len(w) > width and cur.strip() not in ("//", f"// {key}:"):
            lines.append(cur.rstrip())
            cur = "//   "
        cur += w + " "
    lines.append(cur.rstrip())
    return lines


def input_header(case: Case) -> str:
    lines = ["// Golden input: the IR immediately before one pass; tests/test_golden.py runs that pass on it",
             f"// and compares the result with {case.name}.expected.mlir. Regenerate: {WRITE_HINT}",
             f"// case: {case.name}", f"// pass: {case.pass_spec}"]
    lines += _wrap("model", MODELS[case.model].description)
    done = ", ".join(case.before) or "no pass: the frontend's IR, as kiln.frontend.import_model captures it"
    lines += _wrap("preceded by", f"{done} ({case.before_desc})")
    if case.tweak_desc:
        lines += _wrap("then changed", case.tweak_desc)
    if case.draft:
        lines.append(f"// draft: {case.draft_file}")
    if case.note:
        lines += _wrap("note", case.note)
    lines += _wrap("weights", "none in the text; the test gives each a tensor drawn from a generator seeded by its "
                   "name and type (tools/golden.py: golden_weight)")
    return "\n".join(lines) + "\n"


def expected_header(case_name: str, pass_spec: str) -> str:
    return (f"// Golden output: {case_name}.input.mlir after the one pass below (tests/test_golden.py compares\n"
            f"// the printed IR with this file's IR exactly). Regenerate: {WRITE_HINT}\n"
            f"// case: {case_name}\n// pass: {pass_spec}\n")


def draft_header(case: Case) -> str:
    lines = ["// Golden draft model: what kiln compile gives the speculative pass with drafter=model",
             f"// (tests/test_golden.py parses it with golden weights). Regenerate: {WRITE_HINT}"]
    lines += _wrap("model", MODELS[case.draft].description)
    lines += _wrap("preceded by", f"{', '.join(case.before)} (the passes before speculative, as kiln compile "
                   "compiles a draft model)")
    return "\n".join(lines) + "\n"


class Generator:
    """Captures each model once and makes the files of each case."""

    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self.captured: dict[str, Any] = {}
        self.prepared: dict[tuple, Any] = {}
        self.notes: dict[str, str] = {}

    def module(self, model: str, before: tuple[str, ...]):
        """A fresh copy of ``model`` after ``before`` (real weights), cached."""
        from kiln.passes.manager import PassManager, parse_passes

        key = (model, before)
        if key not in self.prepared:
            if model not in self.captured:
                self.say(f"  capturing {model} ({MODELS[model].preset}, shrunk)")
                self.captured[model] = capture(model)
            m = self.captured[model].clone()
            m.weights = dict(self.captured[model].weights)
            if before:
                PassManager(parse_passes(list(before)), verify=True, keep_ir=False).run(m)
            self.prepared[key] = m
        m = self.prepared[key].clone()
        m.weights = dict(self.prepared[key].weights)
        m.meta = copy.deepcopy(m.meta)  # passes update nested entries (quantize-kv: meta["kv_cache"])
        return m

    def files(self, case: Case, expected_only: bool = False, on_disk: dict[str, str] | None = None) -> dict[str, str]:
        """{file name: text} for the case: input, expected and (drafter=model) draft."""
        from kiln.ir.printer import print_module

        out: dict[str, str] = {}
        if expected_only:
            if on_disk is None or f"{case.name}.input.mlir" not in on_disk:
                raise SystemExit(f"golden: {case.name}.input.mlir does not exist; run without --expected-only")
            out[f"{case.name}.input.mlir"] = on_disk[f"{case.name}.input.mlir"]
            if case.draft:
                if case.draft_file not in on_disk:
                    raise SystemExit(f"golden: {case.draft_file} does not exist; run without --expected-only")
                out[case.draft_file] = on_disk[case.draft_file]
        else:
            m = self.module(case.model, case.before)
            if case.tweak is not None:
                case.tweak(m)
            out[f"{case.name}.input.mlir"] = input_header(case) + print_module(m, with_meta=True)
            if case.draft:
                d = self.module(case.draft, case.before)
                out[case.draft_file] = draft_header(case) + print_module(d, with_meta=True)
        text = out[f"{case.name}.input.mlir"]
        _, _, got = run_case(text, out.get(case.draft_file))
        out[f"{case.name}.expected.mlir"] = expected_header(case.name, read_header(text)["pass"]) + got
        if not expected_only:
            self.notes[case.name] = self._real_weights_check(case, got)
        return out

    def _real_weights_check(self, case: Case, golden_out: str) -> str:
        """Whether the pass prints the same IR on the captured model's real weights as on golden weights."""
        from kiln.ir.printer import print_module

        m = self.module(case.model, case.before)
        if case.tweak is not None:
            case.tweak(m)
        p = make_pass(case.pass_spec)
        if case.draft:
            give_draft(p, self.module(case.draft, case.before), f"golden:{case.draft_file}")
        run_pass(m, p)
        real = print_module(m, with_meta=True)
        if real == golden_out:
            return ""
        a, b = golden_out.splitlines(), real.splitlines()
        lines = [i for i in range(max(len(a), len(b))) if i >= min(len(a), len(b)) or a[i] != b[i]]
        if len(a) != len(b):
            return f"with the model's real weights the output has {len(b)} lines, not {len(a)}"
        x, y = a[lines[0]], b[lines[0]]
        c = next(i for i in range(len(x)) if i >= len(y) or x[i] != y[i])
        return (f"with the model's real weights {len(lines)} line(s) of the output differ; first, IR line "
                f"{lines[0] + 1}: ...{x[max(0, c - 40):c + 30]}... here, ...{y[max(0, c - 40):c + 30]}... there")


def read_disk() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(GOLDEN_DIR.glob("*.mlir"))} if GOLDEN_DIR.is_dir() else {}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="write the golden files (delete ones no case makes)")
    mode.add_argument("--diff", action="store_true", help="show what changed, write nothing (the default)")
    mode.add_argument("--list", action="store_true", help="list the cases")
    ap.add_argument("--expected-only", action="store_true",
                    help="keep the checked-in inputs; regenerate only the expected outputs")
    ap.add_argument("cases", nargs="*", help="only these cases (default: all)")
    args = ap.parse_args(argv)

    all_cases = cases()
    if args.list:
        for c in all_cases:
            print(f"{c.name:36} {c.pass_spec:72} {c.model}")
        return 0
    unknown = sorted(set(args.cases) - {c.name for c in all_cases})
    if unknown:
        print(f"golden: unknown case(s) {', '.join(unknown)}; --list shows them", file=sys.stderr)
        return 2
    chosen = [c for c in all_cases if not args.cases or c.name in args.cases]

    def say(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    disk = read_disk()
    gen = Generator(say)
    made: dict[str, str] = {}
    t_all = time.perf_counter()
    for i, case in enumerate(chosen, 1):
        t0 = time.perf_counter()
        say(f"[{i}/{len(chosen)}] {case.name}: {case.pass_spec}")
        files = gen.files(case, args.expected_only, disk)
        for name, text in files.items():
            if name in made and made[name] != text:
                raise SystemExit(f"golden: two cases make {name} with different text")
            made[name] = text
        state = ", ".join(f"{n.removeprefix(case.name + '.')} {_state(disk.get(n), t)}" for n, t in files.items())
        say(f"      {state} ({time.perf_counter() - t0:.1f} s)")
    stale = [] if args.cases else sorted(set(disk) - set(made))

    changed = [n for n, t in made.items() if disk.get(n) != t]
    if args.write:
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        for n in changed:
            (GOLDEN_DIR / n).write_text(made[n])
        for n in stale:
            (GOLDEN_DIR / n).unlink()
    else:
        for n in changed:
            if n in disk:
                sys.stdout.write(diff(disk[n], made[n], f"tests/golden/{n}"))
            else:
                print(f"new file: tests/golden/{n} ({made[n].count(chr(10))} lines)")
        for n in stale:
            print(f"stale file (no case makes it): tests/golden/{n}")

    new = [n for n in changed if n not in disk]
    print(f"\ngolden: {len(chosen)} case(s), {len(made)} file(s) in {time.perf_counter() - t_all:.1f} s: "
          f"{len(made) - len(changed)} unchanged, {len(changed) - len(new)} changed, {len(new)} new, "
          f"{len(stale)} stale")
    for name, note in gen.notes.items():
        if note:
            print(f"  note: {name}: {note}")
    if args.write:
        if changed or stale:
            print(f"wrote {len(changed)} file(s), deleted {len(stale)} in tests/golden/; review them with git diff")
        return 0
    if changed or stale:
        print(f"to accept these changes (after reviewing the diff): {WRITE_HINT}"
              + (" --expected-only" if args.expected_only else ""))
        return 1
    return 0


def _state(old: str | None, new: str) -> str:
    return "new" if old is None else "unchanged" if old == new else "CHANGED"


if __name__ == "__main__":
    sys.exit(main())
