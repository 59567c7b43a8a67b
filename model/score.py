"""Scoring predictions on the bench (``movid score``): a judge (``model/judge.py``) says per question whether
the prediction matches the reference (``pred`` yes/no) and how well (``score`` 0-5); accuracy = yes / (yes +
no) and the mean score are reported with bootstrap 95 % intervals per category, per modality and

- ``overall``: the five MoVid-Bench categories (body part, sequentiality, direction, reasoning,
  hallucination), as the paper reports them;
- ``all``: every question, counting included. Counting is not a MoVid-Bench category: it has its own row
  and stays out of ``overall``; per-modality rows are over all questions, like ``all``.

Every run also judges, in the same batch and by the same judge:

- the hard calibration set (``model/calibration.py``): the bench's references minimally contradicted (must
  be judged wrong) and paraphrased (must be judged right); ``calibration.ok`` is false below the thresholds;
- the baselines (``model/baselines.py``): the majority answer per question template from the train split,
  and any named predictions (a blind model's), aggregated like the model; chance where it is defined.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from model.baselines import chance_table
from model.calibration import calibration_report, calibration_set
from model.judge import (
    Judgement,
    JudgeParseError,
    MiniLM,
    OfflineJudge,
    OpenAIJudge,
    cosine_pairs,
    normalize,
    numbers,
    parse_judge,
    yes_no,
)
from schemas.bench import MOVID_BENCH_CATEGORIES

__all__ = ["MOVID_BENCH_CATEGORIES", "JudgeParseError", "Judgement", "MiniLM", "OfflineJudge", "OpenAIJudge",
           "aggregate", "bootstrap_ci", "calibration_set", "cosine_pairs", "format_markdown", "format_table",
           "normalize", "numbers", "parse_judge", "read_predictions", "score", "write_json", "yes_no"]  # fmt: skip


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


def aggregate(rows: list[dict], judgements: list[list[Judgement]], *, seed: int = 0, n_boot: int = 1000,
              categories: tuple[str, ...] = MOVID_BENCH_CATEGORIES) -> dict:  # fmt: skip
    """Accuracy and mean score ``overall`` (the questions of ``categories``), ``all``, per category / modality
    / modality-category, from ``judgements[r][i]`` (repeat r, question i). A question's accuracy is the share
    of its valid repeats judged yes (with one repeat: 1 or 0), so accuracy = yes / (yes + no); failed
    judgements are left out and counted."""
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
    result = {"overall": _group_stats([q for q in per_q if q["category"] in categories], seed, n_boot),
              "all": _group_stats(per_q, seed, n_boot)}  # fmt: skip
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
        have = pq.read_schema(p).names
        lacking = [c for c in ("question_id", "prediction") if c not in have]
        if lacking:
            raise ValueError(f"{path}: no column {' or '.join(lacking)} (its columns: {', '.join(have) or 'none'}); "
                             "predictions need question_id and prediction")  # fmt: skip
        recs = pq.read_table(p, columns=["question_id", "prediction"]).to_pylist()
    else:
        recs = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    out = {}
    for n, r in enumerate(recs, 1):
        if not isinstance(r, dict) or "question_id" not in r or "prediction" not in r:
            keys = f"its keys: {', '.join(map(str, r))[:200]}" if isinstance(r, dict) else f"a JSON {type(r).__name__}"
            raise ValueError(f"{path}: record {n} lacks question_id or prediction ({keys})")
        out[str(r["question_id"])] = "" if r["prediction"] is None else str(r["prediction"])
    return out


def _rows_for(bench: list[dict], predictions: dict[str, str]) -> list[dict]:
    return [{**r, "prediction": predictions.get(r["question_id"], ""), "missing": r["question_id"] not in predictions}
            for r in bench]  # fmt: skip


def score(bench: list[dict], predictions: dict[str, str], judge, *, repeats: int = 1, seed: int = 0,
          n_boot: int = 1000, calibration: int = 100, baselines: dict[str, dict[str, str]] | None = None,
          baseline_info: dict[str, dict] | None = None) -> dict:  # fmt: skip
    """Judge every bench question ``repeats`` times (seeds seed, seed+1, …) and aggregate. A question
    without a prediction is judged as an empty answer (wrong) and counted in ``missing``. ``calibration``
    references (0: none) give the calibration set; ``baselines`` (name → predictions, e.g. "majority",
    "blind") are judged in the same batch and aggregated alike under ``result["baselines"]``."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    rows = _rows_for(bench, predictions)
    unknown = sorted(set(predictions) - {r["question_id"] for r in bench})
    calib = calibration_set(bench, calibration, seed) if calibration else []
    base_rows = {name: _rows_for(bench, preds) for name, preds in (baselines or {}).items()}
    batch = rows + calib + [r for br in base_rows.values() for r in br]
    judgements, calib_j, base_j = [], [], {name: [] for name in base_rows}
    models, usage = Counter(), Counter()
    for k in range(repeats):
        js = judge.judge_all(batch, seed=seed + k)  # one batch: calibration and baselines ride along each run
        judgements.append(js[: len(rows)])
        calib_j.append(js[len(rows): len(rows) + len(calib)])
        at = len(rows) + len(calib)
        for name, br in base_rows.items():
            base_j[name].append(js[at: at + len(br)])
            at += len(br)
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
    result["calibration"] = calibration_report(calib, calib_j) if calib else None
    result["predictions"] = {"bench_questions": len(rows), "missing": sum(r["missing"] for r in rows),
                             "unknown_question_ids": len(unknown)}  # fmt: skip
    result["baselines"] = {}
    for name, br in base_rows.items():
        result["baselines"][name] = aggregate(br, base_j[name], seed=seed, n_boot=n_boot)
        result["baselines"][name]["source"] = (baseline_info or {}).get(name)
    result["chance"] = chance_table(bench, MOVID_BENCH_CATEGORIES)
    result["categories"] = {"overall": list(MOVID_BENCH_CATEGORIES), "apart": sorted(
        {r["category"] for r in bench} - set(MOVID_BENCH_CATEGORIES))}  # fmt: skip
    return result


