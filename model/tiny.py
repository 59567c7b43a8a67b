"""Tiny local stand-ins for the real weights, built from nothing but a build's text: a byte-level BPE tokenizer
trained on its conversations, a random 2-layer Llama and a random 2-layer CLIP vision tower, each saved with
``save_pretrained`` so the trainer loads them through the same ``from_pretrained`` path as Vicuna and a real
tower. For tests, benchmarks and trying the trainer on a CPU: ``python -m model.tiny --data OUT --dest DIR``
(hidden size 128 from the command line, 64 by default from Python, where the tests want speed)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import pyarrow.dataset as pads

from model import ENVIRONMENT
from model.config import VICUNA_SYSTEM
from model.train_log import quiet_libraries

__all__ = ["build_corpus", "write_tiny_assets"]


def build_corpus(out: str | Path) -> list[str]:
    """Every turn of the build's conversations, and the template's words."""
    table = pads.dataset(str(Path(out) / "instruction"), format="parquet").to_table(columns=["conversations"])
    texts = [turn["content"] for conv in table["conversations"].to_pylist() for turn in conv]
    return texts + [VICUNA_SYSTEM, "USER: ASSISTANT:"] * 20


def write_tiny_assets(dest: str | Path, corpus: list[str], *, vocab_size: int = 1024, hidden: int = 64,
                      layers: int = 2, heads: int = 4, seed: int = 0) -> dict[str, str]:  # fmt: skip
    """``{"lm": folder with tokenizer + LlamaForCausalLM, "vision": folder with a CLIPVisionModel}``."""
    # here: torch, tokenizers and transformers take seconds to import, and only writing the assets needs them
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        LlamaConfig,
        LlamaForCausalLM,
        PreTrainedTokenizerFast,  # fmt: skip
    )

    dest = Path(dest)
    lm_dir, vision_dir = dest / "lm", dest / "vision"
    # Byte-level BPE: every string round-trips exactly through encode/decode (a word-level tokenizer would not).
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))  # fmt: skip
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>")  # fmt: skip
    tokenizer.save_pretrained(lm_dir)
    torch.manual_seed(seed)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                                      num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
                                      max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
                                      eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))  # fmt: skip
    lm.save_pretrained(lm_dir)
    tower = CLIPVisionModel(CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=2, image_size=32, patch_size=16))  # fmt: skip
    tower.save_pretrained(vision_dir)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(vision_dir)
    return {"lm": str(lm_dir), "vision": str(vision_dir)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m model.tiny", description=__doc__)
    p.add_argument("--data", required=True, metavar="OUT", help="a build whose conversations train the tokenizer")
    p.add_argument("--dest", required=True, help="writes DEST/lm and DEST/vision")
    p.add_argument("--hidden", type=int, default=128,
                   help="the LM's hidden size (128: enough for tiny_demo.yaml to learn from the motion; the tests use 64)")  # fmt: skip
    p.add_argument("--layers", type=int, default=2, help="the LM's decoder layers")
    p.add_argument("--vocab-size", type=int, default=1024, help="BPE vocabulary (placeholders and specials included)")
    args = p.parse_args(argv)
    for name, value in ENVIRONMENT.items():  # an entry point: the consumer side's library environment
        os.environ.setdefault(name, value)
    quiet_libraries()
    paths = write_tiny_assets(args.dest, build_corpus(args.data), vocab_size=args.vocab_size, hidden=args.hidden,
                              layers=args.layers)  # fmt: skip
    print(f"tiny LM + tokenizer in {paths['lm']}, tiny CLIP vision tower in {paths['vision']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
