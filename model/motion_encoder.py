"""The motion side of the model: T2M-GPT's VQ-VAE encoder over HumanML3D's 263-d features (1-D convolutions,
``down_t`` stride-2 downsamplings; the module names are T2M-GPT's so that its ``net_last.pth`` loads), the
optional nearest-code quantizer, and the projectors into the LM's embedding space."""

from __future__ import annotations

import torch
from torch import nn

from schemas.motion import FEATURE_DIM

__all__ = ["MotionEncoder", "ResConv1DBlock", "Resnet1D", "VectorQuantizer", "make_projector", "motion_token_count"]


class ResConv1DBlock(nn.Module):
    def __init__(self, n_in: int, n_state: int, dilation: int = 1):
        super().__init__()
        self.norm1, self.norm2 = nn.Identity(), nn.Identity()
        self.activation1, self.activation2 = nn.ReLU(), nn.ReLU()
        self.conv1 = nn.Conv1d(n_in, n_state, 3, 1, dilation, dilation)
        self.conv2 = nn.Conv1d(n_state, n_in, 1, 1, 0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Zero past each clip's end before the dilated conv: a clip in a padded batch then sees exactly the zero
        # padding it would see alone, so its features do not depend on its batch neighbours.
        h = self.conv1(self.activation1(self.norm1(x)) * mask)
        return x + self.conv2(self.activation2(self.norm2(h)))


class Resnet1D(nn.Module):
    def __init__(self, n_in: int, n_depth: int, dilation_growth_rate: int):
        super().__init__()
        blocks = [ResConv1DBlock(n_in, n_in, dilation=dilation_growth_rate**d) for d in range(n_depth)]
        self.model = nn.Sequential(*blocks[::-1])  # T2M-GPT reverses the dilations (largest first)


class MotionEncoder(nn.Module):
    """``[B, T, 263]`` (normalised, any padding) → ``[B, T', code_dim]`` with T' = T / stride_t**down_t."""

    def __init__(self, in_dim=FEATURE_DIM, code_dim=512, down_t=2, stride_t=2, width=512, depth=3, dilation_growth_rate=3):
        super().__init__()
        filter_t, pad_t = stride_t * 2, stride_t // 2
        blocks: list[nn.Module] = [nn.Conv1d(in_dim, width, 3, 1, 1), nn.ReLU()]
        for _ in range(down_t):
            blocks.append(nn.Sequential(nn.Conv1d(width, width, filter_t, stride_t, pad_t),
                                        Resnet1D(width, depth, dilation_growth_rate)))  # fmt: skip
        blocks.append(nn.Conv1d(width, code_dim, 3, 1, 1))
        self.model = nn.Sequential(*blocks)
        self.down_t, self.stride_t = down_t, stride_t

    @staticmethod
    def _conv_len(lengths, conv: nn.Conv1d):
        (k,), (s,), (p,), (d,) = conv.kernel_size, conv.stride, conv.padding, conv.dilation
        return (lengths + 2 * p - d * (k - 1) - 1) // s + 1

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.transpose(1, 2)

        def mask_of(n: torch.Tensor, t: int) -> torch.Tensor:
            return (torch.arange(t, device=x.device)[None] < n[:, None]).to(x.dtype)[:, None]

        mask = mask_of(lengths, x.shape[-1])
        x = self.model[1](self.model[0](x * mask))
        for down in self.model[2:-1]:
            conv, res = down[0], down[1]
            x = conv(x * mask)
            lengths = self._conv_len(lengths, conv)
            mask = mask_of(lengths, x.shape[-1])
            for block in res.model:
                x = block(x, mask)
        x = self.model[-1](x * mask)
        return x.transpose(1, 2), mask[:, 0] > 0


def motion_token_count(num_frames: int, stride_t: int, down_t: int) -> int:
    """Feature vectors the encoder gives a clip of ``num_frames`` frames (the placeholder's expansion)."""
    n = num_frames
    for _ in range(down_t):
        n = (n + 2 * (stride_t // 2) - 2 * stride_t) // stride_t + 1
    return max(n, 0)


class VectorQuantizer(nn.Module):
    """Nearest-code quantization (T2M-GPT's codebook, buffer name kept) with a straight-through gradient and
    the VQ-VAE loss (codebook term + beta × commitment term)."""

    def __init__(self, num_codes: int, code_dim: int, beta: float = 0.25):
        super().__init__()
        self.codebook = nn.Parameter(torch.randn(num_codes, code_dim) / code_dim**0.5)
        self.beta = beta

    def forward(self, z: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        flat = z[mask]
        d = flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ self.codebook.t() + self.codebook.pow(2).sum(-1)[None]
        q = self.codebook[d.argmin(-1)]
        loss = (q - flat.detach()).pow(2).mean() + self.beta * (flat - q.detach()).pow(2).mean()
        out = z.clone()
        out[mask] = flat + (q - flat).detach()
        return out, loss


def make_projector(kind: str, d_in: int, d_out: int) -> nn.Module:
    if kind == "linear":
        return nn.Linear(d_in, d_out)
    return nn.Sequential(nn.Linear(d_in, d_out), nn.GELU(), nn.Linear(d_out, d_out))  # LLaVA's mlp2x_gelu
