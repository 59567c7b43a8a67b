"""Red-team corpus: LLM replies (issue 16, items 10 and 11). Every reply is untrusted input: whatever an
OpenAI-compatible endpoint sends back — a 200 whose body is not a chat completion, a lying Content-Type or
Content-Length, an error body that echoes our Authorization header, a Retry-After of NaN or an hour, a 30 MB
answer — ends as one record annotated or quarantined with its own reason, never an aborted build, and the
key reaches neither ``OUT`` nor the log.

One build serves every case: each clip's captions carry a case tag, and the loopback server
(``tests.llm_server.FakeLLM``) answers each request by the tag in its prompt. The build runs as the CLI in a
fresh process with debug logging, so its stderr holds every log line it wrote (the openai client's and the
HTTP library's included); the secret is the API key, in the environment only.

A last case edits a prompt between two runs on one ``OUT``: the run identity includes the prompts' text,
so the resume is refused, and ``--overwrite`` rebuilds with one prompt version.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from functools import cache
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.sample_data import write_sample_humanml3d
from tests.llm_server import FakeLLM, Reply, completion
from tests.redteam.harness import (
    SECRET,
    SECRET_ENV,
    Sandbox,
    assert_one_line_error,
    cli,
    cli_inproc,
    quarantine,
)

BEARER = f"Bearer {SECRET}"
MAX_PROMPT_CHARS = 4000  # the sample clips' prompts are ~2.6k characters; the long case's ~6k
MAX_RETRIES = 2
HUGE_INVALID = 2_000_000  # characters of an invalid answer that the re-ask must not echo whole


def _auth(headers) -> str:
    return headers.get("Authorization", "")


def _once(reply: Reply):
    """This reply on the first attempt at a prompt, the server's good answer after."""
    return lambda good, attempt, headers: reply if attempt == 1 else None


def _always(reply: Reply):
    return lambda good, attempt, headers: reply


def _good_with(**over):
    """The good answer, in a completion changed by ``over`` (Content-Type, model, usage...)."""
    content_type = over.pop("content_type", "application/json")
    return lambda good, attempt, headers: Reply(body=completion(good, **over), content_type=content_type)


def _echo(status: int, encode=lambda s: s):
    """An error body quoting the Authorization header we sent (as some gateways do), ``encode``d."""
    return lambda good, attempt, headers: Reply(status, {"error": {"message": f"invalid header: Authorization: "
                                                                   f"{encode(_auth(headers))}", "type": "auth"}})


_HTML = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
_FUTURE = format_datetime(datetime.now(UTC) + timedelta(days=3), usegmt=True)


@cache
def _huge_body() -> bytes:
    return json.dumps(completion("x" * 30_000_000)).encode()  # made once: two clips ask for it

