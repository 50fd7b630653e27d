"""CPU lowering of the quantized ops (kiln/ir/ops_quant.py): the native kernels where they apply.

A CPU runtime holds its int8 / int4 weights in panels (``native.pack_linear_weights``), and
``kiln.qlinear`` runs the panel kernels of kiln/codegen/native.py for any number of rows: they read
the codes as stored (1 or 1/2 byte per weight) and never materialise a float copy. A weight that is
not repacked (``KILN_PACK=0``, or too small) takes the per-row kernels for decode-sized inputs (at
most ``native.MAX_ROWS`` rows) and, for larger ones, a native dequantization into a float32 temporary
and torch's matrix-matrix product; without a C compiler the reference semantics (torch
dequantization, then ``F.linear``) run. The other quantized ops run their references (the KV-cache
ones dequantize only the positions a sequence reads).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kiln.codegen import native
from kiln.ir.ops_quant import qlinear_ref, split_quant_operands


def qlinear(ctx, x, *ops, format, group_size, symmetric):
    q, s, off, rest = split_quant_operands(list(ops), symmetric, format)
    b = rest[0] if rest else None
    if isinstance(q, native.PackedWeight):  # a runtime holds it in panels: its one route
        y = native.qlinear_packed(x, q, s, b)
        if y is not None:
            return y
        q = q.unpack()
        ops = (q, *ops[1:])
    else:  # a weight also read by another op (a tied embedding): panels kept beside it
        p = native.quant_panels(q, s, off, {"format": format, "group_size": group_size})
        y = native.qlinear_packed(x, p, s, b) if p is not None else None
        if y is not None:
            return y
    y = None
    if format == "int8":
        y = native.qlinear_int8(x, q, s, b)
    elif format == "int4":
        y = native.qlinear_int4(x, q, s, off, group_size, b)
    if y is not None:
        return y
    w = native.dequantize(q, s, off, format, group_size, scratch=True)  # prefill-sized: a float weight for the GEMM
    if w is not None and x.dtype == torch.float32:
        return F.linear(x, w, b)
    return qlinear_ref(ctx, x, *ops, format=format, group_size=group_size, symmetric=symmetric)


KERNELS = {"kiln.qlinear": qlinear}
