"""``movid sample-data``: a synthetic HumanML3D tree in the real formats (``new_joint_vecs``,
``new_joints``, ``texts`` with POS tokens and time spans, split files, ``Mean.npy``/``Std.npy``), with
HumanML3D's mirrored ``M`` twins. Deterministic by seed. ``broken=True`` adds one record of each broken
input kind the ingest must quarantine, listed with the expected reason in ``BROKEN.json``.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from pipeline.synthetic_motion import Segment, segment_bounds, synthesize_joints
from schemas.motion import FEATURE_DIM, FEATURE_LAYOUT
from stages.kinematics import features_to_joints, joints_to_features, mirror_caption, mirror_joints

__all__ = ["BROKEN_KINDS", "caption_for", "write_sample_humanml3d"]

SUBJECTS = ("a person", "a man", "a woman", "someone", "the person", "a figure")
# word → lemma/POS, the way HumanML3D's texts tag captions (spaCy lemmas and universal POS tags).
LEXICON = {
    "a": "a/DET", "the": "the/DET", "person": "person/NOUN", "man": "man/NOUN", "woman": "woman/NOUN",
    "someone": "someone/PRON", "figure": "figure/NOUN", "walks": "walk/VERB", "runs": "run/VERB",
    "jumps": "jump/VERB", "waves": "wave/VERB", "squats": "squat/VERB", "kicks": "kick/VERB",
    "raises": "raise/VERB", "stands": "stand/VERB", "turns": "turn/VERB", "forward": "forward/ADV",
    "backward": "backward/ADV", "left": "left/ADJ", "right": "right/ADJ", "with": "with/ADP",
    "hand": "hand/NOUN", "leg": "leg/NOUN", "foot": "foot/NOUN", "both": "both/DET", "arms": "arm/NOUN",
    "overhead": "overhead/ADV", "up": "up/ADV", "and": "and/CCONJ", "then": "then/ADV", "in": "in/ADP",
    "place": "place/NOUN", "still": "still/ADV", "down": "down/ADV", "his": "his/DET", "her": "her/DET",
    "their": "their/DET", "times": "time/NOUN", "once": "once/ADV", "twice": "twice/ADV", "three": "three/NUM",
    "quickly": "quickly/ADV", "slowly": "slowly/ADV", "while": "while/SCONJ", "to": "to/ADP",
    "turning": "turn/VERB", "its": "its/DET", "out": "out/ADV",
}  # fmt: skip
COUNT_WORDS = {1: "once", 2: "twice", 3: "three times"}
BROKEN_KINDS = (
    "missing_file", "unreadable_file", "wrong_shape", "length_mismatch", "non_finite", "too_short", "no_data",
    "no_split", "split_conflict", "empty_caption", "malformed_caption", "non_utf8_caption", "invalid_span",
    "span_outside_clip", "subclip_too_short", "no_valid_caption",
)  # fmt: skip


def _phrase(seg: Segment) -> str:
    a, turn = seg.action, ("" if seg.turn == "none" else f" and turns {seg.turn}")
    if a in ("walk", "run"):
        return f"{a}s {seg.direction}{turn}"
    if a == "jump":
        return f"jumps up {COUNT_WORDS[seg.repeats]}{turn}"
    if a == "squat":
        return f"squats down {COUNT_WORDS[seg.repeats]}"
    if a == "wave":
        return f"waves with the {seg.side} hand"
    if a == "kick":
        return f"kicks with the {seg.side} leg" + ("" if seg.repeats == 1 else f" {COUNT_WORDS[seg.repeats]}")
    if a == "raise_arms":
        return "raises both arms overhead"
    return "stands still in place"


def caption_for(segments: list[Segment], subject: str) -> str:
    phrases = [_phrase(s) for s in segments]
    body = phrases[0] if len(phrases) == 1 else ", then ".join(phrases[:-1]) + " and then " + phrases[-1]
    return f"{subject} {body}."


def _tokens(caption: str) -> str:
    words = caption.replace(",", " ").replace(".", " ").split()
    return " ".join(LEXICON.get(w, f"{w}/NOUN") for w in words)


def _line(caption: str, start: float, end: float) -> str:
    return f"{caption}#{_tokens(caption)}#{start:.1f}#{end:.1f}"


def _random_segments(rng: np.random.Generator) -> list[Segment]:
    segments = []
    for _ in range(int(rng.choice([1, 2, 3], p=[0.35, 0.45, 0.2]))):
        # jumps and squats twice as often as the other actions: they are what the counting questions count
        action = str(rng.choice(["walk", "walk", "run", "jump", "jump", "wave", "squat", "squat", "kick", "raise_arms",
                                 "idle"]))  # fmt: skip
        repeats = int(rng.integers(1, 4)) if action in ("jump", "squat", "kick") else 1
        seconds = float(np.round(rng.uniform(2.0, 3.2) if action != "idle" else rng.uniform(2.0, 2.5), 1))
        segments.append(Segment(
            action, max(seconds, 1.2 * repeats), side=str(rng.choice(["left", "right"])),
            direction=str(rng.choice(["forward", "forward", "backward"])) if action == "walk" else "forward",
            turn=str(rng.choice(["none", "none", "left", "right"])) if action in ("walk", "run", "jump") else "none",
            repeats=repeats,
        ))  # fmt: skip
    total = sum(s.seconds for s in segments)
    if total > 9.5:  # HumanML3D clips used for training are at most 196 frames (9.8 s)
        segments = segments[:1]
    return segments


def _caption_lines(segs: list[Segment], rng: np.random.Generator) -> list[str]:
    lines = [_line(caption_for(segs, str(s)), 0.0, 0.0) for s in rng.choice(SUBJECTS, size=3, replace=False)]
    if len(segs) > 1:  # HumanML3D annotators sometimes describe only part of a clip, with its time span
        for seg, (a, b) in zip(segs, segment_bounds(segs), strict=True):
            if rng.random() < 0.5 and b - a >= 40:
                lines.append(_line(caption_for([seg], str(rng.choice(SUBJECTS))), a / 20.0, b / 20.0))
    return lines


def _mean_std(features: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and std over all frames; within each feature group the std is replaced by the group's mean
    std, as HumanML3D does so that no single dimension dominates after normalisation."""
    allf = np.concatenate(features)
    mean, std = allf.mean(axis=0), allf.std(axis=0)
    for sl in FEATURE_LAYOUT.values():
        std[sl] = std[sl].mean()
    return mean.astype(np.float32), np.maximum(std, 1e-6).astype(np.float32)


