"""CUDA-graph capture of a program step (the decode step): one graph per input shape, replayed.

UNVERIFIED: written on a machine without a GPU; no test has captured or replayed a graph. Opt in with
``Runtime(..., cuda_graphs=True)`` on a CUDA device; docs/triton.md lists what to check first.

``CudaGraphProgram(prog)`` wraps a ``TritonProgram``. The first call with a new key (the shapes of all
inputs, and the addresses of the KV-cache tensors, which the graph bakes in) copies the inputs into
static buffers, runs the step once on a side stream (Triton compiles its kernels there, outside the
capture), captures a second run into a ``torch.cuda.CUDAGraph`` and keeps the static outputs. Every
later call with that key copies its inputs into the buffers and replays. A decode step is capturable
because nothing in it synchronises with the host: the cache-attention split count depends only on
the block table's shape, and every other op is a device-side torch op. The warm-up and the capture
write the step's keys and values into the cache at the step's positions, which the replay then
writes again with the same values.
"""

from __future__ import annotations

from typing import Any

import torch

from kiln.errors import KilnError

CACHE_HINTS = ("k_cache", "v_cache", "k_scale", "v_scale")


class CudaGraphProgram:
    def __init__(self, prog, max_graphs: int = 16):
        if not str(prog.device).startswith("cuda") or not torch.cuda.is_available():
            raise KilnError("CUDA graphs need the cuda target on a CUDA device")
        self.prog = prog
        self.program = prog.program
        self.max_graphs = max_graphs
        self.graphs: dict[tuple, tuple[Any, list[torch.Tensor], list[torch.Tensor]]] = {}
        self.cache_args = [i for i, a in enumerate(prog.program.args) if a.hint in CACHE_HINTS]

    @property
    def launched(self) -> dict[str, int]:
        return self.prog.launched

    def _key(self, args: tuple[torch.Tensor, ...]) -> tuple:
        return (tuple(tuple(a.shape) for a in args), tuple(args[i].data_ptr() for i in self.cache_args))

    def __call__(self, *args: torch.Tensor) -> list[torch.Tensor]:
        key = self._key(args)
        if key not in self.graphs:
            if len(self.graphs) >= self.max_graphs:
                self.graphs.pop(next(iter(self.graphs)))  # the oldest shape
            static = [a if i in self.cache_args else a.to(self.prog.device).clone() for i, a in enumerate(args)]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.prog(*static)  # compiles the kernels; not capturable itself
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                outs = self.prog(*static)
            self.graphs[key] = (graph, static, outs)
        graph, static, outs = self.graphs[key]
        for i, a in enumerate(args):
            if i not in self.cache_args:
                static[i].copy_(a, non_blocking=True)
        graph.replay()
        return [o.clone() for o in outs]
