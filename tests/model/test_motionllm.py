"""The model: T2M-GPT's encoder (token counts, padding-invariance, its checkpoint names), the VQ codebook,
the splice of projected features into the placeholders' embeddings, what trains in each stage, and the error
for a missing weights folder."""

import pytest
import torch

from model.motionllm import (
    MissingWeights,
    MotionEncoder,
    VectorQuantizer,
    build_model,
    motion_token_count,
    trainable_groups,  # fmt: skip
)
from model.template import MOTION_TOKEN, VIDEO_TOKEN


def test_token_count_is_a_quarter_of_the_frames():
    enc = MotionEncoder(code_dim=16, width=16, depth=2)
    for t in (40, 41, 42, 43, 196):
        z, mask = enc(torch.randn(1, t, 263), torch.tensor([t]))
        assert z.shape == (1, t // 4, 16) and mask.all()
        assert motion_token_count(t, 2, 2) == t // 4
    assert motion_token_count(40, 2, 3) == 5  # down_t 3: 8x


def test_a_clip_encodes_the_same_alone_and_padded_in_a_batch():
    torch.manual_seed(0)
    enc = MotionEncoder(code_dim=16, width=32, depth=3).eval()
    short, long = torch.randn(45, 263), torch.randn(97, 263)
    batch = torch.zeros(2, 97, 263)
    batch[0, :45], batch[1] = short, long
    batch[0, 45:] = 9.0  # garbage past the end must not leak in
    z, mask = enc(batch, torch.tensor([45, 97]))
    alone, _ = enc(short[None], torch.tensor([45]))
    assert mask[0].sum() == 11 and mask[1].sum() == 24
    torch.testing.assert_close(z[0, :11], alone[0], rtol=1e-5, atol=1e-5)


def test_encoder_keeps_t2m_gpt_parameter_names(tmp_path, tiny_config):
    enc = MotionEncoder(code_dim=64, width=64, depth=2)
    names = set(enc.state_dict())
    assert {"model.0.weight", "model.2.0.weight", "model.2.1.model.0.conv1.weight", "model.2.1.model.1.conv2.bias",
            "model.3.1.model.0.conv1.weight", "model.4.weight"} <= names  # fmt: skip
    # A T2M-GPT VQ-VAE checkpoint ({"net": {"vqvae.encoder.…", "vqvae.quantizer.codebook"}}) loads into both.
    torch.manual_seed(1)
    ref = MotionEncoder(code_dim=64, width=64, depth=2)
    codebook = torch.randn(32, 64)
    net = {f"vqvae.encoder.{k}": v for k, v in ref.state_dict().items()} | {"vqvae.quantizer.codebook": codebook}
    torch.save({"net": net}, tmp_path / "net_last.pth")
    cfg = tiny_config("tiny_stage1", f"motion.vqvae_checkpoint={tmp_path / 'net_last.pth'}", "motion.codebook_size=32",
                      video=False)  # fmt: skip
    model, _ = build_model(cfg)
    for k, v in ref.state_dict().items():
        assert torch.equal(model.motion_encoder.state_dict()[k], v)
    assert torch.equal(model.motion_quantizer.codebook.detach(), codebook)


def test_quantizer_picks_codes_and_passes_gradients_straight_through():
    vq = VectorQuantizer(8, 4)
    z = torch.randn(2, 5, 4, requires_grad=True)
    mask = torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    q, loss = vq(z, mask)
    codes = vq.codebook.detach()
    for row in q[mask].detach():  # each vector is a codebook row (up to the straight-through's rounding)
        assert torch.isclose(codes, row, atol=1e-6).all(-1).any()
    assert torch.equal(q[~mask], z[~mask])  # padding untouched
    (q.sum() + loss).backward()
    assert z.grad is not None and z.grad.abs().sum() > 0 and vq.codebook.grad.abs().sum() > 0


def test_splice_writes_features_over_the_placeholders(tiny_config):
    model, tok = build_model(tiny_config("tiny_stage1", video=False))
    m = tok.convert_tokens_to_ids(MOTION_TOKEN)
    ids = torch.tensor([[tok.bos_token_id, 5, m, m, m, 6, 7], [tok.bos_token_id, m, m, m, m, m, 8]])
    motion, lengths = torch.randn(2, 20, 263), torch.tensor([12, 20])  # 3 and 5 motion tokens
    model.eval()
    embeds, _ = model.embed(ids, motion, lengths)
    feats, _ = model.encode_motion(motion, lengths)
    plain = model.lm.get_input_embeddings()(ids)
    where = ids == m
    torch.testing.assert_close(embeds[where], feats)
    torch.testing.assert_close(embeds[~where], plain[~where])
    with pytest.raises(ValueError, match="8 motion placeholder tokens for 7"):
        model.embed(ids, motion, torch.tensor([12, 16]))
    with pytest.raises(ValueError, match="no motion input"):
        model.embed(ids)


def test_what_trains_in_each_stage(tiny_config):
    stage1, _ = build_model(tiny_config("tiny_stage1"))
    groups = trainable_groups(stage1)
    assert set(groups) == {"motion_encoder", "projector"}
    assert {n.split(".")[0] for n, _ in groups["projector"]} == {"motion_projector", "video_projector"}
    stage2, tok = build_model(tiny_config("tiny_stage2"))
    groups = trainable_groups(stage2)
    assert set(groups) == {"motion_encoder", "projector", "lm"}
    lm_names = [n for n, _ in groups["lm"]]
    assert lm_names and all("lora_" in n and ("q_proj" in n or "v_proj" in n) for n in lm_names)
    assert not any(p.requires_grad for p in stage2.video_tower.parameters())
    # the placeholders were added to the tokenizer and the embedding matrix grew with it
    assert stage2.lm.get_input_embeddings().weight.shape[0] > max(tok.convert_tokens_to_ids([MOTION_TOKEN, VIDEO_TOKEN]))


def test_missing_weights_name_the_key(tiny_config, tmp_path):
    with pytest.raises(MissingWeights, match=r"lm.path: .*never downloads"):
        build_model(tiny_config("tiny_stage1", f"lm.path={tmp_path / 'vicuna'}"))
    with pytest.raises(MissingWeights, match="video.tower"):
        build_model(tiny_config("tiny_stage1", f"video.tower={tmp_path / 'languagebind'}"))
