"""Chat templates: the Jinja template a model's ``tokenizer_config.json`` carries (or one given with
``kiln serve --chat-template FILE``), rendered in Jinja's immutable sandbox.

A template comes from an artifact, which may be hostile: the sandbox refuses attribute access to
Python internals and mutation of the values passed in, so rendering can only produce text.
"""

from __future__ import annotations

import json

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from kiln.errors import KilnError

MAX_TEMPLATE_CHARS = 1 << 16
MAX_RENDERED_CHARS = 1 << 21


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
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.StrictUndefined)
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
        try:
            text = self.template.render(messages=messages, add_generation_prompt=True, bos_token=self.bos,
                                        eos_token=self.eos)
        except KilnError:
            raise
        except jinja2.TemplateError as e:
            raise KilnError(f"the chat template failed on these messages: {e}") from None
        if len(text) > MAX_RENDERED_CHARS:
            raise KilnError("the rendered chat prompt is too long")
        if not text:
            raise KilnError("the chat template rendered an empty prompt")
        return text
