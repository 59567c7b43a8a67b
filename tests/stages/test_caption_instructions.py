import pyarrow as pa

from schemas import check_conforms
from schemas.instruction import MOTION_PLACEHOLDER
from stages.caption_instructions import CAPTION_PROMPTS, caption_instructions


def _motion(ids, n_caps=2):
    texts = [[{"caption": f"cap {i} of {m}", "tokens": ["x/NOUN"], "start": 0.0, "end": 0.0} for i in range(n_caps)]
             for m in ids]  # fmt: skip
    return pa.table({"motion_id": ids, "split": ["test"] * len(ids), "texts": texts})


def test_one_conversation_per_caption():
    res = caption_instructions(_motion(["000001", "000002", "M000001"]), seed=0)
    t = res.tables["instruction"]
    check_conforms(t, "instruction")
    rows = t.to_pylist()
    assert len(rows) == 6 and res.counters["captions_in"] == 6
    r = rows[0]
    assert r["sample_id"] == "000001/caption/0" and r["modality"] == "motion" and r["task"] == "caption"
    user, assistant = r["conversations"]
    assert user["role"] == "user" and user["content"].startswith(MOTION_PLACEHOLDER + "\n")
    assert user["content"].split("\n", 1)[1] in CAPTION_PROMPTS
    assert assistant == {"role": "assistant", "content": "cap 0 of 000001"}
    assert r["split"] == "test" and r["annotator"]["backend"] == "template"


def test_prompt_choice_depends_on_seed_and_sample_not_order():
    ids = [f"{i:06d}" for i in range(30)]
    a = caption_instructions(_motion(ids), seed=0).tables["instruction"].to_pylist()
    b = caption_instructions(_motion(ids[::-1]), seed=0).tables["instruction"].to_pylist()
    by_id = {r["sample_id"]: r["conversations"][0]["content"] for r in b}
    assert all(by_id[r["sample_id"]] == r["conversations"][0]["content"] for r in a)
    prompts = {r["conversations"][0]["content"] for r in a}
    assert len(prompts) >= 5  # varied, not one fixed prompt
    c = caption_instructions(_motion(ids), seed=1).tables["instruction"].to_pylist()
    assert [r["conversations"][0]["content"] for r in c] != [r["conversations"][0]["content"] for r in a]
