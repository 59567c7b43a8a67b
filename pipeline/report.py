"""``movid report OUT [--dest DIR] [--samples N]``: a static HTML report of a build that opens offline.

``DIR/index.html`` (default ``OUT/report/``) holds counts per table, split, modality and category;
histograms of motion length and caption length; the QA category distribution; quarantine reasons;
validation (plausibility flags, table-level checks); annotator usage; time per stage. A sample browser
shows, per sampled clip, a skeleton animation rendered from its joints (GIF: HumanML3D's kinematic
chains, the floor and the root's path over it), the sampled frames of its video when it has one, its
captions and its conversations. Every piece of text from the data is HTML-escaped (captions may hold
markup). Images are files under ``DIR/assets/``; nothing is fetched from the network.

``DIR`` must be new, empty, or a report movid wrote (marked by ``DIR/.movid-report``): only then are its
``index.html`` and movid's images replaced, and a user's other files in it stay. Shards are read as the
manifest lists them, each path checked to stay inside ``OUT``.
"""

from __future__ import annotations

import html
import os
import re
from collections import Counter
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.dataset as pads

from schemas.manifest import has_manifest
from schemas.manifest import load as load_manifest
from schemas.motion import FPS, KINEMATIC_CHAIN

__all__ = ["REPORT_DIR", "render_skeleton_gif", "report_files", "write_report"]

REPORT_DIR = "report"  # the default destination, under OUT
MARKER = ".movid-report"  # marks a folder as a report movid wrote: only such a folder is ever replaced
_ASSET = re.compile(r"motion-\d{3,}\.gif|video-\d{3,}-\d+\.jpg")  # the names write_report gives its images

CHAIN_COLOURS = ((200, 55, 55), (55, 75, 200), (50, 50, 50), (215, 135, 35), (35, 150, 210))
e = html.escape


# --- pictures ----------------------------------------------------------------------------------------
def render_skeleton_gif(joints: np.ndarray, path: Path, *, size: tuple[int, int] = (240, 240), fps: float = FPS,
                        every: int = 2) -> None:  # fmt: skip
    """An animated GIF of ``joints`` (T×22×3, metres, y up) in an oblique view: the skeleton along
    HumanML3D's kinematic chains, a floor grid, and the root's path over the floor (grey: the whole clip;
    dark: up to the current frame)."""
    from PIL import Image, ImageDraw

    w, h = size
    j = np.asarray(joints, np.float64)

    def project(p):  # oblique: x to the right, depth (z) up and to the left, height up
        return p[..., 0] - 0.5 * p[..., 2], p[..., 1] + 0.35 * p[..., 2]

    u, v = project(j)
    lo_u, hi_u, lo_v, hi_v = u.min(), u.max(), min(v.min(), 0.0), v.max()
    scale = 0.85 * min(w / max(hi_u - lo_u, 1.0), h / max(hi_v - lo_v, 1.0))
    ou, ov = w / 2 - scale * (lo_u + hi_u) / 2, h / 2 + scale * (lo_v + hi_v) / 2

    def px(uu, vv):
        return float(ou + scale * uu), float(ov - scale * vv)

    floor = np.array([j[:, 0, 0].min() - 0.5, j[:, 0, 0].max() + 0.5, j[:, 0, 2].min() - 0.5, j[:, 0, 2].max() + 0.5])
    path_uv = project(np.stack([j[:, 0, 0], np.zeros(len(j)), j[:, 0, 2]], -1))
    frames = []
    for t in range(0, len(j), every):
        img = Image.new("RGB", (w, h), (248, 247, 242))
        d = ImageDraw.Draw(img)
        for x in np.linspace(floor[0], floor[1], 5):  # floor grid
            d.line([px(*project(np.array([x, 0, floor[2]]))), px(*project(np.array([x, 0, floor[3]])))], fill=(215, 215, 210))
        for z in np.linspace(floor[2], floor[3], 5):
            d.line([px(*project(np.array([floor[0], 0, z]))), px(*project(np.array([floor[1], 0, z])))], fill=(215, 215, 210))
        trail = [px(a, b) for a, b in zip(*path_uv, strict=True)]
        if len(trail) > 1:
            d.line(trail, fill=(190, 190, 190), width=2)
            d.line(trail[: t + 1] if t > 0 else trail[:2], fill=(90, 90, 90), width=2)
        for chain, colour in zip(KINEMATIC_CHAIN, CHAIN_COLOURS, strict=True):
            d.line([px(u[t, k], v[t, k]) for k in chain], fill=colour, width=3)
        frames.append(img.convert("P", palette=Image.ADAPTIVE, colors=32))
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=int(1000 * every / fps), loop=0,
                   optimize=True)  # fmt: skip


