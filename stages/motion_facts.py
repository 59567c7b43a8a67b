"""Kinematic facts about a clip, computed from its joints: what the annotator's prompts are grounded in
and what its answers are checked against. Joints are HumanML3D's (Y up, 20 fps, first frame facing +Z,
the person's left is +X), as the ``motion`` table stores them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BODY_PARTS", "facts_text", "motion_facts", "motion_facts_batch"]

FPS = 20.0
BODY_PARTS = {
    "left arm": (16, 18, 20), "right arm": (17, 19, 21), "left leg": (4, 7, 10), "right leg": (5, 8, 11),
    "torso and head": (3, 6, 9, 12, 15),
}  # fmt: skip
HEAD, L_WRIST, R_WRIST, FEET = 15, 20, 21, (7, 8, 10, 11)
WALK_RUN_MPS = 1.9  # ground speed (m/s) above which travel on foot is a run


def _runs(mask: np.ndarray, bounds: np.ndarray, min_len: int) -> list[list[tuple[float, float]]]:
    """``_windows`` of each clip of a concatenated per-frame mask (clip k is frames bounds[k]:bounds[k+1]),
    in one pass: a False inserted at every clip boundary keeps runs from crossing clips."""
    padded = np.insert(mask.astype(np.int8), bounds, 0)  # clip k's frames now start at bounds[k] + k + 1
    edges = np.diff(np.concatenate([[0], padded]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    keep = ends - starts >= min_len
    starts, ends = starts[keep], ends[keep]
    first = bounds[:-1] + np.arange(len(bounds) - 1) + 1  # padded index of each clip's frame 0
    clip = np.searchsorted(first, starts, side="right") - 1
    out: list[list[tuple[float, float]]] = [[] for _ in range(len(bounds) - 1)]
    for k, s, e in zip(clip.tolist(), (starts - first[clip]).tolist(), (ends - first[clip]).tolist(), strict=True):
        out[k].append((round(s / FPS, 2), round(e / FPS, 2)))
    return out


def _direction(dx: float, dz: float) -> str:
    angle = np.degrees(np.arctan2(dx, dz))  # 0 = forward (+Z), +90 = the person's left (+X)
    if abs(angle) <= 45:
        return "forward"
    if abs(angle) >= 135:
        return "backward"
    return "left" if angle > 0 else "right"

def _thirds(n: int) -> list[tuple[str, int, int]]:
    """The beginning, middle and end of ``n`` steps as [from, to) step indices (``np.array_split``'s sizes)."""
    sizes = [n // 3 + (k < n % 3) for k in range(3)]
    edges = np.cumsum([0, *sizes]).tolist()
    return [(label, a, b) for label, a, b in zip(("beginning", "middle", "end"), edges[:-1], edges[1:], strict=True) if b > a]


def motion_facts(joints: np.ndarray) -> dict:
    """Facts as plain JSON-able values: duration, travel, turning, speed, jumps, crouches, hands raised
    above the head, the body part moving most in each third of the clip, and the timed events (walk, run,
    jump, crouch, a hand above the head; the names of ``schemas.vocabulary.EVENTS``)."""
    return motion_facts_batch([joints])[0]


def motion_facts_batch(clips: list[np.ndarray]) -> list[dict]:
    """``motion_facts`` of every clip, the per-frame work done once over the clips' concatenated frames (a
    unit's clips cost one pass, not one pass each); equal, value for value, to computing each clip alone."""
    if not clips:
        return []
    lengths = np.array([len(c) for c in clips])
    b = np.concatenate([[0], np.cumsum(lengths)])  # clip k is frames b[k]:b[k + 1]; its steps b[k]:b[k + 1] - 1
    j = np.concatenate([np.asarray(c, dtype=np.float64) for c in clips])
    root = j[:, 0]
    ground_xz = root[:, [0, 2]]
    step = np.linalg.norm(np.diff(ground_xz, axis=0), axis=1)  # rows at clip boundaries are never read
    disp = ground_xz[b[1:] - 1] - ground_xz[b[:-1]]
    across = (j[:, 2] - j[:, 1]) + (j[:, 17] - j[:, 16])  # right minus left: the facing is up × across
    heading = np.arctan2(across[:, 2], -across[:, 0])  # atan2 of the (x, z) of cross((0, 1, 0), across)
    feet_low = j[:, FEET, 1].min(axis=1)
    airborne = feet_low > np.repeat(np.minimum.reduceat(feet_low, b[:-1]) + 0.08, lengths)
    standing = np.array([np.percentile(root[a:e, 1], 90) for a, e in zip(b[:-1], b[1:], strict=True)])
    crouched = root[:, 1] < np.repeat(0.75 * standing, lengths)
    part_step = np.linalg.norm(np.diff(j - root[:, None], axis=0), axis=2)  # each joint's speed about the pelvis
    most_active = _most_active(part_step, b)
    ground = [np.convolve(step[a : e - 1] * FPS, np.ones(10) / 10, mode="same") if e - a > 1 else step[a:a]
              for a, e in zip(b[:-1], b[1:], strict=True)]  # fmt: skip
    steps_b = np.concatenate([[0], np.cumsum([len(g) for g in ground])])  # "same" gives max(len, 10) values
    ground_all = np.concatenate(ground)
    events = [[] for _ in clips]
    masks = (("walk", (ground_all >= 0.5) & (ground_all < WALK_RUN_MPS), steps_b, int(FPS)),
             ("run", ground_all >= WALK_RUN_MPS, steps_b, int(FPS)), ("jump", airborne, b, 3), ("crouch", crouched, b, 6),
             ("left hand above head", j[:, L_WRIST, 1] > j[:, HEAD, 1], b, 4),
             ("right hand above head", j[:, R_WRIST, 1] > j[:, HEAD, 1], b, 4))  # fmt: skip
    for name, mask, bounds, min_len in masks:
        for k, runs in enumerate(_runs(mask, bounds, min_len)):
            events[k] += [{"event": name, "from": a, "to": e} for a, e in runs]
    return [_clip_facts(int(lengths[k]), int(b[k]), step, disp[k], heading, most_active[k], events[k])
            for k in range(len(clips))]  # fmt: skip


def _most_active(part_step: np.ndarray, b: np.ndarray) -> list[list[dict]]:
    """Each clip's body part moving most (mean speed of its joints about the pelvis) in each third of the
    clip, every window of every clip summed in one ``reduceat``."""
    parts = np.stack([part_step[:, list(ix)].mean(axis=1) for ix in BODY_PARTS.values()])  # (parts, steps)
    wins = [(k, label, s, e) for k in range(len(b) - 1) for label, s, e in _thirds(int(b[k + 1] - b[k]) - 1)]
    start = np.array([b[k] + s for k, _, s, _ in wins], dtype=np.int64)
    size = np.array([e - s for _, _, s, e in wins], dtype=np.int64)
    best = np.zeros(len(wins), dtype=np.int64)
    # Windows of one length are averaged together along a contiguous last axis: the same pairwise sums as
    # each window's own ``mean`` (a symmetric motion ties its arms; a sum in another order would break the tie)
    for n in np.unique(size):
        w = np.flatnonzero(size == n)
        best[w] = parts[:, start[w, None] + np.arange(n)].mean(axis=2).argmax(axis=0)  # argmax: first of ties
    out: list[list[dict]] = [[] for _ in range(len(b) - 1)]
    names = list(BODY_PARTS)
    for (k, label, s, e), i in zip(wins, best.tolist(), strict=True):
        out[k].append({"window": label, "from": round(s / FPS, 2), "to": round(e / FPS, 2), "part": names[i]})
    return out


def _clip_facts(T: int, a: int, step, disp, heading, most_active: list[dict], events: list[dict]) -> dict:
    """One clip's facts from the batch's per-frame arrays (the clip's frames start at ``a``)."""
    distance = float(np.linalg.norm(disp))
    turned = np.unwrap(heading[a : a + T])
    turn = float(np.degrees(turned[-1] - turned[0]))
    speed = float(step[a : a + T - 1].sum() / max((T - 1) / FPS, 1e-6))
    events.sort(key=lambda ev: (ev["from"], ev["event"]))
    return {
        "duration_s": round((T - 1) / FPS, 2),
        "distance_m": round(distance, 2),
        "direction": _direction(float(disp[0]), float(disp[1])) if distance > 0.3 else "in place",
        "turn_deg": round(turn),
        "turn": "none" if abs(turn) < 30 else ("left" if turn > 0 else "right"),
        "speed_mps": round(speed, 2),
        "pace": "still" if speed < 0.15 else "slow" if speed < 1.0 else "walking pace" if speed < 2.0 else "running pace",
        "jumps": sum(ev["event"] == "jump" for ev in events),
        "crouches": sum(ev["event"] == "crouch" for ev in events),
        "hands_above_head": sorted({ev["event"].split()[0] for ev in events if ev["event"].endswith("above head")}),
        "most_active": most_active,
        "events": events,
    }


def facts_text(f: dict) -> str:
    """The facts as the short lines a prompt carries."""
    lines = [f"duration: {f['duration_s']} s; pace: {f['pace']} ({f['speed_mps']} m/s)",
             f"travel: {f['direction']} ({f['distance_m']} m); turning: {f['turn']} ({f['turn_deg']} degrees)",
             f"jumps: {f['jumps']}; crouches: {f['crouches']}; hands above head: "
             f"{', '.join(f['hands_above_head']) or 'none'}"]  # fmt: skip
    lines += [f"most active in the {m['window']} ({m['from']}-{m['to']} s): {m['part']}" for m in f["most_active"]]
    lines += [f"event: {e['event']} from {e['from']} s to {e['to']} s" for e in f["events"]]
    return "\n".join(lines)
