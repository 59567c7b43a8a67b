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

The package, one module a job: ``words`` (tolerances, word tables, text), ``core`` (``Facts``,
``QuestionInfo``), ``question`` (``parse_question``), ``mentions`` and ``context`` (tokens, the vocabulary's
mentions read in context, negation), ``answer`` (``parse_answer``), ``sequence`` (counts, order),
``reference`` (``facts_from_record``) and ``compare`` (``compare``, one check per fact family).
"""

from __future__ import annotations

from model.facts.answer import parse_answer
from model.facts.compare import Verdict, compare
from model.facts.core import Facts, QuestionInfo
from model.facts.question import parse_question
from model.facts.reference import facts_from_record
from model.facts.words import MAX_CHARS, TOLERANCE, prepare

__all__ = ["MAX_CHARS", "TOLERANCE", "Facts", "QuestionInfo", "Verdict", "compare", "facts_from_record", "parse_answer",
           "parse_question", "prepare"]  # fmt: skip
