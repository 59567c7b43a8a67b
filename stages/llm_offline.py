"""The offline annotator backend: deterministic answers from the kinematic facts (``stages/annotate.py``),
no network, in the same :class:`~stages.llm_reply.AnswerResult` form as the OpenAI-compatible client's."""

from __future__ import annotations

from stages.annotate import ClipRequest, offline_answer, offline_caption, offline_video_answer
from stages.llm_reply import AnswerResult

__all__ = ["OFFLINE_MODEL", "OfflineAnnotator"]

OFFLINE_MODEL = "movid-offline-v1"


class OfflineAnnotator:
    name = "offline"

    def __init__(self, qa_per_clip: int, seed: int = 0):
        self.qa_per_clip, self.seed = qa_per_clip, seed
        self.params = {"qa_per_clip": qa_per_clip}

    def answer_all(self, requests: list[ClipRequest], kind: str = "motion") -> list[AnswerResult]:
        if kind in ("video", "video_qa"):  # video_qa: the same QA, from the re-caption and the human captions
            answers = [offline_video_answer(r, self.qa_per_clip, self.seed) for r in requests]
            if kind == "video_qa":
                answers = [{"qa": a["qa"]} for a in answers]
            return [AnswerResult(a, model=OFFLINE_MODEL) for a in answers]
        if kind == "caption":
            return [AnswerResult(offline_caption(r, self.seed), model=OFFLINE_MODEL) for r in requests]
        return [AnswerResult(offline_answer(r, self.qa_per_clip, self.seed), model=OFFLINE_MODEL) for r in requests]