def write_sample_humanml3d(root: str | Path, n_motions: int = 100, seed: int = 0, broken: bool = False,
                           show_progress: bool = False) -> dict:  # fmt: skip
    """Write ``n_motions`` synthetic clips (plus their ``M`` twins) under ``root``; return counts."""
    root = Path(root)
    for sub in ("new_joint_vecs", "new_joints", "texts"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    train_features = []
    for i in tqdm(range(n_motions), desc="sample motions", disable=not show_progress):
        mid = f"{i:06d}"
        split = str(rng.choice(["train", "val", "test"], p=[0.8, 0.05, 0.15]))
        segments = _random_segments(rng)
        raw = synthesize_joints(segments, rng)
        lines = _caption_lines(segments, rng)
        # As HumanML3D: the M twin mirrors the raw joints and the caption; both are then featurized, and
        # new_joints holds the joints recovered from the features.
        for twin_id, joints, text in ((mid, raw, lines), (f"M{mid}", mirror_joints(raw), map(mirror_caption, lines))):
            features = joints_to_features(joints)
            np.save(root / "new_joint_vecs" / f"{twin_id}.npy", features)
            np.save(root / "new_joints" / f"{twin_id}.npy", features_to_joints(features))
            (root / "texts" / f"{twin_id}.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
            splits[split].append(twin_id)
            if split == "train":
                train_features.append(features)
    n_good = sum(len(v) for v in splits.values())
    expected = _write_broken(root, splits, rng) if broken else {}
    for split, ids in splits.items():
        (root / f"{split}.txt").write_text("".join(f"{x}\n" for x in ids))
    (root / "train_val.txt").write_text("".join(f"{x}\n" for x in splits["train"] + splits["val"]))
    listed = sorted({x for ids in splits.values() for x in ids} | set(expected.get("_all_only", [])))
    (root / "all.txt").write_text("".join(f"{x}\n" for x in listed))
    if train_features:
        mean, std = _mean_std(train_features)
        np.save(root / "Mean.npy", mean)
        np.save(root / "Std.npy", std)
    if broken:
        expected.pop("_all_only")
        (root / "BROKEN.json").write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
    return {"motions": n_good, "broken": len(expected)}


def _put_record(root: Path, splits: dict[str, list[str]], mid: str, features=None, joints=None, lines=None,
                split: str | None = "train") -> None:  # fmt: skip
    """Write what a (broken) record has of its files, and list it in ``split``."""
    if features is not None:
        np.save(root / "new_joint_vecs" / f"{mid}.npy", features)
    if joints is not None:
        np.save(root / "new_joints" / f"{mid}.npy", joints)
    if lines is not None:
        data = lines if isinstance(lines, bytes) else ("\n".join(lines) + "\n").encode()
        (root / "texts" / f"{mid}.txt").write_bytes(data)
    if split:
        splits[split].append(mid)


def _write_broken(root: Path, splits: dict[str, list[str]], rng: np.random.Generator) -> dict:
    """One record per broken kind, ids 900000+. Returns {record_id: expected reason}."""
    feats = joints_to_features(synthesize_joints([Segment("walk", 3.0)], rng))
    joints = features_to_joints(feats)
    cap = "a person walks forward."
    expected: dict = {"_all_only": []}
    put = partial(_put_record, root, splits)
    ids = iter(f"{900000 + k}" for k in range(100))
    _broken_files(put, ids, root, splits, feats, joints, _line(cap, 0.0, 0.0), expected)
    _broken_captions(put, ids, feats, joints, cap, expected)
    assert FEATURE_DIM == feats.shape[1]
    return expected


def _broken_files(put, ids, root: Path, splits: dict, feats, joints, ok_line: str, expected: dict) -> None:
    """Records whose files, or whose place in the split files, are broken."""
    mid = next(ids)
    put(mid, feats, None, [ok_line])
    expected[mid] = "missing_file"
    mid = next(ids)
    put(mid, None, joints, [ok_line])
    (root / "new_joint_vecs" / f"{mid}.npy").write_bytes(b"\x93NUMPY garbage, not an array")
    expected[mid] = "unreadable_file"
    mid = next(ids)
    put(mid, feats[:, :251], joints, [ok_line])  # KIT-ML's 251-d vectors in a HumanML3D tree
    expected[mid] = "wrong_shape"
    mid = next(ids)
    put(mid, feats, joints[:-5], [ok_line])
    expected[mid] = "length_mismatch"
    mid = next(ids)
    nan_feats = feats.copy()
    nan_feats[10, 3] = np.nan  # as HumanML3D's own 007975
    put(mid, nan_feats, joints, [ok_line])
    expected[mid] = "non_finite"
    mid = next(ids)
    put(mid, feats[:20], joints[:20], [ok_line])
    expected[mid] = "too_short"
    mid = next(ids)
    put(mid)  # listed in train.txt, no file at all
    expected[mid] = "no_data"
    mid = next(ids)
    put(mid, feats, joints, [ok_line], split=None)
    expected["_all_only"].append(mid)
    expected[mid] = "no_split"
    mid = next(ids)
    put(mid, feats, joints, [ok_line])
    splits["test"].append(mid)
    expected[mid] = "split_conflict"


def _broken_captions(put, ids, feats, joints, cap: str, expected: dict) -> None:
    """Caption-line problems: the clip itself is fine and keeps its good line; the bad line is quarantined."""
    ok_line = _line(cap, 0.0, 0.0)
    n = len(feats)
    for reason, bad in (
        ("empty_caption", b""),
        ("malformed_caption", b"a person walks forward without any fields"),
        ("non_utf8_caption", b"a person walks forward.#a/DET#0.0#0.0" + b"\xff\xfe"),
        ("invalid_span", _line(cap, 2.0, 1.0).encode()),
        ("span_outside_clip", _line(cap, 1.0, n / 20.0 + 5.0).encode()),
        ("subclip_too_short", _line(cap, 0.5, 1.0).encode()),
    ):
        mid = next(ids)
        put(mid, feats, joints, ok_line.encode() + b"\n" + bad + b"\n")
        line_id = f"{mid}/texts:2" if reason != "subclip_too_short" else f"{mid}_0010_0020"
        expected[line_id] = reason
    mid = next(ids)
    put(mid, feats, joints, [cap])  # its only line has no fields
    expected[mid] = "no_valid_caption"
    expected[f"{mid}/texts:1"] = "malformed_caption"


def _mirrored_pose(local: np.ndarray, root: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reflected motion in rotation space (what Motion-X's swap_left_right does to SMPL-X params)."""
    from stages.kinematics import LEFT_CHAIN, RIGHT_CHAIN

    swap = np.arange(local.shape[1])
    swap[list(LEFT_CHAIN) + list(RIGHT_CHAIN)] = list(RIGHT_CHAIN) + list(LEFT_CHAIN)
    d = np.diag([-1.0, 1.0, 1.0])
    return d @ local[:, swap] @ d, root * np.array([-1.0, 1.0, 1.0])


def _write_amass_clip(amass: Path, folder: str, fps: float, k: int, name: str, stem: str, end: int, pose,
                      rng: np.random.Generator) -> str:  # fmt: skip
    """One AMASS-style clip (a humanact12 joints file, or an SMPL+H ``.npz``); its line of ``index.csv``."""
    from pipeline.synthetic_body import AMASS_FROM_YUP
    from pipeline.synthetic_motion import forward_kinematics
    from stages.rotations import matrix_to_axis_angle

    local, pos = pose
    (amass / folder).mkdir(parents=True, exist_ok=True)
    if folder.startswith("humanact12"):
        joints = forward_kinematics(local, pos).astype(np.float32)
        np.save(amass / folder / f"P{k:02d}.npy", np.concatenate([joints, joints[:, 20:22]], axis=1))
        return f"./pose_data/{folder}/P{k:02d}.npy,0,-1,{name}.npy"
    T = len(pos)
    poses = np.zeros((T, 156), np.float32)
    poses[:, :3] = matrix_to_axis_angle(AMASS_FROM_YUP @ local[:, 0])
    poses[:, 3:66] = matrix_to_axis_angle(local[:, 1:22]).reshape(T, 63)
    np.savez(amass / folder / f"{stem}_poses.npz", poses=poses, trans=(pos @ AMASS_FROM_YUP.T).astype(np.float32),
             betas=rng.normal(0, 0.5, 16).astype(np.float32), gender=np.array(str(rng.choice(["male", "female"]))),
             mocap_framerate=np.array(fps))  # fmt: skip
    return f"./pose_data/{folder}/{stem}_poses.npy,{int(rng.integers(0, 5))},{end},{name}.npy"


def _write_motionx_pair(motionx: Path, name: str, pose) -> list[str]:
    """A Motion-X SMPL-X clip and its mirror as its own file, with their labels; their split-file ids."""
    from stages.rotations import matrix_to_axis_angle
    from stages.smpl import MOTIONX_LAYOUT

    mx_local, mx_pos = pose
    ids = []
    for mid, (lc, ps), text in ((name, (mx_local, mx_pos), "a person moves around."),
                                ("M" + name, _mirrored_pose(mx_local, mx_pos), "a person moves around.")):  # fmt: skip
        a = np.zeros((len(ps), 322), np.float32)
        for key, value in (("root_orient", matrix_to_axis_angle(lc[:, 0])),
                           ("pose_body", matrix_to_axis_angle(lc[:, 1:22]).reshape(len(ps), 63)), ("trans", ps)):
            s, e = MOTIONX_LAYOUT[key]
            a[:, s:e] = value
        path = motionx / "motion_data" / "smplx_322" / "humanml" / f"{mid}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, a)
        tpath = motionx / "texts" / "semantic_label" / "humanml" / f"{mid}.txt"
        tpath.parent.mkdir(parents=True, exist_ok=True)
        tpath.write_text(text + "\n")
        ids.append(f"humanml/{mid}")
    return ids


def write_sample_smpl(root: str | Path, n_clips: int = 6, seed: int = 0) -> dict:
    """Synthetic SMPL-family sources under ``root``: ``body_models/`` (SMPL+H and SMPL-X, every gender),
    ``amass/`` (AMASS-style ``.npz`` at several frame rates, a humanact12 joints file, HumanML3D's
    ``index.csv`` with its crops and trims, split files, ``texts/`` with mirrored ``M`` captions) and
    ``motionx/`` (SMPL-X ``.npy`` clips and their mirrors, plain-sentence labels, split files)."""
    from pipeline.synthetic_body import write_body_model
    from pipeline.synthetic_motion import synthesize_pose

    root = Path(root)
    for model_type in ("smplh", "smplx"):
        for gender in ("male", "female", "neutral"):
            write_body_model(root / "body_models", model_type, gender)
    rng = np.random.default_rng(seed)
    amass, motionx = root / "amass", root / "motionx"
    (amass / "texts").mkdir(parents=True, exist_ok=True)
    index = ["source_path,start_frame,end_frame,new_name"]
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    mx_splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    datasets = [("KIT/3", 120.0, 0.0), ("MPI_HDM05/bk", 120.0, 3.0), ("CMU/01", 60.0, 0.0), ("humanact12/humanact12", 20.0, 0.0)]
    for k in range(n_clips):
        folder, fps, trim = datasets[k % len(datasets)]
        segments = _random_segments(rng)
        if trim:
            segments = [Segment("idle", trim)] + segments
        local, pos = synthesize_pose(segments, rng, fps)
        name = f"{k:06d}"
        split = str(rng.choice(["train", "val", "test"], p=[0.6, 0.2, 0.2]))
        seconds = sum(s.seconds for s in segments) - trim
        end = int(seconds * 20) - int(rng.integers(0, 10)) if k % 3 else -1  # HumanML3D's -1 = up to the end
        stem = f"{segments[-1].action}_{k:02d}"
        index.append(_write_amass_clip(amass, folder, fps, k, name, stem, end, (local, pos), rng))
        lines = _caption_lines(segments[1:] if trim else segments, rng)
        lines = [ln for ln in lines if ln.endswith("#0.0#0.0")]  # spans refer to the uncropped clip: drop them
        (amass / "texts" / f"{name}.txt").write_text("\n".join(lines) + "\n")
        (amass / "texts" / f"M{name}.txt").write_text("\n".join(map(mirror_caption, lines)) + "\n")
        splits[split] += [name, "M" + name]

        # Motion-X: the same kind of motion as SMPL-X at 30 fps, Y-up, and its mirror as its own file
        mx_splits[split] += _write_motionx_pair(motionx, name, synthesize_pose(_random_segments(rng), rng, 30.0))
    (amass / "index.csv").write_text("\n".join(index) + "\n")
    for folder, sp in ((amass, splits), (motionx, mx_splits)):
        for split, ids in sp.items():
            (folder / f"{split}.txt").write_text("".join(f"{i}\n" for i in ids))
    return {"amass": 2 * n_clips, "motionx": 2 * n_clips}


def write_sample_videos(root: str | Path, humanml3d_root: str | Path, n_videos: int = 10, fps: float = 30.0,
                        size: tuple[int, int] = (320, 240)) -> dict:  # fmt: skip
    """``root/<id>.mp4`` for the first ``n_videos`` clips of a HumanML3D tree: each clip's skeleton rendered
    at ``fps`` (not the motion's 20) and encoded to H.264, and ``root/metadata.jsonl`` naming the motion
    and the clip's whole-clip captions, so video and motion correspond frame for frame in time."""
    import json as _json

    from pipeline.synthetic_video import render_skeleton_frames, write_video
    from schemas.motion import FPS

    root, h3d = Path(root), Path(humanml3d_root)
    ids = [i for s in ("train", "val", "test") for i in (h3d / f"{s}.txt").read_text().split()]
    ids = sorted(i for i in ids if not i.startswith("M") and (h3d / "new_joints" / f"{i}.npy").is_file())[:n_videos]
    meta = []
    for mid in ids:
        joints = np.load(h3d / "new_joints" / f"{mid}.npy")
        times = np.arange(int(len(joints) / FPS * fps)) / fps
        write_video(root / f"{mid}.mp4", render_skeleton_frames(joints, times, *size), fps)
        caps = [ln.split("#")[0] for ln in (h3d / "texts" / f"{mid}.txt").read_text().splitlines() if ln.endswith("#0.0#0.0")]
        meta.append({"path": f"{mid}.mp4", "motion_id": mid, "captions": caps})
    (root / "metadata.jsonl").write_text("".join(_json.dumps(m) + "\n" for m in meta))
    return {"videos": len(meta)}
