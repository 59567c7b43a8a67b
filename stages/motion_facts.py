"""Kinematic facts about a clip, computed from its joints: what the annotator's prompts are grounded in
and what its answers are checked against. Joints are HumanML3D's (Y up, 20 fps, first frame facing +Z,
the person's left is +X), as the ``motion`` table stores them.
"""

from __future__ import annotations

import numpy as np

__all__ = ["BODY_PARTS", "facts_text", "motion_facts"]

FPS = 20.0
BODY_PARTS = {
    "left arm": (16, 18, 20), "right arm": (17, 19, 21), "left leg": (4, 7, 10), "right leg": (5, 8, 11),
    "torso and head": (3, 6, 9, 12, 15),
}  # fmt: skip
HEAD, L_WRIST, R_WRIST, FEET = 15, 20, 21, (7, 8, 10, 11)
WALK_RUN_MPS = 1.9  # ground speed (m/s) above which travel on foot is a run


def _windows(mask: np.ndarray, min_len: int) -> list[tuple[float, float]]:
    """[start, end) seconds of the runs of True at least ``min_len`` frames long."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(round(float(s) / FPS, 2), round(float(e) / FPS, 2)) for s, e in zip(starts, ends, strict=True)
            if e - s >= min_len]


def _direction(dx: float, dz: float) -> str:
    angle = np.degrees(np.arctan2(dx, dz))  # 0 = forward (+Z), +90 = the person's left (+X)
    if abs(angle) <= 45:
        return "forward"
    if abs(angle) >= 135:
        return "backward"
    return "left" if angle > 0 else "right"


def motion_facts(joints: np.ndarray) -> dict:
    """Facts as plain JSON-able values: duration, travel, turning, speed, jumps, crouches, hands raised
    above the head, the body part moving most in each third of the clip, and the timed events (walk, run,
    jump, crouch, a hand above the head; the names of ``schemas.vocabulary.EVENTS``)."""
    j = np.asarray(joints, dtype=np.float64)
    T = len(j)
    root = j[:, 0]
    step = np.linalg.norm(np.diff(root[:, [0, 2]], axis=0), axis=1)
    disp = root[-1, [0, 2]] - root[0, [0, 2]]
    distance = float(np.linalg.norm(disp))
    across = (j[:, 2] - j[:, 1]) + (j[:, 17] - j[:, 16])  # right minus left: the facing is up × across
    facing = np.stack([across[:, 2], -across[:, 0]], axis=1)  # (x, z) of cross((0, 1, 0), across)
    heading = np.unwrap(np.arctan2(facing[:, 0], facing[:, 1]))
    turn = float(np.degrees(heading[-1] - heading[0]))
    speed = float(step.sum() / max((T - 1) / FPS, 1e-6))
    floor = j[:, FEET, 1].min()
    airborne = j[:, FEET, 1].min(axis=1) > floor + 0.08
    standing = np.percentile(root[:, 1], 90)
    crouched = root[:, 1] < 0.75 * standing
    local = j - root[:, None]  # motion of each part relative to the pelvis
    part_speed = {name: np.linalg.norm(np.diff(local[:, list(ix)], axis=0), axis=2).mean(axis=1)
                  for name, ix in BODY_PARTS.items()}  # fmt: skip
    thirds = np.array_split(np.arange(T - 1), 3)
    most_active = []
    for label, idx in zip(("beginning", "middle", "end"), thirds, strict=True):
        if len(idx):
            name = max(part_speed, key=lambda p: part_speed[p][idx].mean())
            most_active.append({"window": label, "from": round(int(idx[0]) / FPS, 2),
                                "to": round((int(idx[-1]) + 1) / FPS, 2), "part": name})  # fmt: skip
    events = []
    # stretches of travel on foot: the root's ground speed over 0.5 s, at least 1 s long (a walk is
    # ~1-1.5 m/s, a run from ~2 m/s; the ramps in and out of a stride fall under the 1 s floor)
    ground = np.convolve(step * FPS, np.ones(10) / 10, mode="same") if len(step) else step
    for name, moving in (("walk", (ground >= 0.5) & (ground < WALK_RUN_MPS)), ("run", ground >= WALK_RUN_MPS)):
        for a, b in _windows(moving, int(FPS)):
            events.append({"event": name, "from": a, "to": b})
    for a, b in _windows(airborne, 3):
        events.append({"event": "jump", "from": a, "to": b})
    for a, b in _windows(crouched, 6):
        events.append({"event": "crouch", "from": a, "to": b})
    for side, wrist in (("left", L_WRIST), ("right", R_WRIST)):
        for a, b in _windows(j[:, wrist, 1] > j[:, HEAD, 1], 4):
            events.append({"event": f"{side} hand above head", "from": a, "to": b})
    events.sort(key=lambda e: (e["from"], e["event"]))
    return {
        "duration_s": round((T - 1) / FPS, 2),
        "distance_m": round(distance, 2),
        "direction": _direction(float(disp[0]), float(disp[1])) if distance > 0.3 else "in place",
        "turn_deg": round(turn),
        "turn": "none" if abs(turn) < 30 else ("left" if turn > 0 else "right"),
        "speed_mps": round(speed, 2),
        "pace": "still" if speed < 0.15 else "slow" if speed < 1.0 else "walking pace" if speed < 2.0 else "running pace",
        "jumps": sum(e["event"] == "jump" for e in events),
        "crouches": sum(e["event"] == "crouch" for e in events),
        "hands_above_head": sorted({e["event"].split()[0] for e in events if e["event"].endswith("above head")}),
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
