"""Fuzz kiln's IR parser and verifier with mutations of real dumps.

An artifact's ``ir/module.mlir`` may have been written by an attacker, so
reading it must end, quickly, in one of three ways: the module parses and
verifies, ``parse_module`` raises ``ParseError``, or ``verify_program`` raises
``IRError`` (``KilnError`` is accepted too). This script compiles a preset with
a few pipelines, prints each module (whole, and each program on its own, which
keeps cases small and fast), and then applies seeded byte- and token-level
mutations: spans deleted, duplicated, swapped or spliced in from another dump,
numbers replaced by huge, negative, non-ASCII or symbolic-power values, deep
nesting inserted, op names and attribute values swapped for others, the text
truncated. Each mutant is parsed and every program verified (against the
weights, as ``kiln.runtime.artifact.load`` does, or without them) under a
per-case CPU-time alarm; any other exception is an *escape*, an overrun a *hang*, and
both are saved to ``--out`` for reproduction (``--replay FILE`` reruns one).
``tests/test_ir_fuzz.py`` imports ``Mutator``, ``run_case`` and ``seed_dumps``.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import signal
import sys
import time
import traceback
from dataclasses import dataclass

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|-?[0-9][0-9A-Za-z.+-]*|%[A-Za-z0-9_$.#:-]+|[A-Za-z_][A-Za-z0-9_$.]*'
                    r"|->|\s+|.", re.DOTALL)
_NUMBER = re.compile(r"-?[0-9]")
_DIM_STRING = re.compile(r'tensor<[^>]*, ("[^"]*")>')

# numbers an attacker would try in place of a literal
NUMBERS = ["9" * 5000, "1" * 20, "-1", "0", "-0", "9223372036854775807", "9223372036854775808",
           "-9223372036854775809", "18446744073709551616", "\u0663", "\u00b2", "\u0967\u0968", "\uff11",
           "1\u0663", "0x" + "F" * 40, "0x7FF0000000000000", "-0x10", "1e999", "1.0e999", "-1.0e999",
           "1." + "0" * 200 + "e-400", "nan", "inf", "2**99999", "1.5", "0.0", "1" * 300 + ".0", "4294967296",
           "65536"]
# symbolic dimensions an attacker would try in an encoding string or a {sym = ...} attribute
DIMS = ["2**99999999999", "N**1e999", "B**9", "B**99", "B**-1", "B//0", "floor(B/0)", "B/2", "(" * 40 + "B" + ")" * 40,
        "-" * 50 + "B", "B" + "*B" * 200, "9223372036854775807*9223372036854775807", "\u0663", "B\u00b2",
        "__import__('os')", "B.T", "", " ", "B,", "T+1", "9*B", "floor((B+1)/2)", "ceiling(B/3)", "((B**8)**8)**8",
        "99999999999999999999", "B" * 300, "max(B,T)", "B if T else S", "lambda: 1", "B**2*T**2", "0", "-B"]
NESTING = [8, 63, 64, 65, 200, 5000, 100000]


def seed_dumps(preset: str = "llama-tiny", configs: list[dict] | None = None) -> list[tuple[str, dict]]:
    """(text, weights) pairs to mutate: each compiled module printed whole (with its meta), and each of its
    programs as a module of its own."""
    import kiln
    from kiln.ir.printer import print_module, print_program

    out = []
    for kw in configs if configs is not None else [{"draft": "ngram"}, {"pipeline": "int8-kv"}]:
        module = kiln.compile(preset, **kw).module
        out.append((print_module(module, with_meta=True), module.weights))
        for p in module.programs.values():
            out.append(('"builtin.module"() ({\n' + print_program(p) + "\n}) : () -> ()\n", module.weights))
    return out


class Mutator:
    """Seeded mutations of a list of texts; ``mutate()`` returns (seed index, mutant)."""

    def __init__(self, texts: list[str], rng: random.Random):
        self.texts = texts
        self.rng = rng
        self.op_names = sorted({m for t in texts for m in re.findall(r'"(kiln\.[a-z_0-9]+)"', t)})
        self.attr_values = sorted({m for t in texts for m in re.findall(r"= ([^,{}]+?)[,}]", t)})[:400]
        self.kinds = [self.delete, self.duplicate, self.swap, self.number, self.dim, self.nesting, self.truncate,
                      self.splice, self.char, self.op_name, self.attr_value, self.token_delete, self.token_dup]

    def mutate(self) -> tuple[int, str]:
        i = self.rng.randrange(len(self.texts))
        text = self.texts[i]
        for _ in range(self.rng.choice((1, 1, 1, 2, 3))):
            text = self.rng.choice(self.kinds)(text)
        return i, text

    # -- helpers ------------------------------------------------------------
    def span(self, text: str) -> tuple[int, int]:
        a = self.rng.randrange(len(text) + 1)
        return a, min(len(text), a + self.rng.choice((1, 2, 4, 16, 64, 256)))

    def tokens(self, text: str) -> list[re.Match]:
        a = self.rng.randrange(len(text) + 1)
        return list(_TOKEN.finditer(text, max(0, a - 2000), a + 2000)) or [re.match("", "")]

    # -- mutations ----------------------------------------------------------
    def delete(self, text: str) -> str:
        a, b = self.span(text)
        return text[:a] + text[b:]

    def duplicate(self, text: str) -> str:
        a, b = self.span(text)
        return text[:b] + text[a:b] + text[b:]

    def swap(self, text: str) -> str:
        (a, b), (c, d) = sorted([self.span(text), self.span(text)])
        if c < b:
            return text
        return text[:a] + text[c:d] + text[b:c] + text[a:b] + text[d:]

    def truncate(self, text: str) -> str:
        return text[:self.rng.randrange(len(text) + 1)]

    def splice(self, text: str) -> str:
        other = self.rng.choice(self.texts)
        a, b = self.span(other)
        c, d = self.span(text)
        return text[:c] + other[a:b] + (text[c:] if self.rng.random() < 0.5 else text[d:])

    def char(self, text: str) -> str:
        a = self.rng.randrange(len(text) + 1)
        ch = self.rng.choice('"\\%#^{}[]()<>,=:?x-.0123456789 \n\t\x00\u0663\u00b2\ud800\u00e9\U0001f600')
        return text[:a] + ch + text[a + self.rng.randrange(2):]

    def _replace_token(self, text: str, pred, new) -> str:
        toks = [m for m in self.tokens(text) if pred(m.group())]
        if not toks:
            return text
        m = self.rng.choice(toks)
        return text[:m.start()] + new(m.group()) + text[m.end():]

    def number(self, text: str) -> str:
        return self._replace_token(text, _NUMBER.match, lambda _: self.rng.choice(NUMBERS))

    def token_delete(self, text: str) -> str:
        return self._replace_token(text, lambda t: not t.isspace(), lambda _: "")

    def token_dup(self, text: str) -> str:
        return self._replace_token(text, lambda t: not t.isspace(), lambda t: t * self.rng.choice((2, 3, 50)))

    def op_name(self, text: str) -> str:
        return self._replace_token(text, lambda t: t.startswith('"kiln.'),
                                   lambda _: '"' + self.rng.choice(self.op_names + ["kiln.nope", ""]) + '"')

    def attr_value(self, text: str) -> str:
        values = self.attr_values + ["unit", "[]", "{}", '"x"', "1.5", "true", '{sym = "B"}', "{operand = 9}",
                                     "[1, [2, [3]]]", "-1", "i64", '{sym = "2**99999"}']
        ms = [m for m in re.finditer(r"= ([^,{}]+?)[,}]", text)]
        if not ms:
            return text
        m = self.rng.choice(ms)
        return text[:m.start(1)] + self.rng.choice(values) + text[m.end(1):]

    def dim(self, text: str) -> str:
        ms = list(_DIM_STRING.finditer(text))
        if not ms or self.rng.random() < 0.2:
            return self._replace_token(text, lambda t: t.startswith('"'), lambda _: '"' + self.rng.choice(DIMS) + '"')
        m = self.rng.choice(ms)
        names = m.group(1)[1:-1].split(",")
        names[self.rng.randrange(len(names))] = self.rng.choice(DIMS)
        return text[:m.start(1)] + '"' + ",".join(names) + '"' + text[m.end(1):]

    def nesting(self, text: str) -> str:
        n = self.rng.choice(NESTING)
        opener, closer = self.rng.choice([("[", "]"), ("{a = ", "}"), ("[{a = ", "}]"), ("(", ")"), ("{", "}")])
        body = opener * n + ("1" if opener.endswith("[") else "unit") + closer * n * self.rng.choice((1, 1, 0))
        ms = [m for m in re.finditer(r"\{[a-z]", text)]
        if ms and self.rng.random() < 0.8:  # an attribute value
            m = self.rng.choice(ms)
            return text[:m.start() + 1] + "z = " + body + ", " + text[m.start() + 1:]
        a = self.rng.randrange(len(text) + 1)
        return text[:a] + body + text[a:]


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    signal.setitimer(signal.ITIMER_PROF, 0.05)  # again soon, should this one be swallowed (a GC callback)
    raise _Timeout()


@dataclass
class Outcome:
    kind: str  # ok, parse_error, ir_error, kiln_error, escape, hang
    detail: str
    seconds: float  # CPU time
    wall: float


def run_case(text: str, weights: dict | None, timeout: float = 2.0) -> Outcome:
    """Parse ``text`` and verify each program, allowed ``timeout`` seconds of CPU time (a SIGPROF timer, so
    main thread only). CPU time rather than wall time: on a loaded shared machine a quick case may wait
    seconds for a core, and that is not a hang."""
    from kiln.errors import KilnError
    from kiln.ir.core import IRError
    from kiln.ir.parser import ParseError, parse_module
    from kiln.ir.verifier import verify_program

    old = signal.signal(signal.SIGPROF, _alarm)
    signal.setitimer(signal.ITIMER_PROF, timeout)
    c0, t0 = time.process_time(), time.perf_counter()
    try:
        try:
            module = parse_module(text)
            for p in module.programs.values():
                verify_program(p, weights)
            kind, detail = "ok", ""
        except ParseError as e:
            kind, detail = "parse_error", str(e)
        except IRError as e:
            kind, detail = "ir_error", str(e)
        except KilnError as e:
            kind, detail = "kiln_error", str(e)
        except _Timeout:
            kind, detail = "hang", "".join(traceback.format_exc(limit=-8))
        except Exception:  # noqa: BLE001 - an escape is what this looks for
            kind, detail = "escape", traceback.format_exc()
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
    except _Timeout:  # the timer fired just as the case finished
        kind, detail = "hang", "timed out while finishing"
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
        signal.signal(signal.SIGPROF, old)
    cpu, wall = time.process_time() - c0, time.perf_counter() - t0
    if kind not in ("hang", "escape") and cpu > timeout:
        kind, detail = "hang", f"took {cpu:.2f} s of CPU time"
    return Outcome(kind, detail, cpu, wall)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", "--count", type=int, default=100_000, help="mutants to run (default 100000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=2.0, help="CPU seconds per case (default 2)")
    ap.add_argument("--out", default="fuzz_ir_failures", help="directory for escaping and hanging mutants")
    ap.add_argument("--preset", default="llama-tiny")
    ap.add_argument("--configs", default="draft=ngram;pipeline=int8-kv;pipeline=int8;draft=self",
                    help="';'-separated compile settings, each 'key=value[,key=value]'")
    ap.add_argument("--no-weights", action="store_true", help="never verify against the weights")
    ap.add_argument("--replay", metavar="FILE", help="run one saved mutant and print its outcome")
    args = ap.parse_args(argv)

    if args.replay:
        with open(args.replay, encoding="utf-8", errors="surrogatepass") as f:
            o = run_case(f.read(), None, args.timeout)
        print(f"{o.kind} in {o.seconds:.3f} s CPU ({o.wall:.3f} s wall)\n{o.detail}")
        return 0 if o.kind not in ("escape", "hang") else 1

    configs = [dict(kv.split("=", 1) for kv in c.split(",")) for c in args.configs.split(";") if c]
    t0 = time.time()
    seeds = seed_dumps(args.preset, configs)
    print(f"{len(seeds)} seed texts from {len(configs)} compiles in {time.time() - t0:.1f} s", flush=True)
    rng = random.Random(args.seed)
    mutator = Mutator([t for t, _ in seeds], rng)
    counts: collections.Counter[str] = collections.Counter()
    slowest, slowest_wall, start, last = 0.0, 0.0, time.time(), time.time()
    os.makedirs(args.out, exist_ok=True)
    for n in range(1, args.count + 1):
        i, text = mutator.mutate()
        weights = None if args.no_weights or rng.random() < 0.3 else seeds[i][1]
        o = run_case(text, weights, args.timeout)
        counts[o.kind] += 1
        slowest, slowest_wall = max(slowest, o.seconds), max(slowest_wall, o.wall)
        if o.kind in ("escape", "hang"):
            path = os.path.join(args.out, f"{o.kind}-{args.seed}-{n}.mlir")
            with open(path, "w", encoding="utf-8", errors="surrogatepass") as f:
                f.write(text)
            last_line = o.detail.strip().splitlines()[-1] if o.detail.strip() else ""
            print(f"  case {n}: {o.kind} ({o.seconds:.2f} s CPU, {o.wall:.2f} s wall, weights={weights is not None}) saved to {path}: "
                  f"{last_line[:200]}", flush=True)
        if time.time() - last > 30 or n == args.count:
            last = time.time()
            rate = n / (last - start)
            print(f"{n}/{args.count} ({rate:.0f}/s) " + " ".join(f"{k}={v}" for k, v in sorted(counts.items()))
                  + f" slowest={slowest:.2f}s CPU/{slowest_wall:.2f}s wall", flush=True)
    elapsed = time.time() - start
    print(f"done: {args.count} mutants in {elapsed:.0f} s (seed {args.seed}, timeout {args.timeout} s); "
          + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f"; slowest case {slowest:.2f} s CPU, {slowest_wall:.2f} s wall")
    return 1 if counts["escape"] or counts["hang"] else 0


if __name__ == "__main__":
    sys.exit(main())
