"""The consumer side of a build: reading shards for training and evaluation, the MotionLLM-style model, its
trainer, bench answering, the benchmark scorer and export. It reads the data side through ``pipeline``'s
public API only (docs/architecture.md, "Layers")."""

__all__ = ["ENVIRONMENT"]

# Process environment of the consumer side's libraries, set (where unset) by the entry points only (movid,
# python -m model.cli / model.train / model.tiny) and sent to a joined Ray cluster's workers: models and
# tokenizers come from local folders (never the hub); no tokenizer thread pool forked into loader workers.
ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
