"""Chat templates: the Jinja template a model's ``tokenizer_config.json`` carries (or one given with
``kiln serve --chat-template FILE``), rendered in Jinja's immutable sandbox.

A template comes from an artifact, which may be hostile: the sandbox refuses attribute access to
Python internals and mutation of the values passed in, so rendering can only produce text.
"""

from __future__ import annotations

import json

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from kiln.errors import KilnError

MAX_TEMPLATE_CHARS = 1 << 16
MAX_RENDERED_CHARS = 1 << 21
MAX_PRODUCT_CHARS = 1 << 16  # the longest string or list a template may build with * (or ** as a number)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, with ``*`` and ``**`` unable to build huge values."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context, operator, left, right):
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_PRODUCT_CHARS:
                    raise KilnError("the chat template builds a value too large to render")
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise KilnError("the chat template raises a number to too high a power")
        return SandboxedEnvironment.call_binop(self, context, operator, left, right)


def _special(cfg: dict, key: str) -> str:
    v = cfg.get(key)
    if isinstance(v, dict):  # {"content": "<s>", ...}, as some tokenizer_config.json files write it
        v = v.get("content")
    return v if isinstance(v, str) else ""


class ChatTemplate:
    def __init__(self, source: str, artifact=None):
        if not isinstance(source, str) or not source.strip():
            raise KilnError("the chat template is empty")
        if len(source) > MAX_TEMPLATE_CHARS:
            raise KilnError(f"the chat template is {len(source)} characters; the limit is {MAX_TEMPLATE_CHARS}")
        cfg = self._config(artifact) if artifact is not None else {}
        self.bos, self.eos = _special(cfg, "bos_token"), _special(cfg, "eos_token")
        # as transformers renders chat templates: trim_blocks, lstrip_blocks, loop controls, lenient undefined
        env = _Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
        env.globals["raise_exception"] = self._raise
        try:
            self.template = env.from_string(source)
        except jinja2.TemplateError as e:
            raise KilnError(f"the chat template does not parse: {e}") from None

    @staticmethod
    def _config(artifact) -> dict:
        data = artifact.tokenizer_files.get("tokenizer_config.json")
        if data is None:
            return {}
        try:
            cfg = json.loads(data)
        except ValueError:
            return {}
        return cfg if isinstance(cfg, dict) else {}

    @classmethod
    def from_artifact(cls, artifact) -> str | None:
        """The artifact's template (the default one where the config names several), or None."""
        t = cls._config(artifact).get("chat_template")
        if isinstance(t, list):  # [{"name": "default", "template": "..."}, ...]
            named = {d.get("name"): d.get("template") for d in t if isinstance(d, dict)}
            t = named.get("default")
        return t if isinstance(t, str) and t.strip() else None

    @staticmethod
    def _raise(message):
        raise KilnError(f"the chat template refused the messages: {message}")

    def render(self, messages: list[dict]) -> str:
        """The prompt text for ``messages``; a KilnError for anything the template does wrong. The
        output is built piece by piece and cut off at ``MAX_RENDERED_CHARS``."""
        parts, size = [], 0
        try:
            for piece in self.template.generate(messages=messages, add_generation_prompt=True, bos_token=self.bos,
                                                eos_token=self.eos, tools=None, documents=None):
                size += len(piece)
                if size > MAX_RENDERED_CHARS:
                    raise KilnError("the rendered chat prompt is too long")
                parts.append(piece)
        except KilnError:
            raise
        except Exception as e:  # noqa: BLE001 - a template can fail in any way (jinja2's errors, ZeroDivisionError, ...)
            raise KilnError(f"the chat template failed on these messages: {type(e).__name__}: "
                            f"{str(e).splitlines()[0][:200] if str(e) else ''}") from None
        text = "".join(parts)
        if not text:
            raise KilnError("the chat template rendered an empty prompt")
        return text
