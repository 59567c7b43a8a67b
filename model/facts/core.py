"""What an answer states (``Facts``) and what a question asks (``QuestionInfo``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from model.facts.words import TOLERANCE

__all__ = ["Facts", "QuestionInfo"]


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
