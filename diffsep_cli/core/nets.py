"""TF-domain triple-path self-attention U-Net (Shi et al. 2026), on spectra [B, 2, F, T].

Parameter names and shapes equal the official ``Atten_unet``, so its checkpoints load with
``strict=True``. Inside a level, activations are kept channels-last, [B, F, T, C]: layer norms
and 1x1 convolutions then act on the last axis and the 3x3 convolutions get channels-last
strides for free. Attention uses ``scaled_dot_product_attention`` (no O(n^2) buffers).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import (
    CheckpointPolicy,
    checkpoint,
    create_selective_checkpoint_contexts,
)

from ..config import NetConfig
from .layers import attend, glu_linear, layer_norm, linear, modulate, rope


class Pointwise(nn.Module):
    """1x1 convolution on channels-last input [..., C_in] -> [..., C_out] (Conv2d weights)."""

    def __init__(self, c_in: int, c_out: int, bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(c_out, c_in, 1, 1))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        return linear(x, self.weight.flatten(1), self.bias)

    def glu(self, x: Tensor) -> Tensor:
        """GLU of this layer's output (first half * SiLU(second half)): [..., C_out / 2]."""
        return glu_linear(x, self.weight.flatten(1), self.bias)


class GatedMlp(nn.Module):
    """SwiGLU feed-forward C -> 4C -> (gate) 2C -> C."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fc1 = Pointwise(dim, 4 * dim)
        self.fc2 = Pointwise(2 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.fc1.glu(x))


class Attention(nn.Module):
    """Multi-head self-attention with RoPE over tokens [..., L, C] -> [..., L, C]."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.to_qkv = nn.Linear(dim, 3 * dim)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x: Tensor, axis: int) -> Tensor:
        """x: [..., C] -> [..., C], attending along ``axis`` (not the last); the other axes
        are batch. The projections run on x's own layout; only q, k, v are permuted."""
        axis, dim = axis % x.ndim, x.shape[-1]
        qkv = linear(x, self.to_qkv.weight, self.to_qkv.bias)
        qk, v = (  # split, not sliced: the backward then joins their gradients in one write
            t.unflatten(-1, (-1, self.heads, dim // self.heads)).movedim(axis, -2)
            for t in qkv.split((2 * dim, dim), dim=-1)
        )
        other = qk.shape[:-4]  # [..., 2, H, L, D]
        q, k = rope(qk).flatten(0, -5).unbind(1)  # [N, H, L, D] each
        v = v.reshape(q.shape)
        if v.requires_grad and v._base is not None:  # a saved view of qkv would hold q, k
            v = v.clone(memory_format=torch.contiguous_format)
        out = attend(q, k, v)  # [N, H, L, D]
        out = out.unflatten(0, other).movedim(-2, axis)  # [..., H, D], L back at axis
        return linear(out.flatten(-2), self.to_out.weight, self.to_out.bias)


def _modulation(emb: int, n: int) -> nn.Sequential:
    return nn.Sequential(nn.SiLU(), nn.Linear(emb, n))


class PathAtt(nn.Module):
    """adaLN block: gated-projection + attention along one axis, then SwiGLU FFN."""

    def __init__(self, dim: int, heads: int, emb: int) -> None:
        super().__init__()
        self.sup_conv = Pointwise(dim, 2 * dim)
        self.attn = Attention(dim, heads)
        self.mlp = GatedMlp(dim)
        self.adaLN_modulation = _modulation(emb, 6 * dim)

    def forward(self, x: Tensor, c: Tensor, axis: int) -> Tensor:
        """x: [B, A1, A2, C]; attention runs along ``axis`` (1 or 2); c: [B, emb]."""
        mod = self.adaLN_modulation(c)[:, None, None, :]
        shift1, scale1, gate1, shift2, scale2, gate2 = mod.chunk(6, dim=-1)
        h = modulate(self.sup_conv.glu(layer_norm(x)), shift1, scale1)
        x = torch.addcmul(x, gate1, self.attn(h, axis))
        return torch.addcmul(x, gate2, self.mlp(modulate(x, shift2, scale2)))


class FullTimeAtt(nn.Module):
    """Full-band time attention: fold bins into one token per frame, attend over all frames."""

    def __init__(self, dim: int, heads: int, emb: int, bins: int, fold: int, sup: int) -> None:
        super().__init__()
        self.fold, self.sup = fold, sup
        token = (bins // fold) * sup
        self.sup_conv = Pointwise(dim * fold, 2 * sup)
        self.recov_conv = nn.Conv2d(sup, dim * fold, kernel_size=(3, 1), padding=(1, 0))
        self.attn = Attention(token, heads)
        self.mlp = GatedMlp(dim)
        self.adaLN_modulation_att = _modulation(emb, 3 * token)
        self.adaLN_modulation_mlp = _modulation(emb, 3 * dim)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """x: [B, F, T, C], c: [B, emb] -> [B, F, T, C]."""
        b, nf, nt, dim = x.shape
        r, nfs = self.fold, x.shape[1] // self.fold
        shift, scale, gate = self.adaLN_modulation_att(c)[:, None, :].chunk(3, dim=-1)
        # fold r adjacent bins into channels (channel = c*r + j), gated projection
        h = layer_norm(x).reshape(b, nfs, r, nt, dim).permute(0, 1, 3, 4, 2).reshape(b, nfs, nt, -1)
        h = self.sup_conv.glu(h)  # [B, F/r, T, sup]
        h = h.permute(0, 2, 3, 1).reshape(b, nt, -1)  # one token per frame: [B, T, sup*F/r]
        h = layer_norm(self.attn(modulate(h, shift, scale), axis=1) * gate)
        h = self.recov_conv(h.reshape(b, nt, self.sup, nfs).permute(0, 2, 3, 1))
        h = h.reshape(b, dim, r, nfs, nt).permute(0, 3, 2, 4, 1).reshape(b, nf, nt, dim)
        x = x + h
        shift, scale, gate = self.adaLN_modulation_mlp(c)[:, None, None, :].chunk(3, dim=-1)
        return torch.addcmul(x, gate, self.mlp(modulate(x, shift, scale)))


class UDiTBlock(nn.Module):
    """[full-band time attention] -> frequency-path -> time-path attention."""

    def __init__(self, dim: int, cfg: NetConfig, latent_bins: int | None = None) -> None:
        super().__init__()
        if latent_bins is not None:
            self.fullatt = FullTimeAtt(
                dim, cfg.heads, cfg.emb, latent_bins, cfg.latent_fold, cfg.latent_sup
            )
        self.freatt = PathAtt(dim, cfg.heads, cfg.emb)
        self.timeatt = PathAtt(dim, cfg.heads, cfg.emb)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """x: [B, F, T, C] -> [B, F, T, C]."""
        if hasattr(self, "fullatt"):
            x = self.fullatt(x, c)
        return self.timeatt(self.freatt(x, c, axis=1), c, axis=2)


class TimestepEmbedder(nn.Module):
    """Sinusoidal features of the network timestep -> MLP -> [B, emb]."""

    def __init__(self, emb: int, freq_dim: int) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, emb), nn.SiLU(), nn.Linear(emb, emb))

    def forward(self, tau: Tensor) -> Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(1e4) * torch.arange(half, device=tau.device).float() / half)
        args = tau[:, None].float() * freqs[None]
        return self.mlp(torch.cat([torch.cos(args), torch.sin(args)], dim=-1))


