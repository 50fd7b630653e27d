"""``kiln serve``: an artifact behind an OpenAI-compatible HTTP API, with continuous batching.

- ``kiln.serve.app``: the Starlette app and endpoints, the engine thread, uvicorn glue;
- ``kiln.serve.protocol``: OpenAI's request and response shapes, errors, stop strings;
- ``kiln.serve.chat``: chat templates (sandboxed Jinja);
- ``kiln.serve.metrics``: Prometheus metrics.

The scheduler itself (what runs each iteration) is ``kiln.runtime.scheduler``. Needs the ``serve``
extra: ``pip install 'kiln[serve]'``.
"""