# ------------------------------------------------------------------------------------------------ output


def _pct(x) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"


def _num(x) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


def _acc(s: dict | None) -> str:
    if not s or not s.get("n"):
        return "—"
    return f"{_pct(s['accuracy'])} [{_pct(s['accuracy_ci'][0])}, {_pct(s['accuracy_ci'][1])}]"


def _chance(c: dict | None) -> str:
    if not c or c["accuracy"] is None:
        return "—"
    return _pct(c["accuracy"]) + ("" if c["defined"] == c["n"] else "*")


def _systems(result: dict) -> list[str]:
    """Column order: the model, then blind (if given), majority, the other named baselines."""
    names = list(result.get("baselines") or {})
    return [n for n in ("blind", "majority") if n in names] + sorted(n for n in names if n not in ("blind", "majority"))


def _groups(result: dict) -> list[tuple[str, tuple[str, ...]]]:
    """(label, key path) of each table row."""
    apart = set((result.get("categories") or {}).get("apart", []))
    out = [("overall (5 MoVid-Bench categories)", ("overall",)),
           (f"all (incl. {', '.join(sorted(apart))})" if apart else "all", ("all",))]
    out += [(f"modality {k}", ("by_modality", k)) for k in result["by_modality"]]
    inside = [k for k in result["by_category"] if k not in apart]
    out += [(f"category {k}", ("by_category", k)) for k in inside]
    out += [(f"category {k} (apart)", ("by_category", k)) for k in result["by_category"] if k in apart]
    out += [(k, ("by_modality_category", k)) for k in result["by_modality_category"]]
    return out


def _get(d: dict | None, path: tuple[str, ...]):
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _table_rows(result: dict) -> tuple[list[str], list[list[str]]]:
    systems = _systems(result)
    header = ["group", "model % [95% CI]"] + [f"{n} % [95% CI]" for n in systems] + \
             ["chance %", "model score 0-5 [95% CI]", "n"]  # fmt: skip
    rows = []
    for label, path in _groups(result):
        s = _get(result, path)
        score_txt = f"{_num(s['score'])} [{_num(s['score_ci'][0])}, {_num(s['score_ci'][1])}]"
        rows.append([label, _acc(s)] + [_acc(_get(result["baselines"][n], path)) for n in systems] +
                    [_chance(_get(result.get("chance"), path)), score_txt, str(s["n"])])  # fmt: skip
    return header, rows


def _footer(result: dict) -> list[str]:
    j, c = result["judge"], result.get("calibration")
    lines = [f"judge: {j['kind']} ({', '.join(j['model'] or ['?'])}), {j['variance']['repeats']} repeat(s), "
             f"{j['failed']} failed judgement(s); accuracy std over repeats {j['variance']['accuracy_std']:.3f}, "
             f"pred agreement {j['variance']['pred_agreement']:.3f}"]  # fmt: skip
    if c:
        k, p = c["contradictions"], c["paraphrases"]
        lines.append(f"calibration: contradictions judged wrong {_pct(k['rate'])} % of {k['n']} (need "
                     f"{100 * k['threshold']:.0f} %), paraphrases judged right {_pct(p['rate'])} % of {p['n']} (need "
                     f"{100 * p['threshold']:.0f} %) — {'ok' if c['ok'] else 'FAILED: the judge is unreliable'}")  # fmt: skip
        weak = [f"{e['edit']} {_pct(e['rate'])} %" for e in list(k["by_edit"].values()) + list(p["by_edit"].values())
                if e["rate"] < 1.0]  # fmt: skip
        if weak:
            lines.append("calibration edits below 100 %: " + "; ".join(weak))
    else:
        lines.append("calibration: skipped (--calibration 0): the judge was NOT checked")
    p = result["predictions"]
    lines.append(f"predictions: {p['bench_questions']} questions, {p['missing']} missing (counted wrong), "
                 f"{p['unknown_question_ids']} unknown ids ignored")  # fmt: skip
    maj = (result.get("baselines") or {}).get("majority")
    if maj and maj.get("source"):
        src = maj["source"]
        lines.append(f"majority: the most common train answer per question template ({src.get('train_qa', 0)} train QA "
                     f"pairs, {src.get('templates', 0)} templates; answered by {src.get('answered_by', {})})")  # fmt: skip
    elif "majority" not in (result.get("baselines") or {}):
        lines.append("majority: — (no train split found: pass --data OUT of the build)")
    if any(ch.get("defined") != ch.get("n") for ch in [(result.get("chance") or {}).get("overall") or {}]):
        lines.append("chance: * = the mean over the questions whose answer space is closed (yes/no, options, "
                     "direction, turn, body part, pace, event); — where none is")  # fmt: skip
    return lines


def format_table(result: dict) -> str:
    header, rows = _table_rows(result)
    table = [header] + rows
    w = [max(len(r[i]) for r in table) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w[i]) if i == 0 else c.rjust(w[i]) for i, c in enumerate(r)) for r in table]
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines + [""] + _footer(result))


def format_markdown(result: dict) -> str:
    header, rows = _table_rows(result)
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    lines += [f"| {' | '.join(r)} |" for r in rows]
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
