"""Pure processing stages: each takes an Arrow batch plus its config section and returns accepted rows
(per output table) and rejects with reasons. No Ray, no output layout, no global state in here, so a
stage is testable with a three-row table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from schemas.quarantine import Reject

__all__ = ["StageResult"]


@dataclass
class StageResult:
    tables: dict[str, pa.Table]  # accepted rows, by output table name
    rejects: list[Reject] = field(default_factory=list)
    counters: Counter = field(default_factory=Counter)  # in/out counts and dropped_<reason>
