import json

import pytest

from movid.cli import main
from tests.conftest import local_build


@pytest.fixture(scope="module")
def built(clean_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "out"
    m = local_build(clean_tree, out, "plan.unit_size=16")
    return out, m


def test_llava_export_has_every_conversation(built, tmp_path):
    out, m = built
    assert main(["export", str(out), "--format", "llava", "--dest", str(tmp_path)]) == 0
    n = 0
    for split, rows in m["counts"]["instruction"].items():
        records = json.loads((tmp_path / "llava" / f"{split}.json").read_text())
        assert len(records) == rows
        n += len(records)
        for r in records:
            convo = r["conversations"]
            assert [t["from"] for t in convo] == ["human", "gpt"] * (len(convo) // 2)
            assert "<motion>" in convo[0]["value"] and r["motion"]
    assert n == sum(m["counts"]["instruction"].values())


def test_alpaca_export_has_one_record_per_question(built, tmp_path):
    out, m = built
    assert main(["export", str(out), "--format", "alpaca", "--dest", str(tmp_path)]) == 0
    llava_dir = tmp_path / "l"
    main(["export", str(out), "--format", "llava", "--dest", str(llava_dir)])
    for split in m["counts"]["instruction"]:
        alpaca = json.loads((tmp_path / "alpaca" / f"{split}.json").read_text())
        llava = json.loads((llava_dir / "llava" / f"{split}.json").read_text())
        assert len(alpaca) == sum(len(r["conversations"]) // 2 for r in llava)
        for a in alpaca:
            assert set(a) >= {"instruction", "input", "output"} and a["input"] == ""
            assert "<motion>" not in a["instruction"] and a["instruction"] and a["output"] and a["motion_id"]
