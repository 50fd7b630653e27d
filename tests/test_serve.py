"""``kiln serve`` over real HTTP on loopback: the official ``openai`` client (plain and streaming),
raw requests for every kind of bad input, API keys, the queue limit, a load test with disconnecting
clients, graceful shutdown and the command line.

Every completed greedy response must equal what the offline runtime (``kiln run``'s code path)
generates for the same prompt; the server must answer no 5xx and end with every cache block free.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import torch
from openai import OpenAI

import kiln
from kiln.serve.app import MAX_BODY_BYTES, Server, ServerThread

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "examples" / "models" / "kiln-code-target"
PROMPTS = ["def fibonacci(n):\n", "import os\nimport sys\n\n", "class Stack:\n    def __init__(self):\n",
           "# parse the arguments\nparser = argparse.ArgumentParser(", "for i in range(10):\n    print(",
           "x = [1, 2, 3]\ny = ", "def read_file(path):\n    with open(path) as f:\n        return ",
           "import json\n\ndef load(path):\n    \"\"\"Load a JSON file.\"\"\"\n"]
TEMPLATE = ("{% for m in messages %}# {{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
            "{% if add_generation_prompt %}# assistant:{% endif %}")
_STATE: dict = {}


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    path = tmp_path_factory.mktemp("serve") / "code.kiln"
    kiln.compile(str(TARGET), pipeline="paged").save(path)
    return path


@pytest.fixture(scope="module")
def offline(art):
    rt = kiln.load(art).runtime()
    cache: dict = {}

    def greedy(prompt: str, max_tokens: int) -> tuple[str, list[int]]:
        key = (prompt, max_tokens)
        if key not in cache:
            ids = rt.encode(prompt)
            new = rt.generate([ids], max_new_tokens=max_tokens)[0][len(ids):]
            cache[key] = (rt.decode(new), new)
        return cache[key]

    return greedy


def _server(art, **kw) -> Server:
    rt = kiln.load(art).runtime(cache_sequences=kw.pop("cache_sequences", 16), cache_tokens=kw.pop("cache_tokens", None))
    return Server(rt, "code", **kw)


@pytest.fixture(scope="module")
def served(art):
    srv = _server(art, chat_template=TEMPLATE)
    with ServerThread(srv) as url:
        yield srv, url


def _client(url: str, key: str = "none") -> OpenAI:
    return OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=60)


# -- text of a completion (no server) ----------------------------------------------------------------

def _bytes_stream(stops, pieces: list[bytes]):
    """A TextStream over a byte-level 'tokenizer': token i is pieces[i]."""
    from kiln.serve.protocol import TextStream

    return TextStream(lambda ids: b"".join(pieces[i] for i in ids).decode("utf-8", errors="replace"), stops)


def _feed(ts, n: int) -> tuple[str, bool]:
    out = "".join(ts.push([i]) for i in range(n))
    if not ts.stopped:
        out += ts.finish()
    return out, ts.stopped


@pytest.mark.parametrize("stops,pieces,want,stopped", [
    (["END"], [b"ab", b"cE", b"N", b"Dxy"], "abc", True),  # a stop split across three tokens
    (["END"], [b"ab", b"cE", b"N", b"x"], "abcENx", False),  # a held-back prefix that does not complete
    (["XY", "cd"], [b"ab", b"c", b"dXY"], "ab", True),  # the earliest of several stops wins
    (["\n\n"], [b"a\n", b"\n", b"b"], "a", True),
    ([], ["é".encode()[:1], "é".encode()[1:], b"!"], "é!", False),  # a character split across tokens
    (["é"], [b"x", "é".encode()[:1], "é".encode()[1:]], "x", True),
    (["long stop string"], [b"a long stop", b" string", b"z"], "a ", True),
])
def test_text_stream(stops, pieces, want, stopped):
    ts = _bytes_stream(stops, pieces)
    sent = []
    for i in range(len(pieces)):
        d = ts.push([i])
        assert "\ufffd" not in d  # never half a character
        assert not any(s in "".join(sent) + d for s in stops)  # never any part of a stop string that occurs
        sent.append(d)
        if ts.stopped:
            break
    text = "".join(sent) + ("" if ts.stopped else ts.finish())
    assert (text, ts.stopped) == (want, stopped)


def test_text_stream_cost_is_bounded():
    """The longest stop strings the API takes, against a long completion: each token's work stays
    small (it once grew with the square of the text)."""
    stops = ["q" * 255 + "!", "w" * 256, "e" * 200, "r" * 256]
    pieces = [b"q" * 7 + b"w" * 5 + b"e" * 3] * 2000
    ts = _bytes_stream(stops, pieces)
    t0 = time.perf_counter()
    for i in range(len(pieces)):
        ts.push([i])
    assert time.perf_counter() - t0 < 10  # ~2 s here; quadratic hold-back checks took minutes
    assert ts.sent and not ts.stopped


def test_chat_templates_render_like_transformers_and_refuse_abuse():
    from kiln.errors import KilnError
    from kiln.serve.chat import ChatTemplate

    hf_like = ("{{ bos_token }}{% if tools %}TOOLS{% endif %}{% for m in messages %}"
               "{% if loop.index > 2 %}{% break %}{% endif %}<{{ m.role }}>{{ m.content }}{% endfor %}"
               "{% if add_generation_prompt %}<assistant>{% endif %}")
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}, {"role": "user", "content": "x"}]
    assert ChatTemplate(hf_like).render(msgs) == "<system>s<user>u<assistant>"
    for bad, why in (("{{ 'a' * 50000000 }}", "too large"), ("{{ 1 / 0 }}", "ZeroDivisionError"),
                     ("{{ 7 ** 99999 }}", "power"), ("{{ raise_exception('no system role') }}", "no system role"),
                     ("{% for i in range(50) %}{{ 'x' * 60000 }}{% endfor %}", "too long")):
        with pytest.raises(KilnError, match=why):
            ChatTemplate(bad).render(msgs)
    with pytest.raises(KilnError, match="parse"):
        ChatTemplate("{% for %}")


# -- the openai client ---------------------------------------------------------------------------

def test_openai_client_completions_equal_offline_generation(served, offline):
    srv, url = served
    c = _client(url)
    assert [m.id for m in c.models.list()] == ["code"]
    for prompt in PROMPTS[:3]:
        want, ids = offline(prompt, 24)
        r = c.completions.create(model="code", prompt=prompt, max_tokens=24, temperature=0)
        assert r.choices[0].text == want
        assert r.choices[0].finish_reason == ("length" if len(ids) == 24 else "stop")
        assert r.usage.completion_tokens == len(ids)
        assert r.usage.prompt_tokens == len(srv.rt.encode(prompt))
        chunks = list(c.completions.create(model="code", prompt=prompt, max_tokens=24, temperature=0, stream=True,
                                           stream_options={"include_usage": True}))
        assert "".join(ch.choices[0].text for ch in chunks if ch.choices) == want
        assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == r.choices[0].finish_reason
        assert chunks[-1].usage.completion_tokens == len(ids) and not chunks[-1].choices


def test_token_id_prompts_and_stop_strings(served, offline):
    srv, url = served
    c = _client(url)
    want, _ = offline(PROMPTS[0], 40)
    r = c.completions.create(model="code", prompt=srv.rt.encode(PROMPTS[0]), max_tokens=40, temperature=0)
    assert r.choices[0].text == want
    stop = want[10:13]  # a stop string taken from the middle of the greedy text
    cut = want[:want.index(stop)]
    for stream in (False, True):
        out = c.completions.create(model="code", prompt=PROMPTS[0], max_tokens=40, temperature=0, stop=[stop],
                                   stream=stream)
        if stream:
            chunks = list(out)
            text, finish = "".join(ch.choices[0].text for ch in chunks), chunks[-1].choices[0].finish_reason
        else:
            text, finish = out.choices[0].text, out.choices[0].finish_reason
        assert text == cut and finish == "stop"
    # no tokens leak out of a cancelled sequence: the cache is empty once it is done
    _wait_idle(srv)


def test_seeded_sampling_is_reproducible_over_http(served):
    _, url = served
    c = _client(url)
    kw = {"model": "code", "prompt": PROMPTS[4], "max_tokens": 20, "temperature": 0.8, "top_p": 0.9}
    a = c.completions.create(seed=7, **kw).choices[0].text
    assert c.completions.create(seed=7, **kw).choices[0].text == a
    assert len({c.completions.create(seed=s, **kw).choices[0].text for s in (1, 2, 3)}) > 1


def test_chat_completions_use_the_template(served, offline):
    url = served[1]
    c = _client(url)
    msgs = [{"role": "system", "content": "You write Python."}, {"role": "user", "content": "sort a list"}]
    rendered = "# system: You write Python.\n# user: sort a list\n# assistant:"
    want, _ = offline(rendered, 16)
    r = c.chat.completions.create(model="code", messages=msgs, max_tokens=16, temperature=0)
    assert r.choices[0].message.role == "assistant" and r.choices[0].message.content == want
    chunks = list(c.chat.completions.create(model="code", messages=msgs, max_tokens=16, temperature=0, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks) == want
    assert chunks[-1].choices[0].finish_reason in ("length", "stop")


def test_logprobs(served, offline):
    srv, url = served
    c = _client(url)
    want, ids = offline(PROMPTS[2], 12)
    r = c.completions.create(model="code", prompt=PROMPTS[2], max_tokens=12, temperature=0, logprobs=2)
    lp = r.choices[0].logprobs
    assert r.choices[0].text == want and len(lp.tokens) == len(ids) == r.usage.completion_tokens
    if want.isascii():  # (a character split across tokens would show as U+FFFD in each token's text)
        assert "".join(lp.tokens) == want
    prompt_ids = srv.rt.encode(PROMPTS[2])
    ref = torch.log_softmax(srv.rt.logits([prompt_ids + ids])[0].float(), -1)  # the model's distribution
    for i, (tok, got) in enumerate(zip(ids, lp.token_logprobs)):
        assert abs(got - float(ref[len(prompt_ids) - 1 + i, tok])) < 1e-3
        top = lp.top_logprobs[i]
        assert len(top) == 2 and max(top.values()) == pytest.approx(got, abs=1e-6)  # greedy: the likeliest
    assert lp.text_offset[0] == 0 and lp.text_offset == sorted(lp.text_offset)
    chunks = list(c.completions.create(model="code", prompt=PROMPTS[2], max_tokens=12, temperature=0, logprobs=0,
                                       stream=True))
    streamed = [x for ch in chunks if ch.choices and ch.choices[0].logprobs for x in ch.choices[0].logprobs.token_logprobs]
    assert streamed == pytest.approx(lp.token_logprobs, abs=1e-6)
    msgs = [{"role": "user", "content": "sort a list"}]
    chat = c.chat.completions.create(model="code", messages=msgs, max_tokens=5, temperature=0, logprobs=True,
                                     top_logprobs=3)
    content = chat.choices[0].logprobs.content
    assert len(content) == chat.usage.completion_tokens and all(len(x.top_logprobs) == 3 for x in content)
    assert all(x.logprob <= 0 and x.bytes == list(x.token.encode()) for x in content)
    r = httpx.post(url + "/v1/chat/completions", json={"messages": msgs, "top_logprobs": 2})
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_logprobs"


# -- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize("body,status,param", [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (b'{"prompt": 5}', 400, "prompt"),
    (b'{"prompt": ""}', 400, "prompt"),
    (b'{"prompt": ["a", "b"]}', 400, "prompt"),
    (b'{"prompt": [1, 99999999]}', 400, "prompt"),
    (b'{"prompt": "x", "max_tokens": "10"}', 400, "max_tokens"),
    (b'{"prompt": "x", "max_tokens": 0}', 400, "max_tokens"),
    (b'{"prompt": "x", "max_tokens": true}', 400, "max_tokens"),
    (b'{"prompt": "x", "temperature": -1}', 400, "temperature"),
    (b'{"prompt": "x", "temperature": NaN}', 400, "temperature"),
    (b'{"prompt": "x", "top_p": 0}', 400, "top_p"),
    (b'{"prompt": "x", "stop": ["a", "b", "c", "d", "e"]}', 400, "stop"),
    (b'{"prompt": "x", "stop": [1]}', 400, "stop"),
    (b'{"prompt": "x", "n": 2}', 400, "n"),
    (b'{"prompt": "x", "logprobs": 6}', 400, "logprobs"),
    (b'{"prompt": "x", "echo": true}', 400, "echo"),
    (b'{"prompt": "x", "stream": "yes"}', 400, "stream"),
    (b'{"prompt": "x", "seed": -1}', 400, "seed"),
    (b'{"prompt": "x", "model": "gpt-4"}', 404, "model"),
    (b'{"prompt": "x", "max_tokens": 600}', 400, None),
    (b'{"prompt": "' + b"a " * 1000 + b'", "max_tokens": 10}', 400, None),
    (b'[' * 100000 + b']' * 100000, 400, None),
])
def test_bad_requests_get_openai_errors(served, body, status, param):
    url = served[1]
    r = httpx.post(url + "/v1/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"] and err["type"] and err["param"] == param


def test_huge_bodies_routes_and_methods(served):
    url = served[1]
    big = b'{"prompt": "' + b"x" * (MAX_BODY_BYTES + 10) + b'"}'
    assert httpx.post(url + "/v1/completions", content=big).status_code == 413

    def chunked():  # no Content-Length: the limit holds while reading
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536
    assert httpx.post(url + "/v1/completions", content=chunked()).status_code == 413
    r = httpx.get(url + "/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert httpx.get(url + "/v1/completions").status_code == 405
    assert httpx.post(url + "/v1/chat/completions", json={"messages": []}).status_code == 400
    assert httpx.post(url + "/v1/chat/completions", json={"messages": [{"role": "wizard", "content": "x"}]}
                      ).status_code == 400
    h = httpx.get(url + "/health").json()
    assert h["status"] == "ok"


def test_chat_is_refused_without_a_template(art):
    srv = _server(art, cache_sequences=2)
    assert srv.chat is None  # the bundled model's tokenizer_config.json has no chat template
    with ServerThread(srv) as url:
        r = httpx.post(url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_chat_template"


def test_a_hostile_template_cannot_reach_python(art):
    srv = _server(art, cache_sequences=2, chat_template="{{ messages.__class__.__mro__[1].__subclasses__() }}")
    with ServerThread(srv) as url:
        r = httpx.post(url + "/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400 and "template" in r.json()["error"]["message"]


def test_api_key(art):
    srv = _server(art, cache_sequences=2, api_key="s3cret")
    with ServerThread(srv) as url:
        body = {"prompt": "x = ", "max_tokens": 2}
        for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "Basic s3cret"}):
            r = httpx.post(url + "/v1/completions", json=body, headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(url + "/v1/models").status_code == 401
        assert httpx.get(url + "/metrics").status_code == 401
        assert httpx.get(url + "/health").status_code == 200
        r = _client(url, "s3cret").completions.create(model="code", prompt="x = ", max_tokens=2)
        assert r.usage.completion_tokens >= 1


def test_a_full_queue_answers_429_with_retry_after(art):
    srv = _server(art, cache_sequences=2, max_batch=1, max_queue=1)
    with ServerThread(srv) as url:
        body = {"prompt": PROMPTS[0], "max_tokens": 300, "temperature": 0, "ignore_eos": True, "stream": True}
        with httpx.Client(timeout=60) as cl, cl.stream("POST", url + "/v1/completions", json=body) as running:
            lines = running.iter_lines()  # (dropping this iterator would close the stream)
            next(lines)  # the first sequence runs ...
            waiting = threading.Thread(target=lambda: httpx.post(url + "/v1/completions", timeout=60, json={
                "prompt": "x", "max_tokens": 2}))
            waiting.start()  # ... a second waits ...
            deadline = time.monotonic() + 10
            while srv.scheduler.queue_depth < 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            r = httpx.post(url + "/v1/completions", json={"prompt": "x", "max_tokens": 2})  # ... a third is turned away
            assert r.status_code == 429 and r.headers["retry-after"].isdigit()
            assert r.json()["error"]["type"] == "rate_limit_error"
        waiting.join()
        _wait_idle(srv)
        assert 'kiln_rejected_requests_total{status="429"} 1.0' in httpx.get(url + "/metrics").text


def test_a_client_that_hangs_up_on_a_plain_request_cancels_it(served):
    srv, url = served
    before = srv.metrics.requests.labels(outcome="cancelled")._value.get()
    made = srv.metrics.generated._value.get()
    with pytest.raises(httpx.ReadTimeout):  # the client gives up after 0.5 s and closes the connection
        httpx.post(url + "/v1/completions", timeout=0.5, json={
            "prompt": PROMPTS[0], "max_tokens": 400, "temperature": 0, "ignore_eos": True})
    _wait_idle(srv)
    assert srv.metrics.requests.labels(outcome="cancelled")._value.get() == before + 1
    assert srv.metrics.generated._value.get() - made < 400  # stopped well before its 400 tokens


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_an_engine_crash_answers_every_request(art):
    srv = _server(art, cache_sequences=2)

    def broken():
        raise RuntimeError("scheduler bug")

    srv.scheduler._admit = broken
    with ServerThread(srv) as url:
        r = httpx.post(url + "/v1/completions", json={"prompt": "x = ", "max_tokens": 4}, timeout=30)
        assert r.status_code == 500 and "scheduler bug" in r.json()["error"]["message"]
        h = httpx.get(url + "/health")
        assert h.status_code == 503 and "scheduler bug" in h.json()["error"]
        assert httpx.post(url + "/v1/completions", json={"prompt": "x", "max_tokens": 2}).status_code == 503


# -- load ----------------------------------------------------------------------------------------

def _wait_idle(srv: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not (srv.scheduler.idle() and srv.scheduler.blocks_used == 0):
        assert time.monotonic() < deadline, srv.scheduler.stats()
        time.sleep(0.02)


def _one_client(url: str, i: int, offline) -> tuple[str, int]:
    r = random.Random(i)
    prompt = PROMPTS[i % len(PROMPTS)] * r.randint(1, 3)
    n = r.randint(4, 12)
    body = {"model": "code", "prompt": prompt, "max_tokens": n, "temperature": 0}
    with httpx.Client(timeout=120) as cl:
        if i % 4 == 1:  # disconnects midway through a stream
            with cl.stream("POST", url + "/v1/completions", json={**body, "max_tokens": 100, "stream": True}) as s:
                for k, _ in enumerate(s.iter_lines()):
                    if k >= 2:
                        break
            return "disconnected", s.status_code
        if i % 4 == 2:
            text = ""
            with cl.stream("POST", url + "/v1/completions", json={**body, "stream": True}) as s:
                for line in s.iter_lines():
                    if line.startswith("data: {"):
                        text += json.loads(line[6:])["choices"][0]["text"]
            status = s.status_code
        else:
            resp = cl.post(url + "/v1/completions", json=body)
            status, text = resp.status_code, resp.json()["choices"][0]["text"]
    assert text == offline(prompt, n)[0], (i, prompt, n)
    return "ok", status


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def test_load_64_clients_with_disconnects(art, offline):
    srv = _server(art, max_batch=16, max_queue=64)
    rss = []
    with ServerThread(srv) as url:
        for rnd in range(3):
            with ThreadPoolExecutor(64) as pool:
                results = list(pool.map(lambda i: _one_client(url, i, offline), range(64)))
            assert all(status < 500 for _, status in results)
            assert sum(kind == "ok" for kind, _ in results) == 48
            _wait_idle(srv)
            rss.append(_rss_mb())
        metrics = httpx.get(url + "/metrics").text
    assert srv.scheduler.blocks_used == 0 and not srv.scheduler.running
    assert rss[2] - rss[1] < 40, rss  # no growth from round to round once warm
    assert re.search(r'kiln_requests_total\{outcome="cancelled"\} (\d+)', metrics).group(1) == "48"
    assert re.search(r"^kiln_cache_blocks_used (\S+)$", metrics, re.MULTILINE).group(1) == "0.0"
    assert "kiln_time_to_first_token_seconds_bucket" in metrics and "kiln_inter_token_latency_seconds_count" in metrics


def test_graceful_shutdown_finishes_in_flight_streams(art, offline):
    srv = _server(art, cache_sequences=2)
    st = ServerThread(srv, shutdown_timeout=30)
    got: list[str] = []
    with st as url:
        done = threading.Event()

        def reader():
            with httpx.stream("POST", url + "/v1/completions", timeout=60, json={
                    "prompt": PROMPTS[1], "max_tokens": 64, "temperature": 0, "stream": True}) as s:
                for line in s.iter_lines():
                    got.append(line)
                    done.set()

        t = threading.Thread(target=reader)
        t.start()
        done.wait(30)
    t.join(30)
    got = [x for x in got if x]  # (blank lines separate events)
    text = "".join(json.loads(x[6:])["choices"][0]["text"] for x in got if x.startswith("data: {"))
    assert got[-1] == "data: [DONE]" and text == offline(PROMPTS[1], 64)[0]
    assert not srv.thread.is_alive() and srv.scheduler.blocks_used == 0


# -- the command line --------------------------------------------------------------------------------

def test_kiln_serve_command(art, tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kiln_cmd = [sys.executable, "-m", "kiln"]
    bad = [subprocess.Popen(kiln_cmd + ["serve", *args], stderr=subprocess.PIPE, text=True, env=env)  # at once
           for args in ([str(tmp_path / "missing.kiln")], [str(art), "--max-batch", "0", "--port", "0"])]
    (missing, missing_err), (setting, setting_err) = [(p.wait(60), p.stderr.read()) for p in bad]
    assert missing == 1 and missing_err.count("\n") == 1 and "kiln: error:" in missing_err
    assert setting == 1 and "max-batch" in setting_err and setting_err.count("\n") == 1
    p = subprocess.Popen(kiln_cmd + ["serve", str(art), "--port", "0", "--log-level", "warning", "--max-batch", "2"],
                         stderr=subprocess.PIPE, text=True, env=env)
    try:
        banner = p.stderr.readline()
        url = re.search(r"on (http://\S+)", banner).group(1)
        busy = subprocess.run(kiln_cmd + ["serve", str(art), "--port", url.rsplit(":", 1)[1]], check=False, capture_output=True,
                              text=True, env=env)
        assert busy.returncode == 1 and "cannot listen" in busy.stderr and busy.stderr.count("\n") == 1
        r = _client(url).completions.create(model="code", prompt="def f(", max_tokens=3, temperature=0)
        assert r.usage.completion_tokens >= 1
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
