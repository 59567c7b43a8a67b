"""``movid build`` with the openai annotator backend against a real HTTP server on loopback."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from pipeline.sample_data import write_sample_humanml3d
from tests.conftest import local_build
from tests.llm_server import FakeLLM

KEY = "sk-movid-test-DO-NOT-LEAK-8f3a9c"


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("ann") / "humanml3d"
    write_sample_humanml3d(root, n_motions=6, seed=9)
    return root


@pytest.fixture()
def key_env(monkeypatch):
    monkeypatch.setenv("MOVID_TEST_KEY", KEY)


def _sets(server, cache, *extra):
    return ("annotator.backend=openai", f"annotator.base_url={server.base_url}", "annotator.model=gpt-test",
            "annotator.api_key_env=MOVID_TEST_KEY", f"annotator.cache_dir={cache}", "annotator.backoff_base_s=0.01",
            "annotator.timeout_s=5", "annotator.tasks=[qa]", *extra)  # fmt: skip


def _clips(manifest):
    return manifest["stages"]["annotate"]["clips_in"]


def test_annotates_and_a_rerun_makes_no_request(tree, tmp_path, key_env):
    with FakeLLM() as server:
        m1 = local_build(tree, tmp_path / "a", *_sets(server, tmp_path / "cache"))
        n = server.requests
        assert n == len(server.by_prompt) == m1["annotator"]["requests"] > 0 and m1["annotator"]["prompt_tokens"] > 0
        assert n + m1["annotator"]["cache_hits"] == _clips(m1)  # identical prompts are asked once
        body = server.bodies[0]
        assert body["response_format"]["type"] == "json_schema" and body["model"] == "gpt-test"
        m2 = local_build(tree, tmp_path / "b", *_sets(server, tmp_path / "cache"))
        assert server.requests == n  # all from the cache
        assert m2["annotator"]["cache_hits"] == _clips(m2) and m2["annotator"]["requests"] == 0
    assert m1["reconciliation"]["ok"] and m2["reconciliation"]["ok"]
    assert m1["annotator"]["qa_pairs"] == 3 * _clips(m1)


def test_llama_cpp_request_form(tree, tmp_path, key_env):
    with FakeLLM() as server:
        local_build(tree, tmp_path / "a", *_sets(server, tmp_path / "cache", "annotator.structured_output=json_object"))
        rf = server.bodies[0]["response_format"]
        assert rf["type"] == "json_object" and rf["schema"]["required"] == ["qa"]
        assert rf["schema"]["properties"]["qa"]["maxItems"] == 6  # annotator.qa_per_clip


def test_faults_end_annotated_or_quarantined_and_reconcile(tree, tmp_path, key_env):
    with FakeLLM(p429=0.2, p500=0.05, p_malformed=0.05, p_truncated=0.02, seed=3) as server:
        m = local_build(tree, tmp_path / "a", *_sets(server, tmp_path / "cache", "annotator.max_retries=3"))
    a, rec = m["stages"]["annotate"], m["reconciliation"]
    assert rec["ok"] and rec["annotated_clips"]["in"] == rec["annotated_clips"]["out"] + rec["annotated_clips"]["quarantined"]
    assert a["clips_in"] == _clips(m) and m["annotator"]["retries"] > 0 and server.statuses[429] > 0
    assert server.statuses[500] > 0 and m["annotator"]["reasks"] > 0


def test_contradicting_answers_go_to_quarantine(tree, tmp_path, key_env):
    with FakeLLM(wrong_direction=True) as server:
        m = local_build(tree, tmp_path / "a", *_sets(server, tmp_path / "cache"))
    assert m["quarantine_reasons"]["contradicts_kinematics"] == m["annotator"]["qa_contradicting_kinematics"] == _clips(m)
    assert m["annotator"]["qa_pairs"] == 2 * _clips(m)


def test_the_api_key_is_never_written_or_logged(tree, tmp_path, key_env, caplog):
    caplog.set_level("DEBUG")
    with FakeLLM(p429=0.1, p_malformed=0.1, seed=5) as server:
        local_build(tree, tmp_path / "out", *_sets(server, tmp_path / "cache"))
    assert server.auth_headers == {f"Bearer {KEY}"}  # the key was used…
    for path in list((tmp_path / "out").rglob("*")) + list((tmp_path / "cache").rglob("*")):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path  # …and is in no shard, manifest, stats or cache file
    assert KEY not in caplog.text


def test_missing_key_for_openai_stops_before_any_work(tree, tmp_path, monkeypatch):
    from pipeline.config import ConfigError

    monkeypatch.delenv("MOVID_TEST_KEY", raising=False)
    with pytest.raises(ConfigError, match="MOVID_TEST_KEY is not set"):
        local_build(tree, tmp_path / "a", "annotator.backend=openai", "annotator.base_url=https://api.openai.com/v1",
                    "annotator.api_key_env=MOVID_TEST_KEY")  # fmt: skip
    assert not (tmp_path / "a").exists()  # refused before OUT, the plan or Ray


def test_a_keyless_local_server_needs_no_key_variable(tree, tmp_path, monkeypatch):
    monkeypatch.delenv("MOVID_TEST_KEY", raising=False)
    with FakeLLM() as server:
        manifest = local_build(tree, tmp_path / "a", *_sets(server, tmp_path / "cache"))
    assert manifest["reconciliation"]["ok"] and server.requests > 0
    assert server.auth_headers == {"Bearer no-key"}  # a placeholder the client insists on; no key was sent


def test_killed_midway_rerun_repeats_no_finished_request(tree, tmp_path):
    cmd = [sys.executable, "-m", "movid", "build", "--source", f"humanml3d={tree}", "--out", str(tmp_path / "o"),
           "--executor", "local", "--quiet", "--set", "plan.unit_size=2", "--set", "annotator.max_in_flight=2"]
    env = os.environ | {"MOVID_TEST_KEY": KEY}
    with FakeLLM(latency=0.3) as server:
        cmd += [a for s in _sets(server, tmp_path / "cache") for a in ("--set", s)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while server.completed < 4 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the build finished before the kill"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        first = server.requests
        r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
        distinct = len(server.by_prompt)
    # identical prompts (mirror twins of symmetric motions) share one answer, so count distinct prompts
    assert manifest["annotator"]["clips_annotated"] == _clips(manifest) and first < distinct  # really cut off midway
    # Only requests in flight at the kill (at most max_in_flight) may be paid twice.
    assert server.requests <= distinct + 2 and max(server.by_prompt.values()) <= 2


def test_dry_run_estimates_and_spends_nothing(tree, tmp_path, key_env):
    from pipeline.config import load_config
    from pipeline.dry_run import estimate_annotation

    with FakeLLM() as server:
        sets = _sets(server, tmp_path / "cache", "annotator.price_per_1k_prompt_tokens=1.0",
                     "annotator.price_per_1k_completion_tokens=2.0", "executor=local")  # fmt: skip
        cfg = load_config(None, list(sets), [f"humanml3d={tree}"])
        before = estimate_annotation(cfg, str(tmp_path / "out"))
        assert server.requests == 0 and not (tmp_path / "out").exists()
        assert before["requests"] > 0 and before["requests_to_pay"] == before["requests"] and before["cost_usd"] > 0
        m = local_build(tree, tmp_path / "out", *sets)
        assert before["requests"] == _clips(m)
        after = estimate_annotation(cfg, str(tmp_path / "out2"))
        assert after["requests_to_pay"] == 0 and after["cost_usd"] == 0 and after["cached"] == before["requests"]


def test_dry_run_counts_every_task(tmp_path, key_env):
    """Captions, QA, vision re-captions and video QA are each estimated from prompts built as the build would."""
    from pipeline.config import load_config
    from pipeline.dry_run import estimate_annotation
    from pipeline.sample_data import write_sample_videos

    write_sample_humanml3d(tmp_path / "h", n_motions=3, seed=2)
    write_sample_videos(tmp_path / "v", tmp_path / "h", n_videos=2)
    with FakeLLM() as server:
        sets = _sets(server, tmp_path / "cache", "annotator.tasks=[caption, qa, video_caption, video_qa]",
                     "annotator.price_per_1k_prompt_tokens=1.0", "frames.num_frames=4")  # fmt: skip
        sources = [f"humanml3d={tmp_path / 'h'}", f"video={tmp_path / 'v'}"]
        e = estimate_annotation(load_config(None, list(sets), sources), str(tmp_path / "out"))
        assert server.requests == 0
        m = local_build(None, tmp_path / "out", *sets, sources=sources)
    assert set(e["tasks"]) == {"caption", "qa", "video_caption", "video_qa"}
    for name, stage in (("caption", "annotate_caption"), ("qa", "annotate"), ("video_caption", "annotate_video"),
                        ("video_qa", "annotate_video_qa")):  # fmt: skip
        items = m["stages"][stage]["clips_in" if stage in ("annotate", "annotate_caption") else "videos_in"]
        assert e["tasks"][name]["requests"] == items > 0, name
    assert e["requests"] == sum(t["requests"] for t in e["tasks"].values())
    # a vision request carries its images: more prompt tokens per request than the text QA of the same video
    per = {n: t["prompt_tokens"] / t["requests_to_pay"] for n, t in e["tasks"].items()}
    assert per["video_caption"] > per["video_qa"]


def test_budget_cap_stops_cleanly_and_a_larger_budget_resumes(tree, tmp_path, key_env):
    from pipeline.executors import ExecutorError

    with FakeLLM() as server:
        sets = _sets(server, tmp_path / "cache", "annotator.price_per_1k_prompt_tokens=10.0", "plan.unit_size=2")
        with pytest.raises(ExecutorError, match="annotation budget spent"):
            local_build(tree, tmp_path / "out", *sets, "annotator.budget_usd=0.01")
        assert not (tmp_path / "out" / "manifest.json").exists()
        paid = dict(server.by_prompt)
        m = local_build(tree, tmp_path / "out", *sets, "annotator.budget_usd=1000")
        assert m["reconciliation"]["ok"] and m["units"]["skipped"] >= 1
        assert all(server.by_prompt[p] == 1 for p in paid)  # nothing paid for twice


def test_videos_are_recaptioned_from_their_frames(tmp_path, key_env):
    import base64
    import io

    import pyarrow.parquet as pq
    from PIL import Image

    from pipeline.sample_data import write_sample_videos

    write_sample_humanml3d(tmp_path / "h", n_motions=3, seed=2)
    write_sample_videos(tmp_path / "v", tmp_path / "h", n_videos=2)
    with FakeLLM() as server:
        m = local_build(None, tmp_path / "out", *_sets(server, tmp_path / "cache", "frames.num_frames=4",
                                                       "annotator.tasks=[qa, video_caption, video_qa]"),
                        sources=[f"humanml3d={tmp_path / 'h'}", f"video={tmp_path / 'v'}"])  # fmt: skip
        vision = [b for b in server.bodies if isinstance(b["messages"][1]["content"], list)]
        text_qa = [b for b in server.bodies if "Description from the frames" in str(b["messages"][1]["content"])]
    assert len(vision) == 2 and m["annotator"]["videos_annotated"] == 2 and m["reconciliation"]["ok"]
    # the text pass (MoVid's GPT-4 step) gets the re-caption the vision pass wrote, and no images
    assert len(text_qa) == 2 and m["annotator"]["videos_qa_annotated"] == 2
    assert all("The person swings the right leg" in b["messages"][1]["content"] for b in text_qa)
    assert text_qa[0]["response_format"]["json_schema"]["schema"]["required"] == ["qa"]
    assert m["reconciliation"]["video_text_qa"] == {"in": 2, "out": 2, "quarantined": 0, "ok": True}
    parts = vision[0]["messages"][1]["content"]
    images = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
    assert len(images) == 4 and all(u.startswith("data:image/jpeg;base64,") for u in images)
    assert Image.open(io.BytesIO(base64.b64decode(images[0].split(",", 1)[1]))).format == "JPEG"
    assert vision[0]["response_format"]["json_schema"]["schema"]["required"] == ["caption", "qa"]
    rows = [r for f in (tmp_path / "out" / "instruction").rglob("*.parquet") for r in pq.read_table(f).to_pylist()]
    recaptions = [r for r in rows if r["task"] == "caption" and r["annotator"]["backend"] == "openai"]
    assert len(recaptions) == 2 and recaptions[0]["modality"] == "video"
    text_rows = [r for r in rows if "/video-text-qa/" in r["sample_id"]]
    assert len(text_rows) == 6 and {r["task"] for r in text_rows} == {"qa"}  # the fake server writes 3 pairs each
    assert text_rows[0]["annotator"]["prompt_version"].startswith("video_qa.v1@") and text_rows[0]["video_id"]
    assert recaptions[0]["conversations"][1]["content"].startswith("The person swings the right leg")


def test_detailed_caption_task(tree, tmp_path, key_env):
    import pyarrow.parquet as pq

    with FakeLLM() as server:
        m = local_build(tree, tmp_path / "out", *_sets(server, tmp_path / "cache", "annotator.tasks=[caption, qa]"))
    assert m["reconciliation"]["ok"] and m["annotator"]["clips_captioned"] == m["stages"]["annotate_caption"]["clips_in"]
    rows = [r for f in (tmp_path / "out" / "instruction").rglob("*.parquet") for r in pq.read_table(f).to_pylist()]
    detailed = [r for r in rows if r["category"] == "detailed"]
    assert len(detailed) == m["annotator"]["clips_captioned"] > 0
    assert detailed[0]["annotator"]["prompt_version"].startswith("motion_caption.v1@")
    assert detailed[0]["conversations"][1]["content"].startswith("The person walks")
