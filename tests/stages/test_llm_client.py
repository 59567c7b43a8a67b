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

    from stages.llm_client import _Prefetch

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
