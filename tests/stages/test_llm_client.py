"""The openai backend's client: cache keys, request order and de-duplication, connection reuse across
calls (the process's client runtime), both HTTP layers, and errors surfacing as themselves."""

import pytest

from pipeline.config import AnnotatorConfig
from stages.annotate import ClipRequest, qa_schema
from stages.llm_client import AnnotatorError, OpenAIAnnotator, ResponseCache
from tests.llm_server import FakeLLM


@pytest.fixture()
def key_env(monkeypatch):
    monkeypatch.setenv("MOVID_CLIENT_KEY", "sk-client-test")


def _cfg(server, **kw):
    return AnnotatorConfig(backend="openai", base_url=server.base_url, model="m", api_key_env="MOVID_CLIENT_KEY",
                           timeout_s=5, backoff_base_s=0.01, qa_per_clip=3, **kw)  # fmt: skip


def _requests(tag, n, travel="forward"):
    return [ClipRequest(f"{tag}{i}", "train", f"{tag} clip {i}\ntravel: {travel} (1.0 m)\njumps: {i % 3}", {})
            for i in range(n)]  # fmt: skip


@pytest.mark.parametrize("messages", [
    [{"role": "system", "content": "s"}, {"role": "user", "content": "Ünïcode — prompt\nwith lines"}],
    [{"role": "user", "content": [{"type": "text", "text": "t"},
                                  {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,AAAA"}}]}],
])  # fmt: skip
def test_fast_cache_key_is_the_cache_key(messages):
    params = {"model": "m", "temperature": 0.7, "max_tokens": 800, "seed": 3, "structured_output": "json_schema"}
    fast = OpenAIAnnotator.cache_key_function("m", "motion_qa.v1", params, qa_schema(6))
    # the key caches written so far use: the sha256 of the sorted-keys JSON of all parts
    documented = ResponseCache.key(model="m", prompt_version="motion_qa.v1", params=params, messages=messages,
                                   schema=qa_schema(6))  # fmt: skip
    assert fast(messages) == documented == OpenAIAnnotator.cache_key("m", "motion_qa.v1", params, messages, qa_schema(6))
    assert fast(messages) != OpenAIAnnotator.cache_key("m", "motion_qa.v2", params, messages, qa_schema(6))


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_answers_in_order_asks_duplicates_once_and_reuses_connections(tmp_path, key_env, http_client):
    with FakeLLM() as server:
        cfg = _cfg(server, max_in_flight=4, http_client=http_client)
        reqs = _requests("a", 10)
        reqs = reqs + [reqs[2], reqs[7]]  # the same prompts again
        results = OpenAIAnnotator(cfg, "v1", tmp_path / "c1").answer_all(reqs)
        assert server.requests == 10
        for req, res in zip(reqs, results, strict=True):
            n = int(req.prompt.split("jumps: ")[1])
            assert res.error is None and res.payload["qa"][1]["count"] == n  # each answer is its own request's
        assert [r.usage["cache_hits"] for r in results] == [0] * 10 + [1, 1]
        assert sum(r.usage["requests"] for r in results) == 10
        first = server.connections
        assert 1 <= first <= 4
        # A second call, from a new annotator (as the next unit on a Ray worker), uses the open connections.
        OpenAIAnnotator(cfg, "v1", tmp_path / "c2").answer_all(_requests("b", 10))
        assert server.requests == 20 and server.connections == first


def test_an_error_inside_surfaces_as_itself(tmp_path, key_env):
    class Broken:
        async def wait(self, tokens=0):
            raise RuntimeError("limiter unreachable")

    with FakeLLM() as server:
        ann = OpenAIAnnotator(_cfg(server, max_in_flight=3), "v1", tmp_path / "c", limiter=Broken())
        with pytest.raises(RuntimeError, match="limiter unreachable"):
            ann.answer_all(_requests("e", 5))
        assert server.requests == 0


def test_unknown_http_client_is_refused(tmp_path, key_env):
    with FakeLLM() as server, pytest.raises(AnnotatorError, match="annotator.http_client"):
        OpenAIAnnotator(_cfg(server, http_client="requests"), "v1", tmp_path / "c")


def test_prefetch_stays_within_its_lead_and_workers_never_wait_for_it():
    import time

    from stages.llm_runtime import Prefetch as _Prefetch

    seen = []

    def prepare(req):
        seen.append(req)
        if req == 7:
            raise ValueError("bad request 7")
        return (req, f"k{req}", None)

    ahead = _Prefetch(list(range(100)), prepare, lead=5)
    try:
        time.sleep(0.2)
        assert max(seen) <= 5  # nothing taken yet: at most `lead` ahead
        assert ahead.take(0) == (0, "k0", None)
        with pytest.raises(ValueError, match="bad request 7"):  # the worker meets the error itself
            [ahead.take(i) for i in range(1, 8)]
        assert ahead.take(60) == (60, "k60", None)  # not reached yet: prepared on the spot
        time.sleep(0.2)
        assert 65 <= max(seen) <= 66 and 61 in ahead.ready
    finally:
        ahead.close()


# --- replies are untrusted input -----------------------------------------------------------------------------
SECRET = "sk-client-test-5e1f0a9b7c3d"


def test_redaction_removes_the_key_in_every_form_and_any_long_piece_of_it():
    import base64
    from urllib.parse import quote

    from stages.llm_reply import Redactor

    r = Redactor([SECRET, None, ""])
    header = f"Bearer {SECRET}"
    for text in (header, f"echo: {header}!", quote(header, safe=""), f"x{SECRET[3:20]}y",  # a piece cut short
                 base64.b64encode(header.encode()).decode(),  # the key inside a longer encoded header
                 base64.b64encode(f"Authorization: {header}".encode()).decode(),
                 base64.b64encode(f"a: {header}".encode()).decode()):  # fmt: skip
        red = r(text)
        assert "[REDACTED]" in red and SECRET[:12] not in red and SECRET[-12:] not in red, (text, red)
    assert r("nothing to hide") == "nothing to hide" and r("") == ""
    assert r(f"Authorization: {header}") == "Authorization: Bearer [REDACTED]"
    # the hot-path check: the key as sent, or any piece of 2 × 12 - 1 characters of it
    assert r.leaks(f"a question about {SECRET}?") and r.leaks(SECRET[1:24])
    assert not r.leaks("a question about the person?")
    quoted = r.quote("\x1b[31m" + header + "\x00" + "z" * 1000)
    assert len(quoted) <= 200 and "[REDACTED]" in quoted and "\x1b" not in quoted and "\x00" not in quoted
    assert Redactor(["k3y"])("a k3y b") == "a [REDACTED] b"  # a key shorter than the window: exact matches
    # a long reply is cut before redaction: many echoes (each shortens the text) and keys across every
    # possible cut position leave no piece of the key in the excerpt
    for key in (SECRET, "sk-proj-" + "A1b2C3d4E5" * 15):  # (project keys are ~160 characters)
        red = Redactor([key])
        for shift in range(len(key) + 8):  # every position of the cut within an echoed header
            text = "x" * shift + f"Bearer {key} " * 60
            for limit in (100, 200):
                quoted = red.quote(text, limit)
                assert len(quoted) <= limit and not any(key[i : i + 4] in quoted for i in range(len(key) - 3))
    assert r.quote(f"{header}".encode() * 3 + b"\xff") == "Bearer [REDACTED]Bearer [REDACTED]Bearer [REDACTED]\\xff"


@pytest.mark.parametrize(("headers", "expected"), [
    ({}, None), ({"retry-after": "2"}, 2.0), ({"retry-after": "0"}, 0.0), ({"retry-after": "3600"}, 5.0),
    ({"retry-after": "nan"}, None), ({"retry-after": "inf"}, None), ({"retry-after": "-1"}, None),
    ({"retry-after": "1e999"}, None), ({"retry-after": "soon"}, None), ({"retry-after": ""}, None),
    ({"retry-after": "Wed, 21 Oct 2099 07:28:00 GMT"}, 5.0), ({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5), ({"retry-after-ms": "nan", "retry-after": "3"}, 3.0),
])  # fmt: skip
def test_retry_after_is_bounded_by_the_backoff_cap_and_garbage_is_ignored(headers, expected):
    from types import SimpleNamespace

    from stages.llm_reply import retry_after as _retry_after

    got = _retry_after(SimpleNamespace(headers=headers), 5.0)
    assert got == expected and (got is None or 0 <= got <= 5.0)
    assert _retry_after(None, 5.0) is None


def test_hostile_replies_are_per_request_failures_with_redacted_details(tmp_path, monkeypatch, caplog):
    import json

    from tests.llm_server import Reply, completion

    monkeypatch.setenv("MOVID_CLIENT_KEY", SECRET)
    caplog.set_level("DEBUG")

    def script(prompt, attempt, headers):
        tag = prompt.split()[0]
        auth = headers.get("Authorization", "")
        return {
            "echo401": Reply(401, {"error": {"message": f"bad Authorization: {auth}"}}),
            "echo503": Reply(503, {"error": {"message": f"down; you sent {auth}"}}, headers={"Retry-After": "nan"}),
            "list": Reply(body=[1, 2, 3]),
            "html": Reply(body=b"<html>proxy error</html>", content_type="text/html") if attempt == 1 else None,
            "length": Reply(body=completion('{"qa": [{"cat', finish_reason="length")),
            "quoted": Reply(body=completion(json.dumps(server.answer(prompt)).replace("Where", auth))),
            "gzip401": Reply(401, b"not gzip", headers={"Content-Encoding": "gzip"}),
        }.get(tag)

    server = FakeLLM(script=script)
    with server:
        cfg = _cfg(server, max_in_flight=2, max_retries=2, backoff_max_s=0.05, max_prompt_chars=500)
        tags = ["echo401", "echo503", "list", "html", "length", "quoted", "gzip401", "fine"]
        reqs = [ClipRequest(t, "train", f"{t} clip\ntravel: forward (1.0 m)\njumps: 1", {}) for t in tags]
        reqs.append(ClipRequest("long", "train", "long " + "x" * 600, {}))
        reqs.append(ClipRequest("surrogate", "train", "surrogate \ud800 clip", {}))  # (JSON's "\ud800" decodes so)
        results = dict(zip([*tags, "long", "surrogate"], OpenAIAnnotator(cfg, "v1", tmp_path / "c").answer_all(reqs),
                           strict=True))  # fmt: skip
        seen = {json.dumps(b)[:2000] for b in server.bodies}
    assert {k: r.error for k, r in results.items()} == {
        "echo401": "api_error", "echo503": "api_unavailable", "list": "malformed_response", "html": None,
        "length": "truncated_answer", "quoted": "secret_in_answer", "gzip401": "api_unavailable", "fine": None,
        "long": "prompt_too_long", "surrogate": "invalid_prompt"}  # fmt: skip
    assert results["echo401"].detail.endswith("bad Authorization: Bearer [REDACTED]")
    assert "[REDACTED]" in results["echo503"].detail and "gave up after 3 attempts" in results["echo503"].detail
    assert results["html"].usage["retries"] == 1 and results["html"].payload["qa"]
    assert results["long"].usage["requests"] == 0 and not any('"long ' in b for b in seen)  # never sent
    assert results["surrogate"].usage["requests"] == 0 and not any("surrogate" in b for b in seen)
    assert all(SECRET not in r.detail for r in results.values())
    assert SECRET not in caplog.text and "[REDACTED]" in caplog.text  # the log quotes the echoes, redacted


def test_the_judge_survives_malformed_replies(tmp_path, monkeypatch):
    from model.score import OpenAIJudge
    from tests.llm_server import Reply

    monkeypatch.setenv("MOVID_CLIENT_KEY", SECRET)
    bodies = iter([Reply(body={"choices": "no"}), Reply(body=b"<html/>", content_type="text/html")])  # then good
    with FakeLLM(script=lambda prompt, attempt, headers: next(bodies, None)) as server:
        judge = OpenAIJudge(model="j", base_url=server.base_url, api_key_env="MOVID_CLIENT_KEY", cache_dir=tmp_path,
                            max_in_flight=1, max_retries=0)  # fmt: skip
        items = [{"question": f"q{i}", "answer": "a", "prediction": "a"} for i in range(3)]
        got = judge.judge_all(items)
    assert [j.error.split(":")[0] if j.error else None for j in got] == ["malformed_response", "malformed_response", None]
    assert got[2].pred == "yes"
