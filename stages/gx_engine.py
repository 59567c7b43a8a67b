"""The great-expectations adapter: the engine imported quietly and once per process (in the background while
a unit ingests), one ephemeral context, validation definitions cached by their content, suites run for a
verdict and failed expectations again for their rows, and the expectation subclass that keeps its
configuration (GX rebuilds it on every read)."""

from __future__ import annotations

import copy as _copy
import hashlib
import json
import logging
import threading
import time
from functools import cache, lru_cache

from stages.threads import reapply

__all__ = ["content_digest", "engine_ready", "expectation_class", "gx_module", "preload", "run_suite",
           "setup_seconds", "suite_key"]  # fmt: skip

log = logging.getLogger(__name__)


# --- the engine --------------------------------------------------------------------------------------
def gx_module():
    """great_expectations, imported quietly: its logger (which reports every function it registers at INFO
    while importing) at WARNING. (Analytics are off by GX_ANALYTICS_ENABLED, which the entry points set.)"""
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations

    return great_expectations


_PRELOAD: list = []


def preload() -> None:
    """Start importing great-expectations (2-4 s of Python) in a background thread, once per process, so
    it overlaps a unit's ingest (file reads and numpy, which release the GIL) instead of following it."""
    if not _PRELOAD:
        _PRELOAD.append(threading.Thread(target=_context, name="movid-gx-import", daemon=True))
        _PRELOAD[0].start()


_CONTEXT_LOCK = threading.Lock()


def _context():
    """The process's ephemeral great-expectations context (made once; safe from several threads)."""
    with _CONTEXT_LOCK:
        return _make_context()


_SETUP: list[float] = []  # CPU seconds this process spent making its context (the import, mostly), until reported


@lru_cache(maxsize=1)
def _make_context():
    t = time.thread_time()
    gx = gx_module()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    _SETUP.append(time.thread_time() - t)
    return ctx


def engine_ready() -> float:
    """Make sure the process's great-expectations context exists (importing it, or waiting for the preload
    thread to finish); returns the seconds that took here, so a unit can keep them out of its validate
    stage's time: they are the import's, which :func:`setup_seconds` reports in full."""
    t = time.perf_counter()
    _context()
    # the import loaded scipy's own OpenBLAS at its default threads; OpenBLAS takes a thread count only from
    # the thread that works (a limit set in the preload thread does not hold), so this thread sets it
    reapply()
    return time.perf_counter() - t


def setup_seconds() -> float:
    """CPU seconds this process spent importing great-expectations and making its context (~2.3 s), the
    first time it is asked after that; then 0. A unit reports it as a stage of its own: the preload thread's
    import slows whatever it overlaps (ingest, instructions), not the validate stage's timer."""
    return _SETUP.pop() if _SETUP else 0.0


_DEFINITIONS: dict[str, object] = {}


def content_digest(value) -> str:
    """A content key: the sha256 of ``value`` as sorted-keys JSON (what is not JSON, by its repr)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=repr).encode()).hexdigest()


def suite_key(name: str, expectations: list) -> str:
    """The key of a suite's validation definition: ``name`` and a hash of each expectation's type, arguments
    and meta — what it checks, never where the list lives in memory (an ``id()`` is reused once its list is
    freed, and a suite would then run with another config's thresholds). The id GX gives an expectation
    when a suite takes it is no part of it."""
    parts = []
    for e in expectations:
        c = e.configuration
        parts.append((c.type, c.kwargs, c.meta))
    return f"{name}:{content_digest(parts)}"


def _definition(name: str, key: str, expectations: list):
    """A validation definition (data source, batch, suite) built once per process for ``key``."""
    vd = _DEFINITIONS.get(key)
    if vd is None:
        ctx, gx, n = _context(), gx_module(), len(_DEFINITIONS)
        ds = ctx.data_sources.add_or_update_pandas(f"movid_{n}")
        batch = ds.add_dataframe_asset(name).add_batch_definition_whole_dataframe("all")
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"{name}_{n}"))
        for e in expectations:
            suite.add_expectation(e)
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"{name}_{n}", data=batch, suite=suite))
        _DEFINITIONS[key] = vd
    return vd


def _validate(vd, df, result_format: str):
    """Run ``vd``'s suite on ``df`` with great-expectations' validator, without ``ValidationDefinition.run``'s
    storing of the result in the context (~10 % of a run; a unit's results live in its quarantine rows and
    counters, and no Data Docs are built per unit)."""
    from great_expectations.validator.v1_validator import Validator

    validator = Validator(batch_definition=vd.batch_definition, result_format={"result_format": result_format},
                          batch_parameters={"dataframe": df})  # fmt: skip
    return validator.validate_expectation_suite(vd.suite)


def run_suite(name: str, df, expectations: list) -> list[tuple[dict, list[int], object]]:
    """Run ``expectations`` (great-expectations Expectation objects, each with ``meta``) on the pandas
    DataFrame ``df``. Returns, per failed expectation, its meta, the failing row positions, and the
    result (for reports).

    great-expectations costs ~10 ms per expectation and run whatever the rows, more for the failing
    rows' indices; so the whole suite runs for its verdict only, and each failed expectation runs again
    alone for its rows."""
    if df.empty:
        return []
    key = suite_key(name, expectations)
    df = df.reset_index(drop=True)
    verdict = _validate(_definition(name, key, expectations), df, "BOOLEAN_ONLY")
    if verdict.success:
        return []
    failed = []
    for r in verdict.results:
        if r.success:
            continue
        k = next(i for i, e in enumerate(expectations)
                 if e.meta == r.expectation_config.meta and e.column == r.expectation_config.kwargs.get("column"))  # fmt: skip
        copy = _copy.copy(expectations[k])
        copy.id = None
        alone = _definition(name, f"{key}:{k}", [copy])
        (r,) = _validate(alone, df, "COMPLETE").results
        if r.exception_info and r.exception_info.get("raised_exception"):
            raise RuntimeError(f"validation of {name}: {r.expectation_config.type} raised "
                               f"{r.exception_info.get('exception_message')}")  # fmt: skip
        failed.append((r.expectation_config.meta or {}, list(r.result.get("unexpected_index_list") or []), r))
    return failed




_MEMO = "_movid_configuration"


@cache
def expectation_class(name: str):
    """great-expectations' core expectation class ``name``, with its ``configuration`` built once per instance.

    GX rebuilds an expectation's configuration (a pydantic ``dict()`` and a regular expression over the class
    name) every time it is read: ~60 times per expectation and run while it plans the metrics, ~40 % of a
    record-level suite's run (a unit's suite: ~20 ms → ~12 ms). The subclass (GX registers it as
    ``movid_<core type>``) keeps the configuration until one of its fields is set; metrics, checks and
    results are the core expectation's (a test compares the two on failing data)."""
    from great_expectations.compatibility import pydantic

    base = getattr(gx_module().expectations, name)

    def configuration(self):
        memo = getattr(self, _MEMO)
        if memo is None:
            memo = base.configuration.fget(self)
            base.__setattr__(self, _MEMO, memo)
        return memo

    def __setattr__(self, key, value):
        base.__setattr__(self, key, value)
        if key != _MEMO:
            base.__setattr__(self, _MEMO, None)

    namespace = {"__module__": "stages.validate", "__qualname__": f"Movid{name}", "__doc__": base.__doc__,
                 _MEMO: pydantic.PrivateAttr(default=None), "configuration": property(configuration),
                 "__setattr__": __setattr__}  # fmt: skip
    return type(base)(f"Movid{name}", (base,), namespace)  # (GX's metaclass registers it by this name)
