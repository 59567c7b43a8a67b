"""A reference's facts from a bench row's structured ``facts`` column."""

from __future__ import annotations

import json

from model.facts.core import Facts, QuestionInfo
from model.facts.words import _LIMB_OF, _SIDE_OF
from schemas import vocabulary as V

__all__ = ["facts_from_record"]


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
