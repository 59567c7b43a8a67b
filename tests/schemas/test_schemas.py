import numpy as np
import pyarrow as pa
import pytest

from schemas import SCHEMA_VERSION, SchemaMismatch, check_conforms, with_table_metadata
from schemas.motion import FEATURE_DIM, FEATURE_LAYOUT, motion_table
from schemas.quarantine import Reject, rejects_table


def _row(**kw):
    row = dict(motion_id="000001", source="humanml3d", source_path="new_joint_vecs/000001.npy", parent_id=None,
               mirror_of=None, start_frame=0, end_frame=4, split="train", fps=20.0, num_frames=4,
               features=np.arange(4 * 263, dtype=np.float32).reshape(4, 263), joints=np.ones((4, 22, 3)),
               texts=[{"caption": "a person waves.", "tokens": ["a/DET"], "start": 0.0, "end": 0.0}])
    row.update(kw)
    return row


def test_feature_layout_covers_263_dims_in_order():
    stops = [s.stop for s in FEATURE_LAYOUT.values()]
    starts = [s.start for s in FEATURE_LAYOUT.values()]
    assert starts[0] == 0 and stops[-1] == FEATURE_DIM and starts[1:] == stops[:-1]


def test_motion_table_round_trips_arrays():
    t = motion_table([_row(), _row(motion_id="M000001", mirror_of="000001")])
    check_conforms(t, "motion")
    feats = np.array(t.column("features")[0].as_py(), dtype=np.float32)
    np.testing.assert_array_equal(feats, _row()["features"])
    assert np.array(t.column("joints")[1].as_py()).shape == (4, 22, 3)


def test_check_names_missing_column():
    t = motion_table([_row()]).drop_columns(["fps"])
    with pytest.raises(SchemaMismatch, match="'fps' is missing"):
        check_conforms(t, "motion")


def test_check_names_mistyped_column():
    t = motion_table([_row()])
    t = t.set_column(t.schema.get_field_index("num_frames"), "num_frames", pa.array([4], pa.int64()))
    with pytest.raises(SchemaMismatch, match="'num_frames' has type int64"):
        check_conforms(t, "motion")


def test_check_names_extra_column_and_nulls():
    t = rejects_table([Reject("x", "motion", "s", "r", "d", "humanml3d")])
    with pytest.raises(SchemaMismatch, match="'extra' is not in the quarantine schema"):
        check_conforms(t.append_column("extra", pa.array([1])), "quarantine")
    nulls = t.set_column(0, pa.field("record_id", pa.string()), pa.array([None], pa.string()))
    with pytest.raises(SchemaMismatch, match="'record_id' holds nulls"):
        check_conforms(nulls, "quarantine")


def test_metadata_carries_schema_version():
    md = with_table_metadata(motion_table([_row()]).schema, "motion").metadata
    assert md[b"movid.schema_version"] == SCHEMA_VERSION.encode() and md[b"movid.table"] == b"motion"