def _svg_bars(values: list[tuple[str, float]], *, width: int = 520, bar: int = 16, unit: str = "") -> str:
    """A horizontal bar chart as inline SVG (labels escaped)."""
    if not values:
        return "<p class=muted>(none)</p>"
    top = max(v for _, v in values) or 1
    rows = []
    for i, (label, value) in enumerate(values):
        y = i * (bar + 4)
        bw = (width - 190) * value / top
        rows.append(f'<text x="0" y="{y + bar - 4}" class="lbl">{e(str(label))}</text>'
                    f'<rect x="150" y="{y}" width="{bw:.1f}" height="{bar}" class="bar"/>'
                    f'<text x="{155 + bw:.1f}" y="{y + bar - 4}" class="val">{value:,.0f}{e(unit)}</text>')  # fmt: skip
    return f'<svg width="{width}" height="{len(values) * (bar + 4)}" role="img">{"".join(rows)}</svg>'


def _histogram(values: np.ndarray, bins: int = 12, unit: str = "") -> str:
    if len(values) == 0:
        return "<p class=muted>(none)</p>"
    counts, edges = np.histogram(values, bins=bins)
    digits = 1 if edges[1] - edges[0] < 2 else 0
    return _svg_bars([(f"{edges[k]:.{digits}f}–{edges[k + 1]:.{digits}f}{unit}", int(c)) for k, c in enumerate(counts)])


def _table(rows: list[list], head: list[str]) -> str:
    body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{''.join(f'<th>{e(h)}</th>' for h in head)}</tr>{body}</table>"


# --- data ----------------------------------------------------------------------------------------------
def _dataset(out: Path, manifest: dict, table: str):
    """The shards of ``table`` that the manifest lists (never a stray file, never a path leading outside OUT)."""
    from pipeline.runstate import contained_path

    files = [str(contained_path(out, s["path"])) for s in manifest["shards"] if s["table"] == table]
    return pads.dataset(files, format="parquet") if files else None


def _pick(ids: list[str], n: int) -> list[str]:
    if len(ids) <= n:
        return ids
    return [ids[int(k)] for k in np.linspace(0, len(ids) - 1, n).round()]


# --- the destination folder ----------------------------------------------------------------------------
def report_files(dest: str | Path) -> list[str]:
    """The files of the report movid wrote in ``dest`` (relative to it: the marker, ``index.html`` and the
    images under ``assets/`` with the names movid gives them), or ``[]`` when ``dest`` holds no such report.
    Anything else in ``dest`` is not movid's."""
    dest = Path(dest)
    marker = dest / MARKER
    if marker.is_symlink() or not marker.is_file():
        return []
    files = [MARKER, "index.html"]
    assets = dest / "assets"
    if assets.is_dir() and not assets.is_symlink():
        files += sorted(f"assets/{p.name}" for p in assets.iterdir() if _ASSET.fullmatch(p.name))
    return files


