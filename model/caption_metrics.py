"""Caption metrics against several references per clip: BLEU-1/4, ROUGE-L, CIDEr and MiniLM embedding
similarity.

BLEU, ROUGE-L and CIDEr are pycocoevalcap's pure-Python scorers (the COCO caption evaluation code), fed
with our own tokenisation (lowercase, punctuation removed, whitespace split) instead of its Java PTB
tokenizer; METEOR and SPICE (Java) are not used. As in COCO's evaluation:

- BLEU is corpus-level: clipped n-gram counts summed over all clips, brevity penalty from the reference
  length closest to each candidate's, geometric mean of the 1..n precisions (BLEU-1 = the 1-gram one).
- ROUGE-L is per clip F_beta (beta = 1.2) of the longest common subsequence, the best-matching reference's
  precision/recall, averaged over clips.
- CIDEr is pycocoevalcap's ``Cider`` (CIDEr-D: TF-IDF n-grams 1..4 with document frequencies over the
  evaluated clips' references, length penalty sigma = 6, clipped candidate counts, times 10).
- ``embedding``: per clip, the highest cosine similarity of the candidate with a reference
  (all-MiniLM-L6-v2, unit embeddings), averaged.
"""

from __future__ import annotations

import contextlib
import io
import re
import string

import numpy as np

__all__ = ["caption_metrics", "tokenize"]

_PUNCT = str.maketrans({c: " " for c in string.punctuation})


def tokenize(text: str) -> str:
    """Lowercase, punctuation as spaces, single spaces (what the COCO scorers expect: space-separated tokens)."""
    return re.sub(r"\s+", " ", (text or "").lower().translate(_PUNCT)).strip()


def caption_metrics(candidates: dict[str, str], references: dict[str, list[str]], *, embedding: bool = True,
                    encode=None) -> dict:
    """Scores of ``candidates`` (clip id → caption) against ``references`` (clip id → captions).

    Returns ``{"bleu_1", "bleu_4", "rouge_l", "cider", "embedding", "n", "per_clip": {id: {...}}}``;
    ``encode`` replaces the MiniLM encoder (texts → unit embeddings), e.g. in tests."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    ids = sorted(candidates)
    missing = [i for i in ids if not references.get(i)]
    if missing:
        raise ValueError(f"no references for {len(missing)} clip(s), e.g. {missing[:3]}")
    if not ids:
        raise ValueError("no candidates")
    res = {i: [tokenize(candidates[i])] for i in ids}
    gts = {i: [tokenize(r) for r in references[i]] for i in ids}
    with contextlib.redirect_stdout(io.StringIO()):  # the BLEU scorer prints its counts
        bleu, bleu_per = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, rouge_per = Rouge().compute_score(gts, res)
    cider, cider_per = Cider().compute_score(gts, res)
    out = {"bleu_1": float(bleu[0]), "bleu_4": float(bleu[3]), "rouge_l": float(rouge), "cider": float(cider),
           "n": len(ids)}  # fmt: skip
    per = {i: {"bleu_1": float(bleu_per[0][k]), "bleu_4": float(bleu_per[3][k]), "rouge_l": float(rouge_per[k]),
               "cider": float(cider_per[k])} for k, i in enumerate(ids)}  # fmt: skip
    if embedding:
        from model.score import MiniLM

        enc = encode or MiniLM.encode
        refs = [(i, r) for i in ids for r in references[i]]
        e = enc([candidates[i] for i in ids] + [r for _, r in refs])  # one call: one embedding space
        e_c, e_r = e[: len(ids)], e[len(ids):]
        best = {i: -1.0 for i in ids}
        pos = {i: k for k, i in enumerate(ids)}
        for (i, _), v in zip(refs, e_r, strict=True):
            best[i] = max(best[i], float(np.dot(e_c[pos[i]], v)))
        for i in ids:
            per[i]["embedding"] = best[i]
        out["embedding"] = float(np.mean([best[i] for i in ids]))
    out["per_clip"] = per
    return out
