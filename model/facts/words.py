"""The words and text handling of the fact reader: tolerances, the word tables built on the annotator's
vocabulary (``schemas/vocabulary.py``), text normalisation and tokens."""

from __future__ import annotations

import re
from dataclasses import dataclass

from schemas import vocabulary as V

__all__ = ["MAX_CHARS", "TOLERANCE", "prepare"]


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
