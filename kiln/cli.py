"""The ``kiln`` command line: compile, presets, pipelines, dump, run, bench, demo.

Every user mistake ends in one line on stderr, ``kiln: error: ...``, and a
non-zero exit status (1 for bad input found while working, 2 for a bad
command line); no traceback. ``KILN_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from kiln._version import __version__
from kiln.errors import ExecError, KilnError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        sys.stderr.write(f"kiln: error: {message} (see `{self.prog} --help`)\n")
        sys.exit(2)


def _progress(quiet: bool):
    t0 = time.perf_counter()

    def say(msg: str) -> None:
        if not quiet:
            sys.stderr.write(f"[{time.perf_counter() - t0:6.1f}s] {msg}\n")
            sys.stderr.flush()

    return say


def _check_output_paths(a) -> None:
    """Refuse an -o / --dump-dir that could not be written before loading and capturing the model."""
    from pathlib import Path

    from kiln.runtime.artifact import check_destination

    check_destination(Path(a.output))
    if a.dump_dir:
        d = Path(a.dump_dir)
        if d.exists() and not d.is_dir():
            raise KilnError(f"cannot write IR dumps to {a.dump_dir!r}: it exists and is not a directory")
        up = d.absolute()
        while not up.exists():
            up = up.parent
        if not up.is_dir() or not os.access(up, os.W_OK | os.X_OK):
            raise KilnError(f"cannot write IR dumps to {a.dump_dir!r}: {str(up)!r} is not a writable directory")


def _load(a, path):
    """``kiln.load`` for every command that reads an artifact: ``--verify-key`` or ``KILN_VERIFY_KEY``
    (a key file) refuses artifacts not signed with that key (kiln/runtime/signing.py)."""
    import kiln

    key = getattr(a, "verify_key", None) or os.environ.get("KILN_VERIFY_KEY") or None
    return kiln.load(path, verify_key=key)


def cmd_compile(a) -> int:
    import kiln
    from kiln.runtime import signing

    _check_output_paths(a)
    key = signing.read_key(a.sign) if a.sign else None  # before compiling: a bad key fails in a second
    say = _progress(a.quiet)
    art = kiln.compile(a.model, pipeline=a.pipeline, passes=a.passes, target=a.target, draft=a.draft,
                       dump_dir=a.dump_dir, seed=a.seed, progress=say, spec_k=a.spec_k,
                       spec_adaptive=a.spec_adaptive, spec_tree=a.spec_tree, spec_skip=a.spec_skip)
    say(f"writing {a.output}")
    art.save(a.output)
    if key is not None:
        signing.sign(a.output, key)
    m = art.manifest
    n_ops = sum(len(p.ops) for p in art.module.programs.values())
    generic = m.get("generic_ops", {})
    print(f"compiled {m['source']['model']} ({m['source']['family']}) -> {a.output}")
    print(f"  pipeline {m['pipeline']['name']}: {', '.join(m['pipeline']['passes']) or '(no passes)'}")
    print(f"  {n_ops} ops, {len(art.module.weights)} weights; ops left generic (kiln.aten): "
          f"{', '.join(f'{k} x{v}' for k, v in generic.items()) or 'none'}")
    spec = m["model"].get("speculative")
    if spec:
        extra = {"model": f"draft model {spec.get('draft_source', '')} ({spec.get('draft_params', 0):,} params)",
                 "self": f"skipping layers {spec.get('skip_layers')} (greedy agreement {spec.get('agreement', 0):.1%} "
                         "on held-out text)",
                 "ngram": f"token tree of up to {spec.get('tree_nodes', 0)} recycled nodes"}.get(spec["drafter"], "")
        print(f"  speculative: {spec['drafter']} drafter, k={spec['k']}, {spec['policy']}; {extra}")
    if a.dump_dir:
        print(f"  IR before/after each pass in {a.dump_dir}")
    if a.stats:
        f = m["frontend"]
        print(f"\nfrontend: {f['seconds']:.2f} s; lifted: "
              f"{', '.join(f'{k} x{v}' for k, v in sorted(f['lift_matches'].items())) or 'nothing'}")
        print(f"{'pass':<16} {'ms':>8}  changed  rule matches")
        for r in m["passes"]:
            matches = ", ".join(f"{k} x{v}" for k, v in sorted(r["rule_matches"].items())) or "-"
            print(f"{r['name']:<16} {r['seconds'] * 1000:>8.1f}  {'yes' if r['changed'] else 'no ':<7}  {matches}")
    return 0


def cmd_presets(a) -> int:
    from kiln.frontend.presets import PRESETS

    width = max(len(n) for n in PRESETS)
    for p in PRESETS.values():
        print(f"{p.name:<{width}}  {p.family:<8} {p.description}")
    return 0


def cmd_pipelines(a) -> int:
    from kiln.passes.manager import PIPELINES, load_passes

    registry = load_passes()
    for name, (desc, passes) in PIPELINES.items():
        print(f"{name}: {desc}")
        print(f"    {' -> '.join(passes) if passes else '(no passes)'}")
    print("\npasses:")
    width = max(len(n) for n in registry)
    for name, cls in sorted(registry.items()):
        print(f"  {name:<{width}}  {cls.summary}")
    return 0


def _dump_memory(a, art) -> int:
    """``kiln dump --memory``: the static memory plan of each program the CPU code generator compiles."""
    from kiln.codegen import cstep

    if art.manifest.get("target", "cpu") != "cpu":
        raise KilnError("--memory shows the CPU target's memory plans; this artifact targets "
                        f"{art.manifest.get('target')}")
    names = [a.program] if a.program else list(art.module.programs)
    for name in names:
        if name not in art.module.programs:
            raise KilnError(f"no program {name!r}; this artifact has {', '.join(art.module.programs)}")
    if not 1 <= a.tokens <= 1 << 20:
        raise KilnError(f"--tokens must be in [1, {1 << 20}], got {a.tokens}")
    env = {"N": a.tokens}
    for name in names:
        try:
            print(cstep.memory_report(art.module[name], art.module.weights, env))
        except cstep.Unsupported as e:
            print(f"// {name}: not compiled ({e}); it runs in the interpreter")
    return 0


def cmd_dump(a) -> int:
    art = _load(a, a.artifact)
    if a.kernels:
        target = art.manifest.get("target", "cpu")
        if not art.kernel_sources:
            print(f"// target {target}: no generated kernels; every op runs through its torch reference semantics")
            return 0
        names = [n for n in sorted(art.kernel_sources) if a.program is None or n.rsplit(".", 1)[0] == a.program]
        if not names:
            raise KilnError(f"no kernels for program {a.program!r}; programs with kernels: "
                            f"{', '.join(n.rsplit('.', 1)[0] for n in sorted(art.kernel_sources))}")
        comment = "//" if target == "cpu" else "#"
        for n in names:
            print(f"{comment} ---- kernels/{n} (target {target}; regenerated from the IR when the artifact runs)")
            print(art.kernel_sources[n])
        return 0
    if a.memory:
        return _dump_memory(a, art)
    from kiln.ir.parser import parse_module

    if a.after is not None and not a.after.strip():
        raise KilnError("--after needs a pass name, an index or 'frontend'")
    module = art.module
    if a.after:
        from kiln.ir.parser import ParseError

        try:
            module = parse_module(art.snapshot(a.after))
        except (ParseError, ValueError, RecursionError) as e:
            raise KilnError(f"the artifact's IR after {a.after!r} does not parse: {e}") from None
    programs = [a.program] if a.program else list(module.programs)
    for name in programs:
        if name not in module.programs:
            raise KilnError(f"no program {name!r}; this artifact has {', '.join(module.programs)}")
    if a.format == "dot":
        from kiln.ir.graph import to_dot

        for name in programs:
            print(to_dot(module.programs[name]))
        return 0
    from kiln.ir.core import Module
    from kiln.ir.printer import print_module

    sub = Module({n: module.programs[n] for n in programs})
    if a.format == "text":
        m = art.manifest
        print(f"// {m['source']['model']} ({m['source']['family']}), target {m['target']}, pipeline "
              f"{m['pipeline']['name']}" + (f", after {a.after}" if a.after else ""))
        for line in _quant_summary(module.meta):
            print(f"// {line}")
    sys.stdout.write(print_module(sub))
    return 0


def _quant_summary(meta: dict) -> list[str]:
    """One line per quantization the module carries (weights, KV cache), for ``kiln dump``."""
    out = []
    q = meta.get("quantization", {}).get("weights")
    if isinstance(q, dict):
        fmt = q.get("format", "?")
        if fmt == "int4":
            fmt += f" g{q.get('group_size')} {'symmetric' if q.get('symmetric') else 'asymmetric (f16 offsets)'}"
        else:
            fmt += " per output channel"
        kept = q.get("full_precision") or {}
        out.append(f"quantized weights: {fmt}, {len(q.get('quantized', []))} layers (kiln.qlinear / kiln.qembedding)"
                   + (f"; full precision: {', '.join(f'{k} ({v})' for k, v in kept.items())}" if kept else ""))
    kv = meta.get("kv_cache")
    if isinstance(kv, dict) and kv.get("dtype") == "i8":
        out.append(f"KV cache: int8, {kv.get('scales', 'scales')} (kiln.cache_write_q8 / kiln.cache_attention_q8)")
    return out


def cmd_run(a) -> int:
    from kiln.runtime.generate import Runtime

    rt = Runtime(_load(a, a.artifact), cache_tokens=a.cache_tokens,
                 prefill_chunk=a.prefill_chunk, speculative=not a.no_speculative)
    kw = {"max_new_tokens": a.max_new_tokens, "temperature": a.temperature, "top_k": a.top_k, "top_p": a.top_p,
          "seed": a.seed, "stop_at_eos": not a.ignore_eos, "stop_ids": a.stop_id or ()}
    prompts = a.prompt
    if a.stream and not a.json and len(prompts) == 1:
        from kiln.runtime.generate import stream_text

        ids = rt.encode(prompts[0])
        sys.stdout.write(prompts[0])
        out: list[int] = []
        t0 = time.perf_counter()
        for piece in stream_text(rt.decode, (s[0] for s in rt.stream_batch([ids], **kw)), out):
            sys.stdout.write(piece)
            sys.stdout.flush()
        dt = time.perf_counter() - t0
        sys.stdout.write("\n")
        sys.stderr.write(f"{len(out)} tokens in {dt:.2f} s ({len(out) / dt if dt else 0:.1f} tokens/s)\n")
        return 0
    if a.stream and a.json:
        raise KilnError("--stream and --json do not mix: --json prints one object per prompt at the end")
    if a.stream and len(prompts) > 1:
        raise KilnError("--stream prints one completion as it comes; give one --prompt")
    encoded = [rt.encode(p) for p in prompts]
    t0 = time.perf_counter()
    outs = rt.generate(encoded, **kw)
    dt = time.perf_counter() - t0
    stats = rt.last_stats
    n_new = sum(len(o) - len(e) for o, e in zip(outs, encoded))
    for prompt, ids, o in zip(prompts, encoded, outs):
        new = o[len(ids):]
        if a.json:
            print(json.dumps({"text": rt.decode(new), "prompt": prompt, "token_ids": new,
                              "prompt_tokens": len(ids), "new_tokens": len(new), "batch": len(prompts),
                              "seconds": round(dt, 4), "tokens_per_s": round(n_new / dt if dt else 0.0, 2),
                              "prefill_seconds": round(stats.get("prefill_seconds", 0.0), 4),
                              "kv_cache": rt.kv.layout if rt.kv else None, **_spec_stats(stats)}))
        else:
            print(prompt + rt.decode(new))
    if not a.json:
        sys.stderr.write(f"{n_new} tokens in {dt:.2f} s ({n_new / dt if dt else 0:.1f} tokens/s"
                         f"{', batch of ' + str(len(prompts)) if len(prompts) > 1 else ''}; "
                         f"{rt.kv.describe() if rt.kv else 'no KV cache'})\n")
        if "accepted_per_verify" in stats:
            sys.stderr.write(f"speculative ({stats['speculative']}): {stats['accepted_per_verify']:.2f} tokens per "
                             f"verify step, {stats['acceptance_rate']:.0%} of drafted tokens accepted\n")
    return 0


def cmd_serve(a) -> int:
    try:
        from kiln.serve.app import Server, bind, uvicorn_server
    except ImportError as e:
        raise KilnError(f"kiln serve needs the 'serve' extra ({e.name} is missing): "
                        "pip install 'kiln[serve]'") from None
    from pathlib import Path

    from kiln.runtime.generate import Runtime
    from kiln.runtime.scheduler import check_limits

    check_limits(a.max_batch, a.max_queue, a.chunk_tokens)
    if a.threads is not None:
        if a.threads < 1:
            raise KilnError(f"--threads must be at least 1, got {a.threads}")
        import torch

        torch.set_num_threads(a.threads)
    api_key = a.api_key or os.environ.get("KILN_API_KEY") or None
    template = None
    if a.chat_template:
        try:
            template = Path(a.chat_template).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise KilnError(f"cannot read the chat template {a.chat_template!r}: "
                            f"{getattr(e, 'strerror', None) or e}") from None
    sock = bind(a.host, a.port)  # first: a busy port fails before the model loads
    art = _load(a, a.artifact)
    rt = Runtime(art, cache_tokens=a.cache_tokens, speculative=not a.no_speculative, cache_sequences=a.max_batch)
    name = a.model_name or Path(os.path.abspath(a.artifact)).name.removesuffix(".kiln")
    server = Server(rt, name, max_batch=a.max_batch, max_queue=a.max_queue, chunk_tokens=a.chunk_tokens,
                    api_key=api_key, chat_template=template)
    host, port = sock.getsockname()[:2]
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}"
    drafter = f"; speculative ({rt.spec.info.get('drafter')})" if rt.spec is not None else ""
    sys.stderr.write(f"kiln serve: {name} on {url} (OpenAI API under /v1, metrics at /metrics); max batch "
                     f"{a.max_batch}, queue {a.max_queue}, {rt.kv.describe()}{drafter}; chat "
                     f"{'on' if server.chat else 'off (' + (server.chat_note or 'no chat template') + ')'}\n")
    if api_key is None and host not in ("127.0.0.1", "::1", "localhost"):
        sys.stderr.write("kiln serve: warning: listening beyond loopback with no API key (--api-key or "
                         "KILN_API_KEY): anyone who can reach the port can use the model\n")
    try:
        uvicorn_server(server, a.log_level, a.shutdown_timeout).run(sockets=[sock])
    except (KeyboardInterrupt, SystemExit) as e:  # uvicorn re-raises the signal it shut down for
        if isinstance(e, SystemExit) and e.code != 143:
            raise
    sys.stderr.write("kiln serve: stopped\n")
    return 0


def _spec_stats(stats: dict) -> dict:
    keys = ("speculative", "accepted_per_verify", "acceptance_rate", "verify_calls", "drafted_tokens",
            "accepted_tokens", "fused_rounds")
    return {k: stats[k] for k in keys if k in stats}


def cmd_eval(a) -> int:
    from pathlib import Path

    import kiln
    from kiln import data, evaluate

    if a.max_bytes is not None and a.max_bytes <= 0:
        raise KilnError(f"--max-bytes must be positive, got {a.max_bytes}")
    if not 0 < a.stride <= a.ctx:
        raise KilnError(f"need 0 < --stride <= --ctx, got stride {a.stride}, ctx {a.ctx}")
    if a.batch < 1:
        raise KilnError(f"--batch must be >= 1, got {a.batch}")
    say = _progress(a.quiet)
    # the text first: a bad --text/--dir is reported before any model is loaded or compiled
    if a.text or a.dir:
        files, skipped = data.user_files(a.text or [], a.dir or [], a.max_bytes)
        if not files:
            raise KilnError(f"no UTF-8 text in {', '.join((a.text or []) + (a.dir or []))}"
                            + (f" ({skipped} files skipped: not UTF-8 or unreadable)" if skipped else ""))
        source = "files of your text"
        n_bytes = sum(f.n_bytes for f in files)
        say(f"{len(files)} files, {n_bytes:,} bytes" + (f"; {skipped} skipped (not UTF-8 or unreadable)"
                                                        if skipped else ""))
    else:
        files = data.heldout_files(a.max_bytes)
        if not files:
            raise KilnError(f"no held-out files found under {data.stdlib_dir()}")
        source = "held-out files"
        n_bytes = sum(f.n_bytes for f in files)
        say(f"held-out split: {len(files)} files, {n_bytes:,} bytes from {data.stdlib_dir()}")
    if (Path(a.model) / "manifest.json").exists():
        art = _load(a, a.model)
    else:
        say(f"{a.model} is not an artifact: compiling it with the default pipeline")
        art = kiln.compile(a.model, progress=say)
    rt = art.runtime()
    if a.ctx > rt.max_positions:
        raise KilnError(f"--ctx {a.ctx} exceeds the model's context of {rt.max_positions}")
    bos = art.module.meta.get("bos_token_id")
    if not isinstance(bos, int):
        raise KilnError("the model has no bos_token_id; kiln eval starts every file with it")
    # the tokenizer's own special tokens (a bos post-processor) stay out: encode_docs adds bos once
    docs = evaluate.encode_docs(lambda t: rt.tokenizer.encode(t, add_special_tokens=False).ids,
                                [f.text for f in files], bos)
    res = evaluate.evaluate(rt.logits, docs, n_bytes, ctx=a.ctx, stride=a.stride, batch=a.batch,
                            progress=not a.quiet, label="eval")
    import platform

    comp = evaluate.compressor_bits_per_byte(f.text for f in files)
    out = {"model": a.model, "files": len(files), **res.as_dict(), "ctx": a.ctx, "stride": a.stride,
           "pipeline": art.manifest["pipeline"]["name"], "python": platform.python_version(),
           "compressors_bits_per_byte": {k: round(v, 4) for k, v in comp.items()}}
    if a.text or a.dir:
        out["text_sha256"] = data.fingerprint(files)
    else:
        out["heldout_sha256"] = data.fingerprint(files)
    if a.json:
        print(json.dumps(out))
    else:
        print(f"{a.model}: {res.bits_per_byte:.4f} bits/byte, perplexity {res.perplexity:.3f} "
              f"({res.n_tokens:,} tokens, {n_bytes:,} bytes, {len(files)} {source}, {res.seconds:.1f} s)")
        print("compressors on the same bytes (each file on its own): "
              + ", ".join(f"{k} {v:.4f}" for k, v in comp.items()) + " bits/byte")
    return 0


def cmd_bench(a) -> int:
    from kiln.bench import bench, check_settings, format_table

    check_settings(a.prompt_len, a.new_tokens, a.repeats, a.threads)  # before loading the artifact
    art = _load(a, a.artifact)
    if "verify" in art.module.programs:  # compiled with --draft: speculative vs plain vs HF's speculative modes
        from kiln import bench_spec

        if a.baseline != "hf":
            raise KilnError(f"an artifact compiled with --draft is benchmarked against hf (plain, assisted or "
                            f"prompt lookup), not {a.baseline}")
        r = bench_spec.bench_speculative(art, a.prompt_len, a.new_tokens, a.repeats, a.threads,
                                         progress=_progress(a.json))
        print(json.dumps(r) if a.json else bench_spec.format_table(r))
        return 0
    if a.baseline == "ort":  # ORT GenAI and kiln's own ONNX export on ORT (kiln/bench_ort.py)
        from kiln import bench_ort

        r = bench_ort.bench_ort(art, a.prompt_len, a.new_tokens, a.repeats, a.threads, progress=_progress(a.json))
        print(json.dumps(r) if a.json else bench_ort.format_table(r))
        return 0
    r = bench(art, a.baseline, a.prompt_len, a.new_tokens, a.repeats, a.threads, progress=_progress(a.json))
    print(json.dumps(r) if a.json else format_table(r))
    return 0


def cmd_export(a) -> int:
    from pathlib import Path

    from kiln.export import check_output_dir, export

    check_output_dir(Path(a.output))  # before loading the artifact
    art = _load(a, a.artifact)
    desc = export(art, a.format, a.output, progress=_progress(a.quiet))
    print(f"exported {a.artifact} -> {a.output} ({a.format}): {', '.join(desc['programs'])}")
    return 0


BUNDLED_TARGET = "examples/models/kiln-code-target"
DEMO_PROMPT = 'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n'


def bundled_model_dir() -> str | None:
    from pathlib import Path

    here = Path(__file__).resolve().parents[1] / BUNDLED_TARGET
    return str(here) if (here / "config.json").exists() else None


def cmd_demo(a) -> int:
    import tempfile

    import torch

    import kiln
    from kiln.frontend.presets import PRESETS
    from kiln.runtime.generate import check_prompt_text, check_sampling

    check_sampling(0.0, 1.0, 0, a.max_new_tokens)  # before compiling: the bad values would be found after
    check_prompt_text(a.prompt)
    say = _progress(False)
    model_ref = a.model or bundled_model_dir()
    if model_ref is None:
        raise KilnError(f"the bundled model ({BUNDLED_TARGET}) is not in this checkout; "
                        "pass --model PRESET_OR_DIR")
    draft = a.draft or "ngram"
    if draft == "none":
        draft = None
    what = "preset (random weights: the text is noise)" if model_ref in PRESETS else "model"
    say(f"demo: compiling {what} {model_ref}" + (f" with the {draft} drafter" if draft else ""))
    art = kiln.compile(model_ref, progress=say, draft=draft)
    with tempfile.TemporaryDirectory() as d:
        art.save(os.path.join(d, "demo.kiln"))
        loaded = kiln.load(os.path.join(d, "demo.kiln"))
        rt = loaded.runtime()
        plain = loaded.runtime(speculative=False)
        prompt = a.prompt
        rt.generate_text(prompt, max_new_tokens=4)  # warm-up
        plain.generate_text(prompt, max_new_tokens=4)
        g0 = plain.generate_text(prompt, max_new_tokens=a.max_new_tokens)
        g = rt.generate_text(prompt, max_new_tokens=a.max_new_tokens)
        spec = rt.last_stats
    from kiln.frontend.loader import load_model

    model = load_model(model_ref).model  # the model kiln compiled, run by transformers
    ids = torch.randint(0, rt.vocab_size, (2, 64), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        err = (rt.logits(ids) - model(input_ids=ids).logits).abs().max().item()
    from kiln.ir.parser import parse_module

    front = sum(len(p.ops) for p in parse_module(art.snapshots[0][1]).programs.values())
    progs = ", ".join(f"{n} ({len(p.ops)} ops)" for n, p in art.module.programs.items())
    print(f"model: {model_ref} ({art.manifest['source']['family']}); {front} ops after lifting -> {progs}; "
          f"left generic: {', '.join(art.manifest['generic_ops']) or 'none'}")
    print(f"passes applied: {', '.join(r['name'] for r in art.manifest['passes'])}")
    print(f"KV cache: {rt.kv.describe() if rt.kv else 'none'}")
    print(f"logits vs transformers on 2x64 random ids: max abs error {err:.2e}")
    if rt.spec is not None:
        same = "identical" if g.token_ids == g0.token_ids else "DIFFERENT (a bug: please report it)"
        print(f"speculative decoding ({spec.get('speculative')} drafter): {spec.get('accepted_per_verify', 0):.2f} "
              f"tokens per verify step, {g0.seconds / g.seconds if g.seconds else 0:.2f}x the speed of plain "
              f"decoding ({g.tokens_per_s:.1f} vs {g0.tokens_per_s:.1f} tokens/s); greedy tokens {same}")
    print(f"--- prompt + greedy completion ({g.new_tokens} new tokens in {g.seconds * 1000:.0f} ms, "
          f"{g.tokens_per_s:.1f} tokens/s, prefill {g.prefill_seconds * 1000:.1f} ms) ---")
    print(rt.decode(g.token_ids))
    return 0


VERIFY_HELP = ("refuse the artifact unless it was signed with this key (kiln compile --sign); "
               "KILN_VERIFY_KEY=KEYFILE does the same for every command")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="kiln", description="kiln: a compiler for transformer language models")
    p.add_argument("--version", action="version", version=f"kiln {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    c = sub.add_parser("compile", help="compile a model (preset or HF directory) into an artifact")
    c.add_argument("model", help="a preset name (`kiln presets`) or a Hugging Face model directory")
    c.add_argument("-o", "--output", required=True, help="artifact directory to write")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--pipeline", default="default", help="named pass pipeline (`kiln pipelines`)")
    g.add_argument("--passes", help="explicit comma-separated pass list, e.g. cse,dce")
    c.add_argument("--target", default="cpu", choices=["cpu", "cuda"])
    c.add_argument("--draft", help="speculative decoding: a draft model (directory or preset sharing the "
                   "target's tokenizer), 'self' (the target with layers skipped) or 'ngram' (model-free)")
    c.add_argument("--spec-k", type=int, help="most tokens drafted per step (default 8)")
    c.add_argument("--spec-adaptive", type=float,
                   help="stop drafting when the draft's top probability falls below this (default 0: fixed length)")
    c.add_argument("--spec-tree", type=int, help="n-gram drafter: nodes of the recycled token tree (default 8)")
    c.add_argument("--spec-skip", type=int, help="self drafter: layers to skip (default half)")
    c.add_argument("--dump-dir", help="write the IR before and after every pass here")
    c.add_argument("--seed", type=int, default=0, help="seed for a preset's random weights")
    c.add_argument("--stats", action="store_true", help="print per-pass time and rule-match counts")
    c.add_argument("--sign", metavar="KEYFILE", help="sign the artifact (HMAC-SHA256 of its manifest) with this key")
    c.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    c.set_defaults(fn=cmd_compile)

    sub.add_parser("presets", help="list the model presets").set_defaults(fn=cmd_presets)
    sub.add_parser("pipelines", help="list the pass pipelines and passes").set_defaults(fn=cmd_pipelines)

    d = sub.add_parser("dump", help="print an artifact's IR")
    d.add_argument("artifact")
    d.add_argument("--program", help="only this program (default: all)")
    d.add_argument("--after", help="the IR after this pass (name, index, or 'frontend')")
    d.add_argument("--kernels", action="store_true", help="show generated kernel sources (C for the cpu "
                   "target, Triton for cuda)")
    d.add_argument("--memory", action="store_true", help="show each compiled program's static memory plan "
                   "(cpu target): arena bytes and which values share a buffer")
    d.add_argument("--tokens", type=int, default=1, help="--memory: the token count N to size it for "
                   "(default 1; other sizes 1)")
    d.add_argument("--format", default="text", choices=["text", "mlir", "dot"])
    d.add_argument("--verify-key", metavar="KEYFILE", help=VERIFY_HELP)
    d.set_defaults(fn=cmd_dump)

    r = sub.add_parser("run", help="generate text with an artifact")
    r.add_argument("artifact")
    r.add_argument("--prompt", required=True, action="append",
                   help="the prompt text; repeat for a batch of prompts (of any lengths)")
    r.add_argument("--max-new-tokens", type=int, default=32)
    r.add_argument("--temperature", type=float, default=0.0)
    r.add_argument("--top-k", type=int, default=0)
    r.add_argument("--top-p", type=float, default=1.0)
    r.add_argument("--seed", type=int)
    r.add_argument("--stop-id", type=int, action="append", help="a token id that ends a sequence (repeatable)")
    r.add_argument("--ignore-eos", action="store_true", help="do not stop at the model's EOS token")
    r.add_argument("--cache-tokens", type=int, help="KV-cache size in tokens (default: 4 full contexts, <= 1 GiB)")
    r.add_argument("--prefill-chunk", type=int, default=512, help="most prompt tokens per prefill step")
    r.add_argument("--stream", action="store_true", help="print tokens as they come")
    r.add_argument("--verify-key", metavar="KEYFILE", help=VERIFY_HELP)
    r.add_argument("--json", action="store_true", help="one JSON object per prompt")
    r.add_argument("--no-speculative", action="store_true",
                   help="decode one token per step even if the artifact was compiled with --draft")
    r.set_defaults(fn=cmd_run)

    v = sub.add_parser("serve", help="serve an artifact over an OpenAI-compatible HTTP API (continuous batching)")
    v.add_argument("artifact")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    v.add_argument("--port", type=int, default=8000)
    v.add_argument("--max-batch", type=int, default=16, help="most sequences decoded together (default 16)")
    v.add_argument("--max-queue", type=int, default=64,
                   help="most requests waiting to start; beyond it, 429 with Retry-After (default 64)")
    v.add_argument("--chunk-tokens", type=int, default=256,
                   help="tokens per engine iteration: every running sequence's next token, the rest to "
                   "prompt chunks (default 256)")
    v.add_argument("--cache-tokens", type=int,
                   help="KV-cache size in tokens (default: max-batch full contexts, <= 1 GiB)")
    v.add_argument("--api-key", help="require 'Authorization: Bearer KEY' (or set KILN_API_KEY)")
    v.add_argument("--model-name", help="the model id clients send (default: the artifact's directory name)")
    v.add_argument("--chat-template", metavar="FILE",
                   help="a Jinja chat template for /v1/chat/completions (default: the model's own, if any)")
    v.add_argument("--no-speculative", action="store_true", help="decode one token per step even if the "
                   "artifact was compiled with --draft")
    v.add_argument("--threads", type=int, help="torch threads for the model's compute (default: torch's)")
    v.add_argument("--shutdown-timeout", type=float, default=30.0,
                   help="seconds to let in-flight requests finish on shutdown (default 30)")
    v.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    v.add_argument("--verify-key", metavar="KEYFILE", help=VERIFY_HELP)
    v.set_defaults(fn=cmd_serve)

    b = sub.add_parser("bench", help="decode and prefill speed against transformers (same process, same threads)")
    b.add_argument("artifact")
    b.add_argument("--baseline", default="hf", choices=["hf", "torch-compile", "ort"])
    b.add_argument("--prompt-len", type=int, default=64)
    b.add_argument("--new-tokens", type=int, default=128)
    b.add_argument("--repeats", type=int, default=3)
    b.add_argument("--threads", type=int, help="torch threads for both (default: torch's)")
    b.add_argument("--verify-key", metavar="KEYFILE", help=VERIFY_HELP)
    b.add_argument("--json", action="store_true")
    b.set_defaults(fn=cmd_bench)

    x = sub.add_parser("export", help="write an artifact's programs as ONNX models or MLIR (torch or linalg)")
    x.add_argument("artifact")
    x.add_argument("--format", required=True, choices=["onnx", "mlir-linalg", "mlir-torch"])
    x.add_argument("-o", "--output", required=True, metavar="DIR", help="a new or empty directory")
    x.add_argument("--verify-key", metavar="KEYFILE", help=VERIFY_HELP)
    x.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    x.set_defaults(fn=cmd_export)

    e = sub.add_parser("eval", help="bits per byte and perplexity on the held-out stdlib split, or on your "
                       "text (--text / --dir), with compressors' bits per byte on the same bytes")
    e.add_argument("model", help="an artifact, or a model (preset or HF directory) compiled on the fly")
    e.add_argument("--text", action="append", metavar="FILE", help="a UTF-8 file to measure on (repeatable)")
    e.add_argument("--dir", action="append", metavar="DIR",
                   help="every UTF-8 file under DIR, recursively (repeatable; others are skipped and counted)")
    e.add_argument("--max-bytes", type=int, help="only the leading files up to this many bytes")
    e.add_argument("--ctx", type=int, default=256, help="window length in tokens (default 256)")
    e.add_argument("--stride", type=int, default=128, help="window stride in tokens (default 128)")
    e.add_argument("--batch", type=int, default=8, help="windows per forward pass")
    e.add_argument("--verify-key", metavar="KEYFILE", help=VERIFY_HELP)
    e.add_argument("--json", action="store_true")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    e.set_defaults(fn=cmd_eval)

    m = sub.add_parser("demo", help="compile the bundled code model and complete a Python prompt")
    m.add_argument("--model", help=f"a preset or model directory instead of the bundled {BUNDLED_TARGET}")
    m.add_argument("--prompt", default=DEMO_PROMPT)
    m.add_argument("--max-new-tokens", type=int, default=64)
    m.add_argument("--draft", help="drafter for speculative decoding: ngram (default), self, a draft model "
                   f"directory (e.g. {BUNDLED_TARGET.replace('target', 'draft')}), or none")
    m.set_defaults(fn=cmd_demo)
    return p


def _on_sigterm(signum, frame):  # turn SIGTERM into SystemExit so that cleanup (temp dirs) runs
    raise SystemExit(143)


# Errors of the machine or the user's files, not of kiln: reported as bad input (exit 1), not as a bug.
_ENV_ERRNOS = {"EACCES", "EPERM", "ENOSPC", "EDQUOT", "EROFS", "ENAMETOOLONG", "ELOOP", "ENOTDIR", "EISDIR",
               "EMFILE", "ENFILE", "EFBIG", "EIO"}


def _env_error(e: BaseException) -> bool:
    import errno

    return isinstance(e, OSError) and errno.errorcode.get(e.errno or 0, "") in _ENV_ERRNOS


def _os_message(e: OSError) -> str:
    where = f": {e.filename!r}" if e.filename is not None else ""
    return f"{e.strerror or e}{where}"


def main(argv: list[str] | None = None) -> int:
    if getattr(sys.stdout, "errors", None) == "strict" and hasattr(sys.stdout, "reconfigure"):
        # a path given as undecodable bytes (surrogate-escaped in argv) is printed back as those bytes
        sys.stdout.reconfigure(errors="surrogateescape")
    args = build_parser().parse_args(argv)
    import signal

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return int(args.fn(args) or 0)
    except KilnError as e:  # every failure kiln knows (kiln/errors.py): one line
        if os.environ.get("KILN_DEBUG"):
            raise
        hint = (" (is the artifact corrupt or modified? KILN_DEBUG=1 shows a traceback)"
                if isinstance(e, ExecError) else "")  # an op failed while a program ran
        sys.stderr.write(f"kiln: error: {_one_line(str(e))}{hint}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("kiln: interrupted\n")
        return 130
    except Exception as e:
        if os.environ.get("KILN_DEBUG"):
            raise
        if _env_error(e):
            sys.stderr.write(f"kiln: error: {_one_line(_os_message(e))}\n")
            return 1
        sys.stderr.write(f"kiln: error: internal error ({type(e).__name__}: {_one_line(str(e))}); "
                         "rerun with KILN_DEBUG=1 for a traceback and report it\n")
        return 70


def _one_line(msg: str) -> str:
    return " ".join(msg.split())[:2000]


if __name__ == "__main__":
    sys.exit(main())
