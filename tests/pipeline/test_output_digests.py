"""The reference builds give the recorded bytes (tests/output_digests.py): a refactor that changes a shard
fails here; an intended output change re-records with ``python tests/output_digests.py --record``."""

import json

import pytest

from tests.output_digests import BUILDS, DIGESTS, compare, run_build


@pytest.mark.parametrize("kind", BUILDS)
def test_reference_build_is_byte_identical_to_its_recorded_digests(kind, tmp_path):
    recorded = json.loads(DIGESTS.read_text())[kind]
    got = run_build(kind, tmp_path)
    assert not compare(recorded, got), "\n".join(compare(recorded, got))
    assert len(got) >= 4 and "manifest" in got


def test_compare_names_every_difference():
    assert compare({"a": "1" * 64, "b": "2" * 64}, {"a": "1" * 64, "b": "3" * 64, "c": "4" * 64}) == [
        "b: recorded 222222222222…, now 333333333333…", "c: not recorded"]  # fmt: skip
