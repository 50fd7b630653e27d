"""kiln: a compiler for transformer language models.

    import kiln
    art = kiln.compile("llama-tiny")          # a preset or a Hugging Face model directory
    art.save("m.kiln"); art = kiln.load("m.kiln")
    rt = art.runtime()
    rt.logits(ids)                            # [B, T, V]
    rt.generate(ids, max_new_tokens=16)       # prompt + new ids
"""

from kiln._version import __version__
from kiln.compiler import compile
from kiln.errors import KilnError
from kiln.runtime.artifact import Artifact, load

__all__ = ["Artifact", "KilnError", "__version__", "compile", "load"]
