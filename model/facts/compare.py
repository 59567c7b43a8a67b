"""How a prediction's facts stand to a reference's: contradiction, omission, agreement, or nothing
structured to compare (``compare``); one check per fact family."""

from __future__ import annotations

from dataclasses import dataclass, field

from model.facts.core import Facts, QuestionInfo, _order_key
from model.facts.words import TOLERANCE
from schemas import vocabulary as V

__all__ = ["Verdict", "compare"]


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
    for check in _CHECKS:
        check(ref, pred, q, why)
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


def _check_yes_no_option(ref: Facts, pred: Facts, q: QuestionInfo, why: list[str]) -> None:
    """A yes/no or an option other than the reference's."""
    if ref.yes_no and pred.yes_no and ref.yes_no != pred.yes_no:
        why.append(f"says {pred.yes_no}, the reference {ref.yes_no}")
    if ref.option and pred.option and ref.option != pred.option:
        why.append(f"picks option {pred.option}, the reference {ref.option}")


def _check_directions(ref: Facts, pred: Facts, q: QuestionInfo, why: list[str]) -> None:
    """One direction of travel per answer; "travel" (unspecified) is only wrong against in place."""
    echo = q.facts
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


def _check_denials(ref: Facts, pred: Facts, q: QuestionInfo, why: list[str]) -> None:
    """A value the reference states denied, or one it denies stated."""
    for kind in ("direction", "turn", "event", "side", "pace"):
        if ref_vals := getattr(ref, kind):
            if denied := pred.neg.get(kind, set()) & ref_vals:
                why.append(f"denies {kind} {', '.join(sorted(map(str, denied)))}")
        if ref_denied := ref.neg.get(kind, set()):
            if said := getattr(pred, kind) & ref_denied:
                why.append(f"states {kind} {', '.join(sorted(map(str, said)))}, which the reference denies")


def _check_turns(ref: Facts, pred: Facts, q: QuestionInfo, why: list[str]) -> None:
    """No turn against a turn, or the other side."""
    echo = q.facts
    if ref.turn and pred.turn:
        rt, pt = ref.turn, pred.turn
        if "none" in rt and pt - {"none"} and "none" not in pt:
            why.append(f"turns ({', '.join(sorted(pt))}); the reference does not turn")
        elif "none" in pt and rt - {"none"} and "none" not in rt:
            why.append(f"does not turn; the reference turns {', '.join(sorted(rt))}")
        elif (pt & set(V.SIDES)) - (rt & set(V.SIDES)) - (echo.turn if pt & rt else set()) and rt & set(V.SIDES):
            why.append(f"turns {', '.join(sorted(pt & set(V.SIDES)))}; the reference "
                       f"{', '.join(sorted(rt & set(V.SIDES)))}")  # fmt: skip


def _check_body_parts(ref: Facts, pred: Facts, q: QuestionInfo, why: list[str]) -> None:
    """Another body part (where asked, or none in common) or side."""
    echo = q.facts
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


def _check_events_and_pace(ref: Facts, pred: Facts, q: QuestionInfo, why: list[str]) -> None:
    """Another event than the reference's, another pace, standing still against travel."""
    echo = q.facts
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


def _check_counts_and_numbers(ref: Facts, pred: Facts, q: QuestionInfo, why: list[str]) -> None:
    """Another count, "several" against one, a number outside the tolerance."""
    echo = q.facts
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


def _check_order(ref: Facts, pred: Facts, q: QuestionInfo, why: list[str]) -> None:
    """Events in the other order, another first or last, items the reference's sequence lacks."""
    echo = q.facts
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


_CHECKS = (_check_yes_no_option, _check_directions, _check_denials, _check_turns, _check_body_parts, _check_events_and_pace, _check_counts_and_numbers, _check_order)  # the order of the reasons


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
