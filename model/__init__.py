"""The consumer side of a build: reading shards for training and evaluation. The MotionLLM-style model,
its trainer and the benchmark scorer grow here."""