def _claim(out: Path, dest: Path) -> None:
    """Make ``dest`` ready for a report: new, empty, or a report movid wrote (whose files go; a user's files
    beside them stay). Anything else is refused, so a report never deletes or overwrites what is not movid's."""
    from pipeline.runstate import BUILD_DIRS, RunStateError, atomic_write_bytes

    if dest.exists() and not dest.is_dir():
        raise RunStateError(f"--dest {dest} is not a folder")
    real_out, real_dest = Path(os.path.realpath(out)), Path(os.path.realpath(dest))
    if real_dest == real_out or (real_out in real_dest.parents
                                 and real_dest.relative_to(real_out).parts[0] in (*BUILD_DIRS, "export")):  # fmt: skip
        raise RunStateError(f"--dest {dest} is inside the build's own folders; choose a folder of its own (default "
                            f"{out / REPORT_DIR})")  # fmt: skip
    if dest.is_dir():
        ours = report_files(dest)
        if not ours and any(dest.iterdir()):
            raise RunStateError(f"--dest {dest} is not empty and holds no report movid wrote (no {MARKER} file); "
                                "choose a new or empty folder")  # fmt: skip
        assets = dest / "assets"
        if assets.is_symlink() or (assets.exists() and not assets.is_dir()):
            raise RunStateError(f"{assets} is not a folder movid wrote (a symlink or a file); remove it")
        for rel in ours:
            if rel != MARKER:
                (dest / rel).unlink(missing_ok=True)  # a symlink goes as a link
    # the marker first: a report cut off halfway is still known as movid's, and the next one replaces it
    atomic_write_bytes(dest / MARKER, b'{"written_by": "movid report"}\n')
    (dest / "assets").mkdir(exist_ok=True)


def write_report(out: str | Path, dest: str | Path | None = None, samples: int = 12, *, wait: bool = False) -> Path:
    """Write the report of the finished build in ``out``; returns the path of its index.html. ``dest``
    (default ``OUT/report``) must be new, empty or a report movid wrote. Writing into ``OUT`` holds its lock."""
    from pipeline.runstate import RunStateError, lock_out

    out = Path(out)
    if not has_manifest(out):
        raise RunStateError(f"{out}: no manifest.json — not a finished movid build")
    dest = Path(dest) if dest else out / REPORT_DIR
    real_out = Path(os.path.realpath(out))
    in_out = real_out in Path(os.path.realpath(dest)).parents
    with lock_out(out, "movid report", wait=wait) if in_out else nullcontext():
        m = load_manifest(out).raw  # (ManifestError, one line, when it is not JSON or not a manifest)
        datasets = [_dataset(out, m, t) for t in ("motion", "video", "instruction")]  # (checks the paths first)
        _claim(out, dest)
        return _write(out, dest, m, samples, *datasets)


def _write(out: Path, dest: Path, m: dict, samples: int, motion, video, instr) -> Path:
    from pipeline.runstate import atomic_write_bytes

    mt = motion.to_table(columns=["motion_id", "split", "num_frames", "texts", "quality_flags"]) if motion else None
    vt = video.to_table(columns=["video_id", "motion_id", "split"]) if video else None
    it = instr.to_table(columns=["modality", "task", "category"]) if instr else None

    sections = [f"<h1>movid build report</h1><p class=muted>{e(str(out))} — movid {e(m['code_version'])}, schema "
                f"{e(m['schema_version'])}, config <code>{e(m['config_hash'])}</code>, built {e(m['created_at'])}; "
                f"reconciliation <b>{'ok' if m['reconciliation']['ok'] else 'FAILED'}</b></p>"]  # fmt: skip
    rows = [[t, s, n] for t, splits in m["counts"].items() for s, n in splits.items()]
    sections.append("<h2>Counts</h2>" + _table(rows, ["table", "split", "rows"]))
    if it is not None and it.num_rows:
        by = Counter(zip(it.column("modality").to_pylist(), it.column("task").to_pylist(), strict=True))
        sections.append("<h2>Conversations by modality and task</h2>"
                        + _svg_bars([(f"{a} / {b}", n) for (a, b), n in sorted(by.items())]))  # fmt: skip
        qa = it.filter(pc.equal(it.column("task"), "qa"))
        cats = Counter(qa.column("category").to_pylist())
        sections.append("<h2>QA categories</h2>" + _svg_bars([(c or "(none)", n) for c, n in cats.most_common()]))
    if mt is not None and mt.num_rows:
        lengths = mt.column("num_frames").to_numpy() / FPS
        caps = pc.list_flatten(mt.column("texts"))
        cap_words = np.array([len(c.split()) for c in pc.struct_field(caps, "caption").to_pylist()])
        flags = Counter(f for fl in mt.column("quality_flags").to_pylist() for f in fl)
        sections.append("<h2>Motion length</h2>" + _histogram(lengths, unit=" s")
                        + "<h2>Caption length</h2>" + _histogram(cap_words, unit=" words")
                        + "<h2>Plausibility flags (kept clips)</h2>"
                        + _svg_bars(sorted(flags.items())))  # fmt: skip
    sections.append(_clip_stats_section(out, m))
    reasons = m.get("quarantine_reasons", {})
    sections.append("<h2>Quarantine reasons</h2>" + _svg_bars(list(reasons.items())))
    val = m.get("validation", {})
    if val.get("table_level", {}).get("checks"):
        checks = [[k, "ok" if c["ok"] else f"FAILED ({c['unexpected']})"] for k, c in val["table_level"]["checks"].items()]
        docs = out / val.get("data_docs", "")
        link = f' — <a href="{e(os.path.relpath(docs, dest))}">Data Docs</a>' if docs.is_file() else ""
        sections.append(f"<h2>Table-level validation{link}</h2>" + _table(checks, ["check", "result"]))
    a = m.get("annotator", {})
    sections.append("<h2>Annotator</h2>" + _table([[k, a[k]] for k in ("backend", "model", "requests", "retries",
                    "reasks", "cache_hits", "prompt_tokens", "completion_tokens", "cost_usd") if k in a],
                    ["", "value"]))  # fmt: skip
    secs = m.get("seconds", {})
    stage_rows = [(k, v) for k, v in secs.items() if isinstance(v, (int, float))]
    stage_rows += [(f"units: {k}", v) for k, v in secs.get("unit_stages", {}).items()]
    sections.append("<h2>Time per stage (s)</h2>" + _table([[k, f"{v:.2f}"] for k, v in stage_rows], ["stage", "seconds"]))
    sections.append("<h2>Samples</h2>" + _samples(out, dest, motion, video, instr, mt, vt, samples))

    page = _PAGE.replace("{BODY}", "\n".join(sections))
    index = dest / "index.html"
    atomic_write_bytes(index, page.encode("utf-8"))  # (replaces a symlink planted there, never its target)
    return index


