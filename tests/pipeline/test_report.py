"""``movid report``: the HTML report opens offline in headless Chromium, every image loads, the sampled
clips are shown, and captions holding markup show as text."""

import re
import shutil
import subprocess

import pyarrow.parquet as pq
import pytest

from movid.cli import main
from pipeline.sample_data import write_sample_humanml3d, write_sample_videos
from tests.conftest import local_build

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
EVIL = 'a person <script>document.title="pwned"</script><b>walks</b> forward.'


def _chromium(*args):
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=5000", *args], capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    d = tmp_path_factory.mktemp("report")
    h3d = d / "humanml3d"
    write_sample_humanml3d(h3d, n_motions=4, seed=2)
    write_sample_videos(d / "videos", h3d, 2)
    first = sorted((h3d / "texts").iterdir())[0]
    first.write_text(f"{EVIL}#a/DET person/NOUN walk/VERB#0.0#0.0\n" + first.read_text())
    out = d / "out"
    local_build(None, out, sources=[f"humanml3d={h3d}", f"video={d / 'videos'}"])
    assert main(["report", str(out), "--samples", "100"]) == 0
    return out, out / "report" / "index.html", first.stem


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make browser / .ci/run install it)")
def test_report_opens_in_headless_chromium_with_every_image_loaded(report, tmp_path):
    out, index, _ = report
    dom = _chromium("--dump-dom", index.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    loaded = int(re.search(r'data-images-loaded="(\d+)"', dom.stdout).group(1))
    total = int(re.search(r'data-images-total="(\d+)"', dom.stdout).group(1))
    assert total == loaded and total >= 8 + 2 * 8  # every clip's animation, and both videos' 8 frames
    shown = set(re.findall(r'data-motion-id="([^"]+)"', dom.stdout))
    motions = {i for p in (out / "motion").rglob("*.parquet") for i in pq.read_table(p).column("motion_id").to_pylist()}
    assert shown == motions and len(shown) >= 8  # --samples 100: every clip is on the page
    shot = tmp_path / "report.png"
    r = _chromium("--window-size=1200,3000", f"--screenshot={shot}", index.as_uri())
    assert r.returncode == 0 and shot.stat().st_size > 20_000
    shutil.copy(shot, out / "report" / "screenshot.png")  # kept beside the report for a look


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make browser / .ci/run install it)")
def test_a_caption_with_markup_shows_as_text(report):
    _, index, _ = report
    dom = _chromium("--dump-dom", index.as_uri()).stdout
    assert "<title>movid build report</title>" in dom  # the caption's script did not run
    assert "&lt;script&gt;document.title" in dom and "&lt;b&gt;walks&lt;/b&gt;" in dom


def test_report_escapes_data_text_in_the_file(report):
    _, index, mid = report
    page = index.read_text()
    assert EVIL not in page and "&lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt;" in page
    assert f'data-motion-id="{mid}"' in page and page.count("<script>") == 1  # only the report's own
