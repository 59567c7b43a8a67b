"""Reading a question: what it asks, the options it offers, the facts it mentions itself."""

from __future__ import annotations

import re
from functools import lru_cache

from model.facts.answer import parse_answer
from model.facts.core import QuestionInfo
from model.facts.words import _LIMB_OF, _LIMB_WORDS, _SIDE_OF, prepare
from schemas import vocabulary as V

__all__ = ["parse_question"]


_AUX = re.compile(r"^(?:is|are|was|were|does|do|did|can|could|has|have|had|will|would|should|may|might)\b")
_WH = re.compile(r"\b(?:which|what|how|where|when|who|why)\b")
# a wh-word that asks (at a clause's start: "…, and which way?"), not one inside a yes/no question ("does the
# person finish where they began?")
_WH_ASKS = re.compile(r"(?:^|[,;:]\s*|\b(?:and|or)\s+)(?:which|what|how|where|when|who|why)\b")
_OPTIONS = re.compile(r"(?:^|\s|\()([a-e])\)\s*(.+?)(?=\s+\(?[a-e]\)\s|$)")
_ACTIVITY = re.compile(r"\bwhat (?:is|are) (?:the person|the man|the woman|they|he|she) (?:most likely |probably |"
                       r"likely )?doing\b|\bwhat (?:activity|action)\b|\bwhat (?:might|could|may) (?:the person|they|he|"
                       r"she) be doing\b|\bwhat does (?:the person|he|she) do\b(?! (?:after|before|first|next|then))")  # fmt: skip
_CATEGORY_ASKS = {"direction": ("direction", "turn"), "body_part": ("body_part",), "counting": ("count",),
                  "sequentiality": ("event", "order"), "hallucination": ("yes_no",)}  # fmt: skip


@lru_cache(maxsize=8192)
def parse_question(question: str, category: str | None = None) -> QuestionInfo:
    """What ``question`` asks (``QuestionInfo``); ``category`` decides when the wording does not. Cached:
    treat the result as read-only."""
    q = prepare(question)
    info = QuestionInfo(q)
    opts = list(_OPTIONS.finditer(q))
    if len(opts) >= 2:
        info.options = {m.group(1).upper(): re.sub(r"[\s,;.?]+(?:or)?$", "", m.group(2)).strip() for m in opts}
        q = q[: opts[0].start()].strip()
        info.asks.add("option")
    info.yes_no = bool(re.match(r"^true or false\b", q) or "yes or no" in q or
                       (_AUX.match(q) and not _WH_ASKS.search(q) and not info.options))  # fmt: skip
    info.opens_yes_no = info.yes_no or bool(_AUX.match(q))
    alternatives = _AUX.match(q) and re.search(r"\bor\b", q) and not re.match(r"^true or false\b", q) and \
        "yes or no" not in q  # fmt: skip
    if alternatives:  # "Does the person turn to the left or to the right?" asks which, not whether
        info.yes_no = False
    if info.yes_no:
        info.asks.add("yes_no")
    info.count_question = bool(re.search(r"\bhow (?:many|often)\b|\bnumber of\b|\bcount\b", q)) and \
        not re.search(r"\bhow many (?:degrees|seconds|metres|meters|steps)\b", q)  # fmt: skip
    if not info.yes_no and not info.options:
        _open_question_asks(info, q, bool(alternatives))
    info.facts = parse_answer(q, None)
    _offered_and_anchor(info, q)
    limbs = {_LIMB_OF[v] for v in V.BODY_PARTS if _SIDE_OF[v]}
    named = {limb for limb in limbs if re.search(rf"\b{limb}s?\b", q)} | \
            {_LIMB_WORDS[w] for w in re.findall(r"[a-z]+", q) if w in _LIMB_WORDS}  # fmt: skip
    info.limb = next(iter(named)) if len(named) == 1 else None
    if not info.asks and category in _CATEGORY_ASKS:
        info.asks = set(_CATEGORY_ASKS[category])
    return info


def _open_question_asks(info: QuestionInfo, q: str, alternatives: bool) -> None:
    """What a question that is neither yes/no nor multiple choice asks, from its wording."""
    if info.count_question:
        info.asks.add("count")
    if re.search(r"\bhow (?:far|much distance)\b|\bwhat distance\b|\bhow many (?:metres|meters)\b", q):
        info.asks.add("m")
    if re.search(r"\bhow (?:fast|quickly|slowly)\b|\bwhat (?:speed|pace)\b|\bat what (?:speed|pace)\b", q):
        info.asks.add("pace")
    if re.search(r"\bhow long\b|\bhow many seconds\b|\bwhen\b", q):
        info.asks.add("s")
    if re.search(r"\bhow many degrees\b|\bby how much\b|\bhow (?:much|far) does (?:the person|he|she|they) turn", q):
        info.asks.add("deg")
    elif re.search(r"\bturn", q) and (_WH.search(q) or alternatives):
        info.asks.add("turn")
    elif re.search(r"\b(?:which|what) (?:direction|way)\b|\bwhere (?:does|do|did|is|are) (?:the person|he|she|they)"
                   r" (?:go|travel|move|head|walk|run)|\bin which direction\b", q):
        info.asks.add("direction")
    if re.search(r"\b(?:which|what) (?:body )?(?:part|limb|arm|leg|hand|foot|side)\b", q):
        info.asks.add("body_part")
    first = re.search(r"\b(?:which|what) (?:\w+ )*?(?:comes?|happens?|is|occurs?|starts?) (first|earlier|"
                      r"last|later|second)\b|\bwhich (?:\w+ )*?first\b|\bin (?:what|which) order\b", q)  # fmt: skip
    if first:
        info.which = "last" if first.group(1) in ("last", "later", "second") else "first"
        info.asks |= {"order"}
    if re.search(r"\b(?:start|beginning)\b.*\bend\b", q) and _WH.search(q):
        info.asks.add("order")  # "Which body part leads at the start, and which one at the end?"
    anchor = re.search(r"\b(after|before|following)\b", q)
    if anchor and _WH.search(q):
        info.asks |= {"event", "order"}
    elif _ACTIVITY.search(q):
        info.asks.add("activity")  # the answer must name what the reference says the person does


def _offered_and_anchor(info: QuestionInfo, q: str) -> None:
    """The values a "…X or Y?" question offers, and the event a "what … after/before X?" question anchors on."""
    if re.search(r"\bor\b", q) and not info.yes_no and not info.options:
        offered = {k: len(getattr(info.facts, k)) for k in ("turn", "direction", "event", "body_part")}
        kind, n = max(offered.items(), key=lambda kv: kv[1])
        if n >= 2:
            info.alternatives = n
            info.asks.add("order" if re.search(r"\b(?:first|last|earlier|later|before|after)\b", q) else kind)
            if "order" in info.asks and not info.which:
                info.which = "last" if re.search(r"\b(?:last|later)\b", q) else "first"
    if anchor_events := [e for e in info.facts.order]:
        m = re.search(r"\b(after|before|following)\b", q)
        if m and not info.yes_no:
            info.anchor = (anchor_events[0], "before" if m.group(1) == "before" else "after")