def clip_stats_rows(table) -> list[list]:
    """Per split and over all: clips, mean duration (s), mean root path (m), mean and top speed (m/s)."""
    groups = {"all": table} | {s: table.filter(pc.equal(table.column("split"), s))
                               for s in sorted(set(table.column("split").to_pylist()))}  # fmt: skip
    rows = []
    for name, t in groups.items():
        d, p, v = (t.column(c).to_numpy() for c in ("duration_s", "path_length_m", "mean_speed_mps"))
        rows.append([name, t.num_rows, f"{d.mean():.2f}", f"{p.mean():.2f}", f"{v.mean():.2f}", f"{v.max():.2f}"])
    return rows


def _clip_stats_section(out: Path, m: dict) -> str:
    """The ``clip_stats`` table's numbers (stages/clip_stats.py), summed up per split."""
    stats = _dataset(out, m, "clip_stats")
    table = stats.to_table() if stats else None
    if table is None or not table.num_rows:
        return "<h2>Clip statistics</h2><p class=muted>(no motion clips)</p>"
    head = ["split", "clips", "mean duration (s)", "mean root path (m)", "mean speed (m/s)", "top speed (m/s)"]
    return "<h2>Clip statistics</h2>" + _table(clip_stats_rows(table), head)


def _samples(out, dest, motion, video, instr, mt, vt, n) -> str:
    if mt is None or not mt.num_rows:
        return "<p class=muted>(no motions)</p>"
    linked = sorted(set(vt.column("motion_id").drop_null().to_pylist())) if vt is not None else []
    full = sorted(set(mt.column("motion_id").to_pylist()))
    chosen = _pick(linked, n // 2) if linked else []
    chosen += [i for i in _pick([i for i in full if i not in set(chosen)], n - len(chosen))]
    chosen = sorted(set(chosen) & set(full))
    rows = motion.to_table(columns=["motion_id", "split", "num_frames", "joints", "texts", "quality_flags"],
                           filter=pc.field("motion_id").isin(chosen)).to_pylist()  # fmt: skip
    videos = {}
    if video is not None:
        for r in video.to_table(columns=["video_id", "motion_id", "frames", "frame_timestamps", "captions"],
                                filter=pc.field("motion_id").isin(chosen)).to_pylist():  # fmt: skip
            videos.setdefault(r["motion_id"], r)
    convs: dict[str, list] = {}
    if instr is not None:
        for r in instr.to_table(columns=["motion_id", "video_id", "task", "category", "conversations", "modality"],
                                filter=pc.field("motion_id").isin(chosen)).to_pylist():  # fmt: skip
            convs.setdefault(r["motion_id"], []).append(r)
    cards = []
    for k, r in enumerate(sorted(rows, key=lambda r: r["motion_id"])):
        gif = f"assets/motion-{k:03d}.gif"
        render_skeleton_gif(np.array(r["joints"], np.float32), dest / gif)
        parts = [f'<div class="anim"><img src="{gif}" alt="skeleton of {e(r["motion_id"])}" width="240" height="240"></div>']
        v = videos.get(r["motion_id"])
        if v:
            imgs = []
            for f, (jpeg, ts) in enumerate(zip(v["frames"], v["frame_timestamps"], strict=True)):
                name = f"assets/video-{k:03d}-{f}.jpg"
                (dest / name).write_bytes(jpeg)
                imgs.append(f'<figure><img src="{name}" alt="frame {f} of {e(v["video_id"])}" height="96">'
                            f"<figcaption>{ts:.2f} s</figcaption></figure>")  # fmt: skip
            parts.append(f'<div class="frames"><div class=muted>video {e(v["video_id"])}</div>{"".join(imgs)}</div>')
        caps = "".join(f"<li>{e(t['caption'])}" + (f" <span class=muted>({t['start']:.1f}–{t['end']:.1f} s)</span>"
                       if t["end"] > 0 else "") + "</li>" for t in r["texts"])  # fmt: skip
        flags = " ".join(f'<span class="flag">{e(f)}</span>' for f in r["quality_flags"])
        dialog = []
        for c in convs.get(r["motion_id"], [])[:6]:
            turns = "".join(f'<div class="turn {e(t["role"])}"><b>{e(t["role"])}:</b> {e(t["content"])}</div>'
                            for t in c["conversations"])  # fmt: skip
            dialog.append(f'<div class="conv"><div class=muted>{e(c["modality"])} · {e(c["task"])} · '
                          f'{e(str(c["category"] or ""))}</div>{turns}</div>')  # fmt: skip
        cards.append(f'<section class="sample" data-motion-id="{e(r["motion_id"])}"><h3>{e(r["motion_id"])} '
                     f'<span class=muted>{e(r["split"])}, {r["num_frames"]} frames</span> {flags}</h3>'
                     f'<div class="row">{"".join(parts)}</div><h4>Captions</h4><ul>{caps}</ul>'
                     f'<h4>Conversations</h4>{"".join(dialog) or "<p class=muted>(none)</p>"}</section>')  # fmt: skip
    return "".join(cards)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>movid build report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1100px;color:#222;padding:0 16px}
h1{font-size:22px} h2{font-size:17px;margin-top:28px;border-bottom:1px solid #ddd} h3{font-size:15px}
table{border-collapse:collapse} td,th{border:1px solid #ddd;padding:3px 8px;text-align:left}
.muted{color:#777} .bar{fill:#4f7cac} .lbl,.val{font-size:11px;fill:#333}
.sample{border:1px solid #ddd;border-radius:6px;padding:10px 14px;margin:14px 0}
.row{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
.frames figure{display:inline-block;margin:0 4px 4px 0;font-size:11px;color:#777}
.conv{background:#f6f6f3;border-radius:4px;padding:6px 10px;margin:6px 0} .turn{white-space:pre-wrap}
.flag{background:#fbe3c4;border-radius:3px;padding:0 5px;font-size:11px;font-weight:normal}
#status{font-size:12px}
</style></head>
<body>
<p id="status" class="muted">loading images…</p>
{BODY}
<script>
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var s = document.getElementById("status");
  s.textContent = ok === imgs.length ? "all " + imgs.length + " images loaded"
                                     : (imgs.length - ok) + " of " + imgs.length + " images failed to load";
  document.body.setAttribute("data-images-loaded", ok);
  document.body.setAttribute("data-images-total", imgs.length);
});
</script>
</body></html>
"""
