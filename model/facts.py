"""The facts an answer states, read with the annotator's vocabulary (``schemas/vocabulary.py``), and how a
prediction's facts compare with a reference's: what the offline judge (``model/judge.py``) decides on.

Facts: yes/no, multiple-choice option, direction of travel, turn, side, body part, event (present or
negated), count, pace, order of events or body parts, and numbers with units (metres, seconds, m/s,
degrees). :func:`parse_answer` reads them in context: the vocabulary's mentions (``mentions``) and then
rules for the words that mean two things — "back" (a body part after "the"/"their", a direction after a
travel verb), "head" (a verb in "they head left"), "left" (a verb in "nothing is left"), "right" (a yes
only as a bare opener of a yes/no answer), "still" (a pace, not "still moving"), "no" (a count before a
noun, a yes/no as an opener), "once" (a count, or a conjunction at a clause's start) — and negation
("does not jump" states the jump absent and its count 0; "does not move" states in place).

:func:`compare` says whether the prediction contradicts the reference in any fact, omits a fact the
question asks about, agrees on every asked fact, or has nothing structured to say (then the judge falls
back to text similarity). Numbers match within :data:`TOLERANCE`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache

from schemas import vocabulary as V

__all__ = ["MAX_CHARS", "TOLERANCE", "Facts", "QuestionInfo", "Verdict", "compare", "facts_from_record", "parse_answer",
           "parse_question", "prepare"]  # fmt: skip

# Numbers agree when |pred - ref| <= max(relative * |ref|, absolute), per unit. A model that says "about 2.5 m"
# for 2.74 m or "90 degrees" for 88 is right; one that says 5 m for 2.74 m is not. Counts are exact.
TOLERANCE: dict[str, tuple[float, float]] = {"m": (0.25, 0.3), "s": (0.25, 0.5), "m/s": (0.25, 0.15),
                                             "deg": (0.25, 20.0)}  # fmt: skip

# An answer is read up to this many characters: answers are a sentence or two, and a predictions file is
# untrusted input (a megabyte of "not not not …" must not cost the judge minutes).
MAX_CHARS = 4000

# ------------------------------------------------------------------------------------------------ words

_SIDE_OF = {v: (v.split()[0] if v.split()[0] in V.SIDES else None) for v in V.BODY_PARTS}
_LIMB_OF = {v: (" ".join(v.split()[1:]) if _SIDE_OF[v] else v) for v in V.BODY_PARTS}
# Unsided words for a limb, read off the vocabulary's sided forms ("left hand" → "hand" is an arm word).
_LIMB_WORDS: dict[str, str] = {}
for _value, _forms in V.BODY_PARTS.items():
    if _SIDE_OF[_value]:
        for _form in _forms:
            _LIMB_WORDS[_form.split(" ", 1)[1]] = _LIMB_OF[_value]
_LIMB_WORDS |= {w + "s": limb for w, limb in list(_LIMB_WORDS.items())} | {"feet": "leg"}
# Parts of a limb the vocabulary does not list; what a model may say for them.
_LIMB_WORDS |= {"thigh": "leg", "thighs": "leg", "shin": "leg", "shins": "leg", "calf": "leg", "toe": "leg",
                "toes": "leg", "forearm": "arm", "forearms": "arm", "fingers": "arm", "palm": "arm"}  # fmt: skip
_TORSO = next(v for v in V.BODY_PARTS if _SIDE_OF[v] is None)
_TORSO_WORDS = {"neck", "pelvis", "waist", "abdomen"}

_NEGATIONS = {"not", "never", "no", "without", "nor", "neither", "none", "nothing", "nowhere"}
_CLAUSE_WORDS = {"but", "and", "then", "while", "whereas", "although", "though", "however", "instead", "rather",
                 "so", "before", "after", "until"}  # fmt: skip
_CLAUSE_PUNCT = {",", ";", ".", ":", "!", "?", "(", ")", '"', "-"}
_SENTENCE_PUNCT = {".", "!", "?", ";"}
_TURN_STEMS = ("turn", "rotat", "spin", "pivot", "swivel", "twist")
_POSTURE_STEMS = ("lean", "bend", "bent", "tilt", "bow", "reach", "stretch", "swing", "swung", "point", "look",
                  "fac", "kick", "punch", "extend", "wave", "wav", "rais", "lift", "throw", "push", "pull", "nod",
                  "glanc", "gaz", "stare", "tip")  # fmt: skip
_TRAVEL_VERBS = {"move", "moves", "moving", "moved", "travel", "travels", "traveling", "travelling", "traveled",
                 "travelled", "go", "goes", "going", "went", "step", "steps", "stepping", "stepped", "head", "heads",
                 "heading", "headed", "shift", "shifts", "shifting", "drift", "drifts", "drifting", "proceed",
                 "proceeds", "advance", "advances", "advancing", "progress", "progresses", "locomotes", "wander",
                 "wanders", "shuffle", "shuffles", "shuffling", "back", "backs", "slide", "slides", "sidestep",
                 "sidesteps", "strafe", "strafes", "come", "comes", "coming", "relocate", "relocates"}  # fmt: skip
_STOP_CONTEXT = {"stay", "stays", "staying", "stayed", "remain", "remains", "remaining", "is", "are", "was", "were",
                 "be", "like", "that", "which", "who"}  # fmt: skip
_POSSESSIVE = {"the", "their", "his", "her", "its", "a", "lower", "upper", "my", "your", "one's", "person's"}
_SUBJECTS = {"they", "he", "she", "it", "who", "person", "man", "woman", "figure", "someone", "then", "and"}
_TRAVEL_WORDS = re.compile(r"\b(?:travel(?:s|led|ed|ing|ling)?|locomot\w*|covers? (?:some )?(?:ground|distance)|"
                           r"moves? (?:around|away|about the (?:room|space))|walks? around|goes somewhere|"
                           r"changes? (?:position|location))\b")  # fmt: skip
_IN_PLACE_WORDS = re.compile(r"\b(?:(?:in|on|at) the same (?:place|spot|position|location)|in one spot|"
                             r"on one spot|nowhere|(?:stays?|remains?|stands?) "
                             r"where (?:they|he|she) (?:are|is|started|stood|began|were|was)|"
                             r"(?:stays?|remains?|staying|remaining) (?:there|in position|at the spot))\b")  # fmt: skip
_VAGUE_COUNT = re.compile(r"\b(?:several|many|multiple|a few|a number of|repeatedly|numerous|a lot of|lots of|"
                          r"again and again|more than once)\b")  # fmt: skip
_UNITS = {"m": ("m", 1.0), "meter": ("m", 1.0), "meters": ("m", 1.0), "metre": ("m", 1.0), "metres": ("m", 1.0),
          "cm": ("m", 0.01), "centimeters": ("m", 0.01), "centimetres": ("m", 0.01), "s": ("s", 1.0),
          "sec": ("s", 1.0), "secs": ("s", 1.0), "second": ("s", 1.0), "seconds": ("s", 1.0), "m/s": ("m/s", 1.0),
          "mps": ("m/s", 1.0), "km/h": ("m/s", 1 / 3.6), "kph": ("m/s", 1 / 3.6), "degree": ("deg", 1.0),
          "degrees": ("deg", 1.0), "deg": ("deg", 1.0)}  # fmt: skip
_PER_SECOND = re.compile(r"\b(meters?|metres?|m) per (?:second|sec|s)\b")
# The vocabulary's number words that are plain numbers ("no" is handled apart: a count only before a noun).
_NUMBER_WORDS = {w: n for w, n in V.NUMBER_WORDS.items() if " " not in w and w not in ("no", "once", "twice", "thrice",
                                                                                       "none")}  # fmt: skip
_NUMBER_WORDS |= {"eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20, "thirty": 30, "forty": 40,
                  "fifty": 50, "sixty": 60, "ninety": 90, "hundred": 100}  # fmt: skip
_ADVERB_COUNTS = {w: n for w, n in V.NUMBER_WORDS.items() if w in ("once", "twice", "thrice")}
_OPENER_FILLERS = re.compile(r"^(?:(?:well|so|hmm|ok|okay|i think|i believe|i would say|i'd say|it seems|it looks like|"
                             r"seemingly|probably|likely|most likely|apparently|the answer is|my answer is|answer|"
                             r"that is|this is|it is|the statement is|the claim is)\b[\s,:]*)+")  # fmt: skip
_ORDER_REVERSE = {"after", "following"}  # "X after Y": Y happens first
_FIRST_MARKERS = re.compile(r"\b(?:first|firstly|initially|at first|to begin with|at the (?:start|beginning)|"
                            r"begins? with|starts? with|comes? first|happens? first|is first|earliest)\b")  # fmt: skip
_LAST_MARKERS = re.compile(r"\b(?:last|lastly|finally|at the end|ends? with|comes? (?:second|last|later)|"
                           r"happens? (?:second|last|later)|is (?:second|last)|latest)\b")  # fmt: skip

# ------------------------------------------------------------------------------------------------ text


def prepare(text: str) -> str:
    """Lowercase, contractions expanded ("doesn't" → "does not"), hyphens between words and number ranges
    spelled out, units split from their numbers ("2.5m" → "2.5 m"), whitespace collapsed."""
    t = (text or "").lower()
    t = t.translate({0x2019: "'", 0x2018: "'", 0x201C: '"', 0x201D: '"', 0x2013: "-", 0x2014: " - ", 0xB0: " degrees "})
    t = re.sub(r"\bcan't\b", "can not", t)
    t = re.sub(r"\bwon't\b", "will not", t)
    t = re.sub(r"n't\b", " not", t)
    t = re.sub(r"\b(it|that|what|there|he|she|this)'s\b", r"\1 is", t)
    t = re.sub(r"\b(they|you|we)'re\b", r"\1 are", t)
    t = re.sub(r"(?<=[a-z])-(?=[a-z])", " ", t)
    t = re.sub(r"(?<=\d),(?=\d{3}\b)", "", t)
    t = re.sub(r"(?<=\d)\s*-\s*(?=\d)", " to ", t)
    t = re.sub(r"(?<=\d)(m/s|km/h|cm|m|s|sec|secs|deg)\b", r" \1", t)
    t = _PER_SECOND.sub("m/s", t)
    return " ".join(t.split())


_TOKEN = re.compile(r"km/h|m/s|\d+(?:\.\d+)?|[a-z]+(?:'[a-z]+)?|[^\sa-z0-9]")


@dataclass
class _Tok:
    text: str
    start: int
    end: int


def _tokens(t: str) -> list[_Tok]:
    return [_Tok(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(t)]


def _number(word: str) -> float | None:
    if re.fullmatch(r"\d+(?:\.\d+)?", word):
        return float(word)
    return float(_NUMBER_WORDS[word]) if word in _NUMBER_WORDS else None


# ------------------------------------------------------------------------------------------------ facts


@dataclass
class Facts:
    """What one answer states. ``neg`` holds values stated absent or denied ("does not jump": event jump)."""

    yes_no: str | None = None
    option: str | None = None
    direction: set = field(default_factory=set)  # DIRECTIONS keys, or "travel" (moves, direction not said)
    turn: set = field(default_factory=set)  # TURNS keys, or "around" / "some" (turns, side not said)
    body_part: set = field(default_factory=set)  # (side or None, limb)
    side: set = field(default_factory=set)  # a bare side ("the left one")
    event: set = field(default_factory=set)
    pace: set = field(default_factory=set)
    count: dict = field(default_factory=dict)  # event (or None) -> int
    vague_count: bool = False  # "several", "a few": more than one, number not said
    quantity: dict = field(default_factory=dict)  # unit -> [values]
    neg: dict = field(default_factory=dict)  # kind -> set of denied values
    order: list = field(default_factory=list)  # items (events / body parts) in time order
    first: str | None = None
    last: str | None = None
    implied_parts: set = field(default_factory=set)  # a raised hand is the arm moving

    def states(self, kind: str) -> bool:
        """Whether the answer states a fact of ``kind`` (a field name, a unit, "count" or "order")."""
        if kind == "count":
            return bool(self.count)
        if kind in TOLERANCE:
            return bool(self.quantity.get(kind))
        if kind == "order":
            return len(self.relations()) > 0 or self.first is not None or self.last is not None
        value = getattr(self, kind)
        return bool(value) if not isinstance(value, str) else True

    def relations(self) -> set[tuple[str, str]]:
        """(a, b) for every a said to happen before b (pairs said both ways are dropped)."""
        order = [_order_key(x) for x in self.order]
        rel = {(a, b) for i, a in enumerate(order) for b in order[i + 1:] if a != b}
        return {(a, b) for a, b in rel if (b, a) not in rel}


def _order_key(item: str | None) -> str | None:
    """What an order item is about: a raised hand is its arm ("first the left hand goes up, then the right
    arm" orders the two arms)."""
    if item and item.endswith("above head"):
        return f"{item.split()[0]} arm"
    return item


@dataclass
class QuestionInfo:
    """What a question asks: ``asks`` (kinds the answer must state), ``yes_no`` (a yes/no or true/false
    question), ``options`` (letter → option text of a multiple-choice question), ``limb`` (the one limb it
    names, for "the left one"), ``facts`` (what the question itself mentions: a prediction may repeat it),
    ``anchor`` ((event, "after"|"before") of "what does the person do after the jump?"), ``which`` ("first" or
    "last" of "which comes first?")."""

    text: str
    asks: set = field(default_factory=set)
    yes_no: bool = False
    options: dict = field(default_factory=dict)
    limb: str | None = None
    facts: Facts = field(default_factory=Facts)
    anchor: tuple | None = None
    which: str | None = None
    count_question: bool = False
    opens_yes_no: bool = False  # starts like a yes/no question ("Does the person turn, and which way?")
    alternatives: int = 0  # the values offered by "…X or Y?" ("Does the person turn to the left or to the right?")


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
    info.facts = parse_answer(q, None)
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
    limbs = {_LIMB_OF[v] for v in V.BODY_PARTS if _SIDE_OF[v]}
    named = {limb for limb in limbs if re.search(rf"\b{limb}s?\b", q)} | \
            {_LIMB_WORDS[w] for w in re.findall(r"[a-z]+", q) if w in _LIMB_WORDS}  # fmt: skip
    info.limb = next(iter(named)) if len(named) == 1 else None
    if not info.asks and category in _CATEGORY_ASKS:
        info.asks = set(_CATEGORY_ASKS[category])
    return info


def _clause_bounds(toks: list[_Tok]) -> list[int]:
    """Clause number of each token (a new clause after punctuation or a clause word)."""
    out, k = [], 0
    for t in toks:
        if t.text in _CLAUSE_PUNCT or t.text in _CLAUSE_WORDS:
            k += 1
            out.append(k)
            k += 1
        else:
            out.append(k)
    return out


def _sentence_ids(toks: list[_Tok]) -> list[int]:
    out, k = [], 0
    for t in toks:
        out.append(k)
        if t.text in _SENTENCE_PUNCT:
            k += 1
    return out


@dataclass
class _M:
    kind: str
    value: object
    i: int  # first token
    j: int  # one past the last token
    neg: bool = False


def _vocab_mentions(t: str, toks: list[_Tok]) -> list[_M]:
    starts = {tok.start: k for k, tok in enumerate(toks)}
    ends = {tok.end: k + 1 for k, tok in enumerate(toks)}
    out = []
    for kind, value, s, e in V.mentions(t):
        if s in starts and e in ends:
            out.append(_M(kind, value, starts[s], ends[e]))
    return out


_YES_NO_LONGEST_FIRST = sorted(V.YES_WORDS + V.NO_WORDS, key=len, reverse=True)


def _yes_no_opener(t: str, q: QuestionInfo | None) -> tuple[str | None, int]:
    """(yes|no|None, characters consumed) from the answer's opening words."""
    head = _OPENER_FILLERS.sub("", t).lstrip(" \"'(")
    skipped = len(t) - len(head)
    yes_no_q = q is not None and q.opens_yes_no
    for word in _YES_NO_LONGEST_FIRST:
        if not re.match(rf"{re.escape(word)}(?![a-z])", head):
            continue
        rest = head[len(word):].lstrip()
        bare = rest == "" or rest[0] in ",.;:!-"
        if word == "right" and not (bare and yes_no_q):
            return None, 0  # "Right arm." is a side
        if not yes_no_q and not bare:
            return None, 0  # "No jumps." answering "how many" is a count, "not the left arm" a denial
        if q is not None and q.count_question and word in ("no", "none", "never"):
            return None, 0  # "No." to "how many times…" is a count of zero
        # a bare opener ("No, …", "Right.") is used up; "They do not jump." is read on for its facts
        return ("yes" if word in V.YES_WORDS else "no"), (skipped + len(word) if bare else 0)
    return None, 0


def _parse_quantities(t: str) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    t = re.sub(r"\b(\d+|" + "|".join(_NUMBER_WORDS) + r") and a half\b", lambda m: f"{_number(m.group(1)) + 0.5:g}", t)
    t = re.sub(r"\bhalf an? (?=metre|meter|second)", "0.5 ", t)
    num = r"(\d+(?:\.\d+)?|" + "|".join(sorted(_NUMBER_WORDS, key=len, reverse=True)) + r")"
    unit = r"(" + "|".join(re.escape(u) for u in sorted(_UNITS, key=len, reverse=True)) + r")(?![a-z/])"
    pat = re.compile(rf"(?<![a-z0-9.]){num}(?:\s+(?:to|and|or)\s+{num})?\s+{unit}")
    for m in pat.finditer(t):
        u, scale = _UNITS[m.group(3)]
        for g in (m.group(1), m.group(2)):
            if g is not None:
                out.setdefault(u, []).append(_number(g) * scale)
    for m in re.finditer(r"\b(?:a |an )?(quarter|half|full) (?:turn|circle|rotation)\b|\bturns? around\b|"
                         r"\babout face\b|\bu turn\b", t):  # fmt: skip
        deg = {"quarter": 90.0, "half": 180.0, "full": 360.0}.get(m.group(1) or "", 180.0)
        out.setdefault("deg", []).append(deg)
    return out


def parse_answer(text: str, question: QuestionInfo | None = None) -> Facts:
    """The facts ``text`` states (an answer to ``question``, which decides how a bare "yes"-like opener,
    "the left one" or a bare number are read)."""
    t = prepare((text or "")[:MAX_CHARS])
    f = Facts()
    if question is not None and question.options:
        f.option = _option_letter(t, question)
    yn, consumed = _yes_no_opener(t, question)
    f.yes_no = yn
    toks = _tokens(t)
    clause = _clause_bounds(toks)
    sent = _sentence_ids(toks)
    opener_end = next((k for k, tok in enumerate(toks) if tok.start >= consumed), len(toks)) if consumed else 0
    ms = [m for m in _vocab_mentions(t, toks) if m.i >= opener_end]
    words = [tok.text for tok in toks]
    covered = set()
    for m in ms:
        covered |= set(range(m.i, m.j))

    def prev_words(i: int, n: int = 4) -> list[str]:
        out = []
        for k in range(i - 1, max(-1, i - 1 - n), -1):
            if clause[k] != clause[i]:
                break
            out.append(words[k])
        return out

    kept: list[_M] = []
    folded = -1  # mentions up to this token were folded into the one before ("does not turn" + "left")
    for m in ms:
        if m.i < folded:
            continue
        w0 = words[m.i]
        nxt = words[m.j] if m.j < len(words) else ""
        before = prev_words(m.i)
        if m.kind == "body_part" and m.value == _TORSO and w0 in ("head", "heads") and m.j - m.i == 1:
            if (before and before[0] in _SUBJECTS | {"to", "will", "then"}) or nxt in {
                    "to", "toward", "towards", "forward", "forwards", "back", "backward", "backwards", "off", "out",
                    "left", "right", "straight", "over", "into", "away", "home", "for", "in", "down", "up"}:
                covered.add(m.i)
                f.direction.add("travel")
                continue  # "they head to the left": a verb
            if before[:2] in (["the", "above"], ["the", "over"], ["their", "above"], ["their", "over"], ["his", "above"],
                              ["her", "above"], ["his", "over"], ["her", "over"]) or (before and before[0] in (
                                  "above", "overhead")):  # fmt: skip
                continue  # "above the head": where a hand goes, not a body part
        if m.kind == "direction" and m.value in V.SIDES:
            if nxt in ("side", "one", "ones") or nxt in _LIMB_WORDS:  # "the left one", "left thigh"
                if nxt in _LIMB_WORDS:
                    kept.append(_M("body_part", (m.value, _LIMB_WORDS[nxt]), m.i, m.j + 1))
                    covered.add(m.j)
                else:
                    kept.append(_M("side", m.value, m.i, m.j))
                continue
            if nxt == "and" and m.j + 2 < len(words) and words[m.j + 1] in V.SIDES and words[m.j + 2] in _LIMB_WORDS:
                limb = _LIMB_WORDS[words[m.j + 2]]
                kept += [_M("body_part", (s, limb), m.i, m.j + 3) for s in V.SIDES]
                covered |= {m.j, m.j + 1, m.j + 2}
                continue
            if w0 == "left" and m.j - m.i == 1 and before and before[0] in {
                    "is", "was", "are", "were", "be", "been", "has", "have", "had", "gets", "got", "nothing", "none"}:
                continue  # "nothing is left": a verb
        if m.kind == "direction" and m.value in V.SIDES and kept and kept[-1].kind == "turn" and \
                kept[-1].value in V.SIDES and set(words[kept[-1].j: m.i]) <= {"or", "and", ",", "not", "then"}:
            kept.append(_M("turn", m.value, m.i, m.j))  # "turn to the left or to the right"
            continue
        if m.kind == "direction":
            near = []  # the words before it, back to its verb's subject
            for w in before[:3]:
                if w in _SUBJECTS or w in _STOP_CONTEXT:
                    break
                near.append(w)
            turn_first = next((w for w in near if w.startswith(_TURN_STEMS) or w.startswith(_POSTURE_STEMS)
                               or w in _TRAVEL_VERBS), None)  # fmt: skip
            if turn_first and turn_first.startswith(_TURN_STEMS) and turn_first not in _TRAVEL_VERBS:
                if m.value in V.SIDES:
                    kept.append(_M("turn", m.value, m.i, m.j))
                continue  # "rotates to the left": a turn; "turns forward": nothing
            if turn_first and turn_first.startswith(_POSTURE_STEMS) and turn_first not in _TRAVEL_VERBS:
                continue  # "leans forward", "looks to the left": not travel
            if question is not None and "turn" in question.asks and m.value in V.SIDES and turn_first is None:
                kept.append(_M("turn", m.value, m.i, m.j))  # "Which way does the person turn?" → "To the left."
                continue
        if m.kind == "pace" and m.value == "still" and w0 == "still" and m.j - m.i == 1:
            if nxt.endswith("ing") or nxt in {"moves", "move", "walks", "walk", "runs", "travels", "goes", "there",
                                              "has", "have", "is", "are", "does", "do", "in", "on", "a", "the"}:
                continue  # "still moving": an adverb
        if m.kind == "turn" and m.value == "none" and nxt in V.SIDES:
            kept.append(_M("turn", nxt, m.i, m.j + 1, neg=True))  # "does not turn left"
            covered.add(m.j)
            folded = m.j + 1
            continue
        kept.append(m)
    # words the vocabulary does not have: "back", unsided limbs, plural limbs
    for k, w in enumerate(words):
        if k in covered or k < opener_end:
            continue
        before = prev_words(k)
        nxt = words[k + 1] if k + 1 < len(words) else ""
        if w == "back":
            if nxt == "and" and k + 2 < len(words) and words[k + 2] == "forth":
                continue
            if before and (before[0] in _TRAVEL_VERBS or before[0] in ("walking", "walks", "walk", "runs", "run",
                                                                        "running", "jumps", "jump", "hops")):
                kept.append(_M("direction", "backward", k, k + 1))
            elif before and before[0] in _POSSESSIVE:
                kept.append(_M("body_part", (None, _TORSO), k, k + 1))
            continue
        if w in _TORSO_WORDS and before and before[0] in _POSSESSIVE:
            kept.append(_M("body_part", (None, _TORSO), k, k + 1))
            continue
        if w in _LIMB_WORDS:
            limb = _LIMB_WORDS[w]
            plural = w.endswith("s") or w == "feet"
            sides = [None]  # "the arm"
            if (before and before[0] == "both") or (plural and (not before or before[0] in {
                    "the", "their", "his", "her", "two", "its"})):  # fmt: skip
                sides = list(V.SIDES)  # "both arms", "the legs"
            kept += [_M("body_part", (s, limb), k, k + 1) for s in sides]
    kept.sort(key=lambda m: (m.i, m.j))
    covered = set()
    for m in kept:
        covered |= set(range(m.i, m.j))
    # negation: from a negation word outside any mention to the end of its clause
    negated, active = [False] * len(toks), False
    for k, w in enumerate(words):
        if k and clause[k] != clause[k - 1]:
            active = False
        negated[k] = active
        if w in _NEGATIONS and k not in covered and k >= opener_end:
            active = True
    for m in kept:
        m.neg = m.neg or negated[m.i]
    _fill(f, kept, t, toks, words, clause, sent, negated, covered, question)
    if question is not None and question.yes_no and f.yes_no is None:
        f.yes_no = _implicit_yes_no(f, kept, words, sent, question)
    if question is not None and question.yes_no and f.yes_no == "no":
        _deny_proposition(f, question.facts)  # "No, the left arm does not move the most then."
    if question is not None and "pace" in question.asks and not f.pace and \
            re.search(r"\b(?:hardly|barely|scarcely)\b", t):  # fmt: skip
        f.pace.add("still")  # "How fast …?" → "Hardly at all."
    if question is not None and "turn" in question.asks and not f.turn and not f.neg.get("turn") and f.yes_no:
        f.turn.add("none" if f.yes_no == "no" else "some")  # "Does the person turn, and which way?" → "No."
    if question is not None and question.options and f.option is None:
        f.option = _option_by_content(f, question)
    return f


def _deny_proposition(f: Facts, asked: Facts) -> None:
    """A "no" to a yes/no question denies what the question proposes, also where the answer repeats it before
    its negation ("No, the left arm does not move the most"): those values move from stated to denied."""
    for kind in ("direction", "turn", "event", "body_part", "pace"):
        said = getattr(f, kind) & getattr(asked, kind)
        if said:
            getattr(f, kind).difference_update(said)
            f.neg.setdefault(kind, set()).update(said)


def _option_by_content(f: Facts, q: QuestionInfo) -> str | None:
    """The one option whose facts the answer states without contradicting them ("They move backward." → B)."""
    plain = QuestionInfo("")
    fits = [k for k, text in q.options.items() if _shared(opt := parse_answer(text), f)
            and compare(opt, f, plain).status != "contradiction"]  # fmt: skip
    return fits[0] if len(fits) == 1 else None


def _implicit_yes_no(f: Facts, ms: list[_M], words: list[str], sent: list[int], q: QuestionInfo) -> str | None:
    """A yes/no answer without a yes/no word: "That is false." / "The person does not jump." (no) / "They
    jump twice." (yes, when it states what the question asks about)."""
    first = [w for k, w in enumerate(words) if sent[k] == 0]
    for w in first:
        if w in ("true", "correct"):
            return "yes"
        if w in ("false", "incorrect", "wrong"):
            return "no"
    in_first = [m for m in ms if sent[m.i] == 0]
    if any(w in _NEGATIONS for w in first) or any(m.neg for m in in_first):
        return "no"
    asked = q.facts
    for m in in_first:
        value = (_SIDE_OF[m.value], _LIMB_OF[m.value]) if m.kind == "body_part" and isinstance(m.value, str) else m.value
        if m.kind in ("event", "direction", "turn", "pace", "body_part") and value in getattr(asked, m.kind):
            return "yes"
    return None


def _option_letter(t: str, q: QuestionInfo) -> str | None:
    letters = "".join(q.options).lower()
    for pat in (rf"^\(?([{letters}])\)", rf"^\(?([{letters}])\s*[.:,]?\s*$", rf"^([{letters}])\s*[.:-]\s",
                rf"\b(?:option|answer|choice)(?: is)?:?\s*\(?([{letters}])\b", rf"\(([{letters}])\)",
                rf"(?:^|\s)([{letters}])\)"):  # fmt: skip
        m = re.search(pat, t)
        if m:
            return m.group(1).upper()
    return None


def _fill(f: Facts, ms: list[_M], t: str, toks, words, clause, sent, negated, covered, q: QuestionInfo | None):
    neg: dict[str, set] = {}
    for m in ms:
        value = m.value
        if m.kind == "body_part" and isinstance(value, str):
            value = (_SIDE_OF[value], _LIMB_OF[value])
        if m.neg:
            neg.setdefault(m.kind, set()).add(value)
            if m.kind == "event":
                f.count.setdefault(value, 0)
            continue
        if m.kind == "body_part":
            f.body_part.add(value)
        elif m.kind == "event":
            f.event.add(value)
            if value.endswith("above head"):
                f.implied_parts.add((value.split()[0], "arm"))
        elif m.kind in ("direction", "turn", "pace", "side"):
            getattr(f, m.kind).add(value)
    # a raised hand in words the vocabulary does not list: "lifts their left arm", "raises both hands up"
    for m in re.finditer(r"\b(?:raises?|raising|raised|lifts?|lifting|lifted|puts?|putting)\b(?: up)?(?: (?:the|their|his|"
                         r"her|its|both))? (?:(left|right) (?:hand|arm)|(hands|arms)(?= (?:up|above|over|overhead)))", t):  # fmt: skip
        k = next((i for i, tok in enumerate(toks) if tok.start >= m.start()), 0)
        if not negated[k]:
            for s in ([m.group(1)] if m.group(1) else V.SIDES):
                f.event.add(f"{s} hand above head")
                f.implied_parts.add((s, "arm"))
    f.neg = neg
    # travel without a direction, in place without the vocabulary's forms
    if _TRAVEL_WORDS.search(t) and not _negated_match(_TRAVEL_WORDS, t, toks, negated):
        f.direction.add("travel")
    if _IN_PLACE_WORDS.search(t):
        f.direction.add("in place")
    for k, w in enumerate(words):
        if w in _TRAVEL_VERBS - {"back", "head"} and negated[k]:
            rest = [m for m in ms if m.i > k and clause[m.i] == clause[k] and m.kind == "direction"]
            subject_part = any(m.kind == "body_part" and m.i < k and sent[m.i] == sent[k] for m in ms)
            if not rest and not subject_part:
                f.direction.add("in place")  # "does not move (much)", "does not go anywhere"
    if "still" in f.pace and not (f.direction - {"in place"}):
        f.direction.add("in place")  # standing still is not travelling
    if f.direction - {"travel", "in place"}:
        f.direction.discard("travel")  # a direction said is more than "travels"
    if re.search(r"\bturns? around\b|\babout face\b|\bu turn\b", t) and not f.turn - {"none"}:
        f.turn.add("around")
    if not f.turn and re.search(r"\b(?:turns|turned|turning|rotates|rotated|rotating|spins|spinning)\b", t) and \
            not any(negated[k] for k, w in enumerate(words) if w.startswith(("turn", "rotat", "spin"))):  # fmt: skip
        f.turn.add("some")
    # a bare side to a question that names one limb: "Which arm?" → "The left one."
    if f.side and not f.body_part and q is not None and q.limb:
        f.body_part |= {(s, q.limb) for s in f.side}
    f.quantity = _parse_quantities(t)
    _counts(f, t, toks, words, clause, sent, ms, q)
    if _VAGUE_COUNT.search(t) and not f.count:
        f.vague_count = True
    _order(f, t, toks, words, sent, ms, q)


def _negated_match(pattern: re.Pattern, t: str, toks, negated) -> bool:
    m = pattern.search(t)
    k = next((i for i, tok in enumerate(toks) if tok.start >= m.start()), None)
    return k is not None and negated[k]


def _counts(f: Facts, t: str, toks, words, clause, sent, ms: list[_M], q: QuestionInfo | None) -> None:
    events = [m for m in ms if m.kind == "event"]

    def nearest_event(k: int) -> str | None:
        same = [m for m in events if sent[m.i] == sent[k]]
        before = [m for m in same if m.i < k]
        if before:
            return before[-1].value
        return same[0].value if same else None

    for k, w in enumerate(words):
        nxt = words[k + 1] if k + 1 < len(words) else ""
        n = _number(w)
        if n is not None and nxt in ("time", "times") and not (k > 0 and words[k - 1] in ("at", "by")):
            f.count[nearest_event(k)] = int(n)
        elif w in _ADVERB_COUNTS:
            starts_clause = k == 0 or words[k - 1] in _CLAUSE_PUNCT or words[k - 1] in _CLAUSE_WORDS
            if w == "once" and (starts_clause and nxt not in ("", ".", ",", "!") or (k > 0 and words[k - 1] == "at")):
                continue  # "Once they land, …" / "at once"
            f.count[nearest_event(k)] = _ADVERB_COUNTS[w]
        elif (n is not None or w in ("a", "an", "single", "no", "zero")) and any(
                m.kind == "event" and m.i in (k + 1, k + 2) for m in ms):
            ev = next(m for m in ms if m.kind == "event" and m.i in (k + 1, k + 2))
            if w == "a" and not (words[k + 1] == "single" or (q is not None and q.count_question)):
                continue
            if ev.i == k + 2 and words[k + 1] not in ("single", "more", "separate", "full", "small", "big", "quick",
                                                       "short", "high", "low", "deep", "little", "total"):
                continue
            f.count[ev.value] = 0 if w in ("no", "zero") else 1 if n is None else int(n)
    if re.search(r"(?:^|[.,;:] )(?:none|zero|never)(?: at all| times?)?\s*[.!]?$", t) or \
            re.match(r"(?:none|zero|never|no|not once|not at all)(?: at all| times?)?\s*(?:[.!:;,]|$)", t):  # fmt: skip
        if q is not None and q.count_question and not f.count:
            f.count[None] = 0
    if not f.count and re.search(r"\ba (?:couple|pair) (?:of )?(?:times)?", t):
        f.count[nearest_event(0)] = 2
    if q is not None and q.count_question and not f.count:
        # a bare number answering "how many": "3.", "Three jumps.", "Just one."
        for k, w in enumerate(words):
            n = _number(w)
            nxt = words[k + 1] if k + 1 < len(words) else ""
            if n is not None and float(n).is_integer() and nxt not in _UNITS and nxt != "to":
                f.count[nearest_event(k)] = int(n)
                break


def _order(f: Facts, t: str, toks, words, sent, ms: list[_M], q: QuestionInfo | None) -> None:
    items: list[tuple[str, int]] = []
    for m in ms:
        if m.neg:
            continue
        if m.kind == "event":
            items.append((m.value, m.i))
        elif m.kind == "body_part":
            v = m.value if isinstance(m.value, str) else " ".join(x for x in m.value if x)
            items.append((v, m.i))
    seq: list[str] = []
    prev_k = -1
    pending_before = None  # "Before X, Y": Y comes first
    for idx, (item, k) in enumerate(items):
        between = words[prev_k + 1: k] if prev_k >= 0 else []
        lead = [w for w in words[(items[idx - 1][1] + 1) if idx else 0: k]]
        new_sentence = idx == 0 or sent[k] != sent[prev_k]
        if new_sentence:
            pending_before = None
            if "before" in lead:
                pending_before = item
            seq.append(item)
        elif pending_before is not None and not ({"then", "after"} & set(between)):
            seq.insert(seq.index(pending_before), item)
            pending_before = None
        elif _ORDER_REVERSE & set(between) and not ({"that", "this", "which", "wards"} & set(between)):
            at = max(i for i, x in enumerate(seq) if x == items[idx - 1][0])
            seq.insert(at, item)
        else:
            seq.append(item)
        prev_k = k
    f.order = [x for i, x in enumerate(seq) if i == 0 or seq[i - 1] != x]
    distinct = list(dict.fromkeys(f.order))
    if len(distinct) == 1:
        only = distinct[0]
        if _FIRST_MARKERS.search(t):
            f.first = only
        elif _LAST_MARKERS.search(t):
            f.last = only
        elif q is not None and q.which and len(items) >= 1:
            setattr(f, q.which, only)
    if q is not None and q.anchor is not None and len(distinct) >= 1 and len(distinct) <= 2:
        anchor, where = q.anchor
        others = [x for x in distinct if x != anchor]
        explicit = len(distinct) == 2 and len(f.relations()) > 0
        if others and not explicit:
            f.order = [anchor, others[0]] if where == "after" else [others[0], anchor]


# ------------------------------------------------------------------------------------------------ reference facts


def facts_from_record(record: dict | str | None, question: QuestionInfo) -> Facts | None:
    """Facts from a bench row's ``facts`` JSON (keys in ``schemas/instruction.py``), or None. With ``yes_no``
    the other keys describe the proposition asked about: a "no" denies them."""
    if record is None:
        return None
    if isinstance(record, str):
        try:
            record = json.loads(record)
        except ValueError:
            return None
    if not isinstance(record, dict) or not record:
        return None
    f = Facts()
    yn = record.get("yes_no")
    f.yes_no = yn if yn in ("yes", "no") else None  # the contract: set only for yes/no and true/false questions
    opt = record.get("option")
    f.option = opt.upper() if isinstance(opt, str) and question.options else None

    def values(key: str, table) -> list:
        v = record.get(key)
        v = [v] if isinstance(v, str) else v if isinstance(v, list) else []
        return [x for x in v if isinstance(x, str) and (table is None or x in table)]

    denied = f.yes_no == "no"
    target: dict[str, set] = {}
    for key, table in (("direction", V.DIRECTIONS), ("turn", V.TURNS), ("event", V.EVENTS), ("pace", V.PACES),
                       ("side", V.SIDES), ("body_part", V.BODY_PARTS)):  # fmt: skip
        for x in values(key, table):
            val = (_SIDE_OF[x], _LIMB_OF[x]) if key == "body_part" else x
            target.setdefault(key, set()).add(val)
    for key, vals in target.items():
        if denied:
            f.neg.setdefault(key, set()).update(vals)
        else:
            getattr(f, key).update(vals)
    if not denied:
        f.implied_parts = {(e.split()[0], "arm") for e in f.event if e.endswith("above head")}
    count = record.get("count")
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        ev = values("event", V.EVENTS)
        f.count[ev[0] if ev else None] = count
        if count == 0 and ev:
            f.event.discard(ev[0])
            f.neg.setdefault("event", set()).add(ev[0])
    order = values("order", None)
    if len(order) >= 2:
        f.order = list(order)
        if not denied:  # the items of a sequence are stated too
            f.event |= {x for x in order if x in V.EVENTS}
            f.body_part |= {(_SIDE_OF[x], _LIMB_OF[x]) for x in order if x in V.BODY_PARTS}
    for key, unit in (("distance_m", "m"), ("turn_deg", "deg"), ("speed_mps", "m/s"), ("duration_s", "s")):
        v = record.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            f.quantity.setdefault(unit, []).append(abs(float(v)) if unit == "deg" else float(v))
    times = record.get("times")
    if isinstance(times, list):
        for span in times:
            if isinstance(span, list) and all(isinstance(x, (int, float)) for x in span):
                f.quantity.setdefault("s", []).extend(float(x) for x in span)
    return f


# ------------------------------------------------------------------------------------------------ comparing


@dataclass
class Verdict:
    """``status``: contradiction | omission | agree | unstructured; ``reasons``: what decided it."""

    status: str
    reasons: list[str] = field(default_factory=list)


def _within(p: float, r: float, unit: str) -> bool:
    rel, absolute = TOLERANCE[unit]
    return abs(p - r) <= max(rel * abs(r), absolute) + 1e-9


def _part_compatible(p: tuple, r: tuple) -> bool:
    return p[1] == r[1] and (p[0] == r[0] or p[0] is None or r[0] is None)


def compare(ref: Facts, pred: Facts, q: QuestionInfo) -> Verdict:
    """How ``pred`` stands to ``ref`` for question ``q`` (module docstring)."""
    why: list[str] = []
    echo = q.facts
    # yes/no and options
    if ref.yes_no and pred.yes_no and ref.yes_no != pred.yes_no:
        why.append(f"says {pred.yes_no}, the reference {ref.yes_no}")
    if ref.option and pred.option and ref.option != pred.option:
        why.append(f"picks option {pred.option}, the reference {ref.option}")
    # directions: one direction of travel per answer; "travel" (unspecified) is only wrong against in place
    rd, pd = ref.direction, pred.direction
    if rd and pd:
        ref_travels, pred_travels = rd - {"in place"}, pd - {"in place"}
        if not ref_travels and pred_travels:
            why.append(f"travels ({', '.join(sorted(pred_travels))}); the reference stays in place")
        elif ref_travels and "in place" in pd:
            why.append(f"stays in place; the reference travels {', '.join(sorted(ref_travels))}")
        elif (pred_travels - {"travel"}) - ref_travels - (echo.direction if pd & rd else set()) and \
                ref_travels - {"travel"}:  # fmt: skip
            why.append(f"direction {', '.join(sorted(pred_travels - {'travel'} - ref_travels))}; the reference "
                       f"{', '.join(sorted(ref_travels))}")  # fmt: skip
    for kind in ("direction", "turn", "event", "side", "pace"):
        if ref_vals := getattr(ref, kind):
            if denied := pred.neg.get(kind, set()) & ref_vals:
                why.append(f"denies {kind} {', '.join(sorted(map(str, denied)))}")
        if ref_denied := ref.neg.get(kind, set()):
            if said := getattr(pred, kind) & ref_denied:
                why.append(f"states {kind} {', '.join(sorted(map(str, said)))}, which the reference denies")
    # turns
    if ref.turn and pred.turn:
        rt, pt = ref.turn, pred.turn
        if "none" in rt and pt - {"none"} and "none" not in pt:
            why.append(f"turns ({', '.join(sorted(pt))}); the reference does not turn")
        elif "none" in pt and rt - {"none"} and "none" not in rt:
            why.append(f"does not turn; the reference turns {', '.join(sorted(rt))}")
        elif (pt & set(V.SIDES)) - (rt & set(V.SIDES)) - (echo.turn if pt & rt else set()) and rt & set(V.SIDES):
            why.append(f"turns {', '.join(sorted(pt & set(V.SIDES)))}; the reference "
                       f"{', '.join(sorted(rt & set(V.SIDES)))}")  # fmt: skip
    # body parts and sides
    rparts = ref.body_part
    if rparts and pred.body_part:
        extra = {p for p in pred.body_part if not any(_part_compatible(p, r) for r in rparts)
                 and p not in echo.body_part}  # fmt: skip
        disjoint = not any(_part_compatible(p, r) for p in pred.body_part for r in rparts)
        if extra and (disjoint or "body_part" in q.asks):
            why.append(f"body part {', '.join(' '.join(x for x in p if x) for p in sorted(extra, key=str))}; the "
                       f"reference {', '.join(' '.join(x for x in r if x) for r in sorted(rparts, key=str))}")  # fmt: skip
    ref_sides = ref.side | {p[0] for p in ref.body_part if p[0]} | {e.split()[0] for e in ref.event
                                                                     if e.split()[0] in V.SIDES}  # fmt: skip
    if pred.side and ref_sides and not pred.body_part and pred.side - ref_sides - echo.side:
        why.append(f"side {', '.join(sorted(pred.side))}; the reference {', '.join(sorted(ref_sides))}")
    if pred.neg.get("body_part") and rparts:
        if any(p == r for p in pred.neg["body_part"] for r in rparts):
            why.append("denies the reference's body part")
    # events: another event than the reference's
    if ref.event and pred.event:
        # the question's own event may be repeated ("After the crouch, they jump"), not given as the answer;
        # any other event the reference does not state is a claim it does not back ("doing hops" for squats)
        extra = pred.event - ref.event - (echo.event if pred.event & ref.event else set())
        if extra:
            why.append(f"event {', '.join(sorted(extra))}; the reference {', '.join(sorted(ref.event))}")
    # pace
    if ref.pace and pred.pace and not pred.pace & ref.pace:
        why.append(f"pace {', '.join(sorted(pred.pace))}; the reference {', '.join(sorted(ref.pace))}")
    if "still" in pred.pace and ref.direction - {"in place"} and "in place" not in ref.direction:
        why.append("stands still; the reference travels")
    # counts
    for ev, n in pred.count.items():
        r = ref.count.get(ev)
        if r is None and (ev is None or None in ref.count) and len(ref.count) == 1:
            r = next(iter(ref.count.values()))
        if r is None and ev is None and q.facts.event:
            r = ref.count.get(next(iter(sorted(q.facts.event))))  # "Twice." to "how many times … jump?"
        if r is not None and r != n:
            why.append(f"count {n}; the reference {r}")
    if pred.vague_count and ref.count and max(ref.count.values()) < 2:
        why.append(f"says several; the reference {max(ref.count.values())}")
    # numbers
    for unit, pvals in pred.quantity.items():
        rvals = ref.quantity.get(unit, [])
        if not rvals:
            continue
        allowed = rvals + echo.quantity.get(unit, [])
        bad = [p for p in pvals if not any(_within(p, r, unit) for r in allowed)]
        if bad:
            why.append(f"{bad[0]:g} {unit}; the reference {', '.join(f'{r:g}' for r in rvals)} {unit}")
    # order
    rrel, prel = ref.relations(), pred.relations()
    if swapped := {(a, b) for a, b in prel if (b, a) in rrel}:
        a, b = sorted(swapped)[0]
        why.append(f"{a} before {b}; the reference the other way round")
    ref_order = [_order_key(x) for x in ref.order]
    ref_first = _order_key(ref.first) or (ref_order[0] if len(set(ref_order)) >= 2 else None)
    ref_last = _order_key(ref.last) or (ref_order[-1] if len(set(ref_order)) >= 2 else None)
    ref_items = set(ref_order) | {x for x in (ref_first, ref_last) if x}
    p_first, p_last = _order_key(pred.first), _order_key(pred.last)
    pred_keys = [_order_key(x) for x in pred.order]
    if len(set(ref_order)) >= 2 and "order" in q.asks and (extra := set(pred_keys) - set(ref_order) -
                                                           {_order_key(x) for x in echo.order}):  # fmt: skip
        why.append(f"names {', '.join(sorted(extra))} in the sequence; the reference {', '.join(ref_order)}")
    if p_first and ref_first and p_first != ref_first and p_first in ref_items:
        why.append(f"{p_first} first; the reference {ref_first}")
    if p_last and ref_last and p_last != ref_last and p_last in ref_items:
        why.append(f"{p_last} last; the reference {ref_last}")
    if why:
        return Verdict("contradiction", why)
    # what the question asks, and the reference states, the prediction must state too
    required = _required(ref, q)
    missing = [k for k in sorted(required) if not _covers(ref, pred, k, q)]
    if missing:
        return Verdict("omission", [f"does not state the {k}" for k in missing])
    if required:
        return Verdict("agree", [f"agrees on {', '.join(sorted(required))}"])
    shared = _shared(ref, pred)
    if shared:
        return Verdict("agree", [f"agrees on {', '.join(shared)}"])
    return Verdict("unstructured")


def _required(ref: Facts, q: QuestionInfo) -> set[str]:
    req = set()
    if ref.yes_no and q.yes_no:
        req.add("yes_no")
    if ref.option:
        req.add("option")
    if req:
        return req
    for kind in q.asks:
        if kind == "activity":  # what the person does: the events the reference names, else travel / in place
            req.add("event" if ref.event else "direction" if ref.direction else "activity")
            req.discard("activity")
        elif kind == "pace":
            if ref.pace or ref.quantity.get("m/s"):
                req.add("pace")
        elif kind == "event":
            if ref.event or ref.neg.get("event"):
                req.add("event")
        elif ref.states(kind):
            req.add(kind)
    return req


def _covers(ref: Facts, pred: Facts, kind: str, q: QuestionInfo) -> bool:
    if kind == "body_part":
        have = pred.body_part | pred.implied_parts
        return all(any(p[1] == r[1] and (p[0] == r[0] or r[0] is None) for p in have) for r in ref.body_part)
    if kind == "direction":
        return bool(pred.direction - {"travel"}) or (ref.direction == {"travel"} and bool(pred.direction))
    if kind == "event":
        if ref.event:
            return ref.event <= pred.event
        return bool(ref.neg.get("event", set()) & (pred.neg.get("event", set()) | {e for e, n in pred.count.items()
                                                                                     if n == 0}))  # fmt: skip
    if kind == "order":
        return pred.states("order") or (not ref.relations() and bool(pred.event))
    if kind == "pace":
        return bool(pred.pace) or bool(pred.quantity.get("m/s"))
    if kind == "count":  # a count of the counted event ("None: they never squat" does not count jumps)
        return None in pred.count or bool(set(pred.count) & (set(ref.count) | q.facts.event)) or \
            (None in ref.count and bool(pred.count))  # fmt: skip
    return pred.states(kind)


def _shared(ref: Facts, pred: Facts) -> list[str]:
    out = ["yes_no"] if ref.yes_no and ref.yes_no == pred.yes_no else []
    for kind in ("direction", "turn", "event", "pace", "side"):
        if getattr(ref, kind) & getattr(pred, kind) - {"travel", "some"}:
            out.append(kind)
    if any(_part_compatible(p, r) and p[0] == r[0] for p in pred.body_part for r in ref.body_part):
        out.append("body_part")
    if set(pred.count.items()) & set(ref.count.items()):
        out.append("count")
    for unit, pvals in pred.quantity.items():
        if any(_within(p, r, unit) for p in pvals for r in ref.quantity.get(unit, [])):
            out.append(unit)
    return out