class LabelEmbedder(nn.Module):
    """Class table with one extra (null) row."""

    def __init__(self, num_classes: int, emb: int) -> None:
        super().__init__()
        self.embedding_table = nn.Embedding(num_classes + 1, emb)

    def forward(self, label: Tensor) -> Tensor:
        return self.embedding_table(label)


class FinalLayer(nn.Module):
    def __init__(self, dim: int, emb: int) -> None:
        super().__init__()
        self.out_proj = nn.Conv2d(dim, 2, kernel_size=3, padding=1, bias=False)
        self.adaLN_modulation = _modulation(emb, 2 * dim)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """x: [B, F, T, C] -> [B, 2, F, T]."""
        shift, scale = self.adaLN_modulation(c)[:, None, None, :].chunk(2, dim=-1)
        return self.out_proj(modulate(x, shift, scale).permute(0, 3, 1, 2))


def _conv3(c_in: int, c_out: int, bias: bool) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=bias)


class Resample(nn.Module):
    """3x3 conv then pixel (un)shuffle by 2 over (F, T): down C -> 2C or up C -> C/2."""

    def __init__(self, dim: int, down: bool) -> None:
        super().__init__()
        self.down = down
        self.body = _conv3(dim, dim // 2 if down else dim * 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """[B, F, T, C] -> [B, F/2, T/2, 2C] (down) or [B, 2F, 2T, C/2] (up)."""
        y = self.body(x.permute(0, 3, 1, 2))
        y = F.pixel_unshuffle(y, 2) if self.down else F.pixel_shuffle(y, 2)
        return y.permute(0, 2, 3, 1).contiguous()


_ATTENTION_OPS = {
    getattr(torch.ops.aten, f"_scaled_dot_product_{kind}_attention{cpu}").default
    for kind, cpu in (("flash", "_for_cpu"), ("flash", ""), ("efficient", ""), ("cudnn", ""))
}


def _keep_attention(ctx: object, op: object, *args: object, **kwargs: object) -> CheckpointPolicy:
    """Checkpointed blocks keep their attention outputs (C per token, the costliest op to
    redo) for the backward and recompute everything else."""
    return CheckpointPolicy.MUST_SAVE if op in _ATTENTION_OPS else CheckpointPolicy.PREFER_RECOMPUTE


_RECOMPUTE = functools.partial(create_selective_checkpoint_contexts, _keep_attention)


class TFUNet(nn.Module):
    """Three-level U-Net of triple-path attention blocks: [B, 2, F, T] -> [B, 2, F, T]."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.grad_checkpointing = False
        c, d = cfg.hidden, cfg.depths
        for i in range(1, 6):
            self.add_module(f"t_embedder_{i}", TimestepEmbedder(cfg.emb, cfg.freq_dim))
            self.add_module(f"y_embedder_{i}", LabelEmbedder(cfg.num_classes, cfg.emb))
        self.t_embedder_out = TimestepEmbedder(cfg.emb, cfg.freq_dim)
        self.conv_1 = _conv3(2, c, bias=False)
        self.encoder_level_1 = nn.ModuleList(UDiTBlock(c, cfg) for _ in range(d[0]))
        self.down1_2 = Resample(c, down=True)
        self.encoder_level_2 = nn.ModuleList(UDiTBlock(2 * c, cfg) for _ in range(d[1]))
        self.down2_3 = Resample(2 * c, down=True)
        self.latent = nn.ModuleList(
            UDiTBlock(4 * c, cfg, latent_bins=cfg.bins // 4) for _ in range(d[2])
        )
        self.up3_2 = Resample(4 * c, down=False)
        self.reduce_chan_level2 = Pointwise(4 * c, 2 * c)
        self.decoder_level_2 = nn.ModuleList(UDiTBlock(2 * c, cfg) for _ in range(d[3]))
        self.up2_1 = Resample(2 * c, down=False)
        self.reduce_chan_level1 = Pointwise(2 * c, c)
        self.decoder_level_1 = nn.ModuleList(UDiTBlock(c, cfg) for _ in range(d[4]))
        self.out_conv = _conv3(c, c, bias=True)
        self.final_layer = FinalLayer(c, cfg.emb)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights, zero biases (as the official code), N(0, 0.02) tables."""
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear, Pointwise)):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.02)

    def _level(self, blocks: nn.ModuleList, x: Tensor, c: Tensor) -> Tensor:
        """Runs a level's blocks. With ``grad_checkpointing`` (under grad) each block keeps only
        its attention outputs for the backward and recomputes the rest, except in the last
        level, whose recompute would come right after its forward (paper size, 4 s guided step:
        3.3 GB for 7.7, at ~1.2x the time; issue 17)."""
        recompute = self.grad_checkpointing and blocks is not self.decoder_level_1
        for block in blocks:
            if recompute and torch.is_grad_enabled():
                x = checkpoint(block, x, c, use_reentrant=False, context_fn=_RECOMPUTE)
            else:
                x = block(x, c)
        return x

    def _cond(self, i: int, tau: Tensor, label: Tensor) -> Tensor:
        return getattr(self, f"t_embedder_{i}")(tau) + getattr(self, f"y_embedder_{i}")(label)

    def forward(self, spec: Tensor, tau: Tensor, label: Tensor) -> Tensor:
        """spec: [B, 2, F, T] (T % 4 == 0), tau: [B] network timesteps, label: [B] long; or
        tau and label [1], shared by the batch (the modulations then run at batch 1)."""
        x = self.conv_1(spec).permute(0, 2, 3, 1).contiguous()  # [B, F, T, C]
        enc1 = self._level(self.encoder_level_1, x, self._cond(1, tau, label))
        enc2 = self._level(self.encoder_level_2, self.down1_2(enc1), self._cond(2, tau, label))
        lat = self._level(self.latent, self.down2_3(enc2), self._cond(3, tau, label))
        x = self.reduce_chan_level2(torch.cat([self.up3_2(lat), enc2], dim=-1))
        x = self._level(self.decoder_level_2, x, self._cond(4, tau, label))
        x = self.reduce_chan_level1(torch.cat([self.up2_1(x), enc1], dim=-1))
        x = self._level(self.decoder_level_1, x, self._cond(5, tau, label))
        x = self.out_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return self.final_layer(x, self.t_embedder_out(tau))