# tag -> (how the server replies, the clip's outcome: its quarantine reason, or None when annotated)
CASES = {
    # 200 bodies that are not a chat completion
    "not_json": (_always(Reply(body=b"this is not JSON")), "malformed_response"),
    "json_list": (_always(Reply(body=[{"choices": []}])), "malformed_response"),
    "json_null": (_always(Reply(body=b"null")), "malformed_response"),
    "json_string": (_always(Reply(body='"a completion"')), "malformed_response"),
    "choices_string": (_always(Reply(body={"choices": "none today"})), "malformed_response"),
    "choices_empty": (_always(Reply(body={"choices": []})), "malformed_response"),
    "choice_string": (_always(Reply(body={"choices": ["the answer"]})), "malformed_response"),
    "message_missing": (_always(Reply(body={"choices": [{"index": 0, "finish_reason": "stop"}]})), "malformed_response"),
    "message_string": (_always(Reply(body={"choices": [{"message": "hello"}]})), "malformed_response"),
    "content_object": (_always(Reply(body=completion({"qa": []}))), "malformed_response"),
    "content_number": (_always(Reply(body=completion(42))), "malformed_response"),
    "content_list": (_always(Reply(body=completion([{"type": "text", "text": "{}"}]))), "malformed_response"),
    "content_null": (_always(Reply(body=completion(None))), "malformed_response"),
    "invalid_utf8": (_always(Reply(body=b'{"choices": "\xff\xfe\xfd"}')), "malformed_response"),
    "deep_nesting": (_always(Reply(body=b"[" * 100_000)), "malformed_response"),
    "empty_body": (_always(Reply(body=b"")), "malformed_response"),
    "html_page": (_always(Reply(body=_HTML, content_type="text/html")), "malformed_response"),
    # transient-looking bodies: retried, then answered
    "empty_body_once": (_once(Reply(body=b"")), None),
    "html_page_once": (_once(Reply(body=_HTML, content_type="text/html")), None),
    "error_in_200_overloaded_once": (_once(Reply(body={"error": {"message": "overloaded", "code": 503}})), None),
    # valid completions with odd wrapping: used
    "html_labelled_completion": (_good_with(content_type="text/html"), None),
    "no_content_type": (_good_with(content_type=None), None),
    "usage_string": (_good_with(usage="lots"), None),
    "usage_negative_nan": (_good_with(usage={"prompt_tokens": -5, "completion_tokens": float("nan")}), None),
    "model_echoes_key": (_good_with(model=BEARER), None),
    # errors that quote our Authorization header
    "status_401_echo": (_echo(401), "api_error"),
    "status_400_echo_base64": (_echo(400, lambda s: base64.b64encode(s.encode()).decode()), "api_error"),
    "status_500_echo": (_echo(500), "api_unavailable"),
    "error_in_200_echo": (lambda good, attempt, headers: Reply(body={"error": {"message": f"bad key {_auth(headers)}",
                                                                             "code": "invalid_api_key"}}), "api_error"),
    # Retry-After garbage and extremes (backoff_max_s is small: an hour must not be slept)
    "retry_after_nan": (_once(Reply(429, {"error": {}}, headers={"Retry-After": "nan"})), None),
    "retry_after_inf": (_once(Reply(429, {"error": {}}, headers={"Retry-After": "inf"})), None),
    "retry_after_negative": (_once(Reply(503, {"error": {}}, headers={"Retry-After": "-1"})), None),
    "retry_after_3600": (_once(Reply(429, {"error": {}}, headers={"Retry-After": "3600"})), None),
    "retry_after_http_date": (_once(Reply(429, {"error": {}}, headers={"Retry-After": _FUTURE})), None),
    # sizes
    "huge_invalid_then_valid": (_once(Reply(body=completion("x" * HUGE_INVALID))), None),
    "body_30mb": (lambda good, attempt, headers: Reply(body=_huge_body()), "malformed_response"),
    "body_without_length_6mb": (_always(Reply(body=b" " * (6 << 20), headers={"Content-Length": None})),
                                "malformed_response"),
    "body_lying_length": (_always(Reply(body=b"{}", headers={"Content-Length": str(10**12)})), "malformed_response"),
    "prompt_too_long": (_always(Reply(500)), "prompt_too_long"),  # never sent: the server must not see it
    # answers
    "finish_length": (lambda good, attempt, headers: Reply(body=completion(good[: len(good) // 2],
                                                                            finish_reason="length")), "truncated_answer"),
    "refusal": (_always(Reply(body={"choices": [{"message": {"content": None, "refusal": "I cannot help."}}]})),
                "model_refused"),
    "answer_quotes_key": (lambda good, attempt, headers: Reply(body=completion(good.replace("Where", _auth(headers)))),
                          "secret_in_answer"),
    "lone_surrogate": (lambda good, attempt, headers: Reply(body=completion(good.replace("Where", "\\ud800"))),
                       "invalid_answer"),
    "bad_gzip": (_always(Reply(body=b"not gzip at all", headers={"Content-Encoding": "gzip"})), "api_unavailable"),
    "status_500_bad_gzip": (_always(Reply(500, b"not gzip", headers={"Content-Encoding": "gzip"})), "api_unavailable"),
    "error_code_5000_digits": (_always(Reply(body={"error": {"message": "?", "code": "9" * 5000}})), "api_error"),
}  # fmt: skip
TAGS = sorted(CASES)


def _tag(prompt: str) -> str | None:
    m = re.search(r"redteam case ([a-z0-9_]+)", prompt)
    return m.group(1) if m else None


def _write_tree(root: Path) -> dict[str, str]:
    """The sample tree, each clip's captions (and its mirror twin's) tagged with one case; clip id -> tag."""
    write_sample_humanml3d(root, n_motions=len(TAGS), seed=11)
    owner = {}
    for i, tag in enumerate(TAGS):
        lines = [f"a person moves about. redteam case {tag}#a/DET person/NOUN#0.0#0.0"]
        if tag == "prompt_too_long":  # captions within ingest's caps, a prompt over annotator.max_prompt_chars
            lines += [f"{'the person keeps moving about the room ' * 22}redteam case {tag}#a/DET#0.0#0.0"] * 4
        for mid in (f"{i:06d}", f"M{i:06d}"):
            (root / "texts" / f"{mid}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
            owner[mid] = tag
    return owner


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """One build of every case. Returns (manifest, OUT, clip -> tag, server, stderr)."""
    root = tmp_path_factory.mktemp("llm-redteam")
    owner = _write_tree(root / "humanml3d")
    out = root / "out"
    sandbox = Sandbox(root, out)
    before = sandbox.snapshot()

    def script(prompt, attempt, headers):
        tag = _tag(prompt)
        return CASES[tag][0](json.dumps(server.answer(prompt)), attempt, headers) if tag else None

    server = FakeLLM(script=script)
    with server:
        sets = ["annotator.backend=openai", f"annotator.base_url={server.base_url}", "annotator.model=gpt-redteam",
                f"annotator.api_key_env={SECRET_ENV}", "annotator.tasks=[qa]", "annotator.qa_per_clip=3",
                f"annotator.max_retries={MAX_RETRIES}", "annotator.backoff_base_s=0.01", "annotator.backoff_max_s=0.05",
                "annotator.timeout_s=10", f"annotator.max_prompt_chars={MAX_PROMPT_CHARS}", "plan.unit_size=40"]  # fmt: skip
        res = cli("--verbose", "build", "--source", f"humanml3d={root / 'humanml3d'}", "--out", out, "--executor", "local",
                  "--quiet", *[a for s in sets for a in ("--set", s)], timeout=300)  # fmt: skip
    assert res.rc == 0, res.stderr[-3000:]
    manifest = sandbox.check_build(out, before, stderr=res.stderr)
    return manifest, out, owner, server, res.stderr


@pytest.mark.parametrize("tag", TAGS)
def test_each_reply_ends_in_its_outcome(corpus, tag):
    manifest, out, owner, _server, _stderr = corpus
    expected = CASES[tag][1]
    rows = {r["record_id"]: r for r in quarantine(out) if r["stage"] == "annotate"}
    clips = [mid for mid, t in owner.items() if t == tag]
    annotated = {r["motion_id"] for r in _instructions(out) if r["task"] == "qa"}
    for mid in clips:
        if expected is None:
            assert mid not in rows and mid in annotated, (mid, rows.get(mid))
        else:
            assert mid in rows and rows[mid]["reason"] == expected, (mid, rows.get(mid))
            assert mid not in annotated and rows[mid]["detail"]


def test_the_build_reconciles_and_counts_every_reason(corpus):
    manifest, _out, owner, _server, stderr = corpus
    assert "Traceback" not in stderr
    a = manifest["stages"]["annotate"]
    assert a["clips_in"] == len(owner) == a["clips_annotated"] + a["clips_quarantined"]
    for reason in {r for _, r in CASES.values() if r}:
        n = 2 * sum(1 for _, r in CASES.values() if r == reason)
        assert a[f"dropped_{reason}"] == n, reason
    # garbage usage figures count as nothing: the totals stay sane whole numbers
    for key in ("prompt_tokens", "completion_tokens"):
        assert isinstance(manifest["annotator"][key], int) and manifest["annotator"][key] >= 0


def test_the_key_is_in_no_log_line_and_echoes_are_redacted(corpus):
    _manifest, out, owner, server, stderr = corpus
    assert server.auth_headers == {BEARER}  # the key was sent, and the server echoed it back…
    assert SECRET not in stderr and base64.b64encode(BEARER.encode()).decode() not in stderr
    assert "[REDACTED]" in stderr  # …and the log quotes the echo, redacted
    rows = {r["record_id"]: r for r in quarantine(out)}
    for tag in ("status_401_echo", "status_400_echo_base64", "status_500_echo", "error_in_200_echo"):
        for mid in (m for m, t in owner.items() if t == tag):
            assert "[REDACTED]" in rows[mid]["detail"] and SECRET[:12] not in rows[mid]["detail"], rows[mid]["detail"]
    # a "model" echoing the header is not recorded as the model that answered: the configured one is
    models = {(owner[r["motion_id"]], r["annotator"]["model"]) for r in _instructions(out) if r["task"] == "qa"}
    assert {m for t, m in models if t == "model_echoes_key"} == {"gpt-redteam"}
    assert {m for t, m in models if t == "html_labelled_completion"} == {"fake-served"}  # a plain name is kept


def test_what_is_sent_stays_bounded(corpus):
    _manifest, _out, owner, server, _stderr = corpus
    sent = [(_first_user(b), size) for b, size in zip(server.bodies, server.body_sizes, strict=True)]
    assert "prompt_too_long" not in {_tag(p) for p, _ in sent}  # quarantined before any request
    # requests per distinct prompt of a case (mirror twins with the same prompt are asked once)
    asked = {t: [sum(1 for x, _ in sent if x == p) for p in {x for x, _ in sent if _tag(x) == t}] for t in TAGS}
    reasks = [size for p, size in sent if _tag(p) == "huge_invalid_then_valid"]
    assert set(asked["huge_invalid_then_valid"]) == {2}  # the answer, then the re-ask…
    assert max(reasks) < 20_000  # …which does not echo the 2 MB answer
    # the structural failures are not retried; the transient-looking ones are, within max_retries
    for tag in ("json_list", "body_30mb", "finish_length", "status_401_echo", "refusal"):
        assert set(asked[tag]) == {1}, tag
    for tag in ("not_json", "status_500_echo", "empty_body", "bad_gzip"):
        assert set(asked[tag]) == {MAX_RETRIES + 1}, tag
    for tag in ("retry_after_3600", "retry_after_nan", "empty_body_once"):
        assert set(asked[tag]) == {2}, tag


def _first_user(body: dict) -> str:
    m = next((m for m in body.get("messages", []) if m["role"] == "user"), {"content": ""})
    return m["content"] if isinstance(m["content"], str) else ""


def _instructions(out: Path) -> list[dict]:
    return [r for f in sorted((out / "instruction").rglob("*.parquet"))
            for r in pq.read_table(f, columns=["motion_id", "task", "annotator"]).to_pylist()]  # fmt: skip


# --- run identity: the prompts' text ------------------------------------------------------------------------
def test_an_edited_prompt_is_refused_on_resume_and_rebuilt_with_overwrite(tmp_path, monkeypatch):
    root = tmp_path / "h"
    write_sample_humanml3d(root, n_motions=4, seed=5)
    prompts = tmp_path / "prompts"
    shutil.copytree(Path(__file__).resolve().parents[2] / "configs" / "prompts", prompts)
    out = tmp_path / "out"
    argv = ["build", "--source", f"humanml3d={root}", "--out", out, "--executor", "local", "--quiet",
            "--set", "annotator.tasks=[qa]", "--set", f"annotator.prompts_dir={prompts}", "--set", "plan.unit_size=2"]
    # a build stopped after some units (a full disk in the second train unit)
    monkeypatch.setenv("MOVID_FAULT_ENOSPC_UNIT", "train-00001")
    first = cli_inproc(*argv)
    assert first.rc != 0 and not (out / "manifest.json").exists(), first.stderr
    assert any((out / ".movid" / "units").glob("*/stats.json"))  # some units finished
    monkeypatch.delenv("MOVID_FAULT_ENOSPC_UNIT")
    prompt = prompts / "motion_qa.v1.txt"
    prompt.write_text(prompt.read_text() + "Keep every answer under twenty words.\n")
    refused = cli_inproc(*argv)
    assert_one_line_error(refused, str(out), "holds a different build", "annotation_inputs.qa.prompt changed", "--overwrite")
    rebuilt = cli_inproc(*argv, "--overwrite")
    assert rebuilt.rc == 0, rebuilt.stderr
    versions = {r["annotator"]["prompt_version"] for r in _instructions(out) if r["task"] == "qa"}
    new_hash = hashlib.sha256(prompt.read_text().encode()).hexdigest()[:8]
    assert versions == {f"motion_qa.v1@{new_hash}"}
    assert json.loads((out / "manifest.json").read_text())["reconciliation"]["ok"]


def test_the_run_identity_hashes_the_text_of_the_prompts_that_run(tmp_path):
    from pipeline.config import annotation_digests, config_hash, load_config

    prompts = tmp_path / "prompts"
    shutil.copytree(Path(__file__).resolve().parents[2] / "configs" / "prompts", prompts)

    def identity(*sets):
        cfg = load_config(None, ["annotator.tasks=[qa, caption]", f"annotator.prompts_dir={prompts}", *sets],
                          [f"humanml3d={tmp_path}"])  # fmt: skip
        return config_hash(cfg), annotation_digests(cfg)

    base, digests = identity()
    assert set(digests) == {"schema_version", "qa.prompt", "qa.answer_schema", "caption.prompt", "caption.answer_schema"}
    assert identity("annotator.backend=openai")[0] != base  # (the backend itself counts, as before)
    none = identity("annotator.backend=none")
    assert none[1] == {"schema_version": digests["schema_version"]}
    (prompts / "video_qa.v1.txt").write_text("an unused prompt, edited\n")  # a task that does not run
    assert identity() == (base, digests)
    (prompts / "motion_caption.v1.txt").write_text("Describe {captions}\n")  # a task that runs
    edited, after = identity()  # the config is the same (its hash reads no file); what the prompt says differs
    assert edited == base and [k for k in digests if digests[k] != after[k]] == ["caption.prompt"]
    assert identity("annotator.backend=none")[0] == none[0]  # no task runs: prompt text does not matter
    assert identity("annotator.qa_per_clip=2")[1]["qa.answer_schema"] != after["qa.answer_schema"]  # maxItems
    moved = tmp_path / "moved"
    shutil.copytree(prompts, moved)  # where the prompts lie does not count, only what they say
    assert identity(f"annotator.prompts_dir={moved}") == (edited, after)
