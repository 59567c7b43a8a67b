"""Orchestration: config, planner, executors (Ray and local), run state, manifest and the ``movid`` CLI.
Stages stay in ``stages/``; this package decides where and when they run and where their output goes."""
