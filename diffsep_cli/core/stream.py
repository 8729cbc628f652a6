"""Streaming segmentation and cross-faded overlap-add for long inputs (tensors only).

A signal of any length is cut into segments of the prior's length ``S`` with hop ``S - O``;
separated segments [K, S] are joined with linear cross-fades over the ``O`` overlapping samples
(the fades sum to one, so sources that sum to each segment sum to the whole signal). Sources
of the same prior and class may come out in any order in each segment: each new segment is
permuted to match the previous one on their overlap.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor


def segment_count(length: int, segment: int, overlap: int) -> int:
    """Segments needed to cover ``length`` samples (at least one)."""
    return max(1, math.ceil((length - overlap) / (segment - overlap)))


class Segmenter:
    """Feed [C, n] blocks, get [C, S] segments as soon as they are complete."""

    def __init__(self, segment: int, overlap: int) -> None:
        if not 0 <= overlap <= segment // 2:
            raise ValueError(f"overlap must be in [0, segment/2], got {overlap} for {segment}")
        self.segment, self.overlap, self.hop = segment, overlap, segment - overlap
        self.buffer: Tensor | None = None
        self.total = 0  # samples fed
        self.count = 0  # segments yielded

    def push(self, block: Tensor) -> Iterator[Tensor]:
        """Add a block [C, n]; yield every segment [C, S] it completes."""
        self.total += block.shape[-1]
        self.buffer = block if self.buffer is None else torch.cat([self.buffer, block], dim=-1)
        while self.buffer.shape[-1] >= self.segment:
            yield self._next()

    def _next(self, trim: bool = False) -> Tensor:
        assert self.buffer is not None
        size = self.segment
        if trim:  # the last segment: only as long as the samples left (and two overlaps)
            size = min(size, max(self.buffer.shape[-1], 2 * self.overlap, 1))
        seg = self.buffer[:, :size]
        seg = torch.nn.functional.pad(seg, (0, size - seg.shape[-1]))
        self.buffer, self.count = self.buffer[:, self.hop :], self.count + 1
        return seg

    def finish(self) -> Iterator[Tensor]:
        """Yield the last segment(s) still owed for the samples fed so far: [C, S'] with
        S' <= S just long enough for the samples left (no compute spent on padding)."""
        if self.buffer is None:
            return
        for _ in range(segment_count(self.total, self.segment, self.overlap) - self.count):
            yield self._next(trim=True)


def _best_permutation(prev: Tensor, cur: Tensor, groups: Sequence[Sequence[int]]) -> list[int]:
    """Permutation of ``cur`` [K, O] maximising the correlation with ``prev`` [K, O] within
    each group of interchangeable sources."""
    order = list(range(prev.shape[0]))
    for group in groups:
        if len(group) < 2:
            continue
        norm = cur[list(group)].norm(dim=-1).clamp_min(1e-12)
        score = (prev[list(group)] @ cur[list(group)].T) / norm  # [G, G]
        best = max(
            itertools.permutations(range(len(group))),
            key=lambda p: sum(float(score[i, j]) for i, j in enumerate(p)),
        )
        for i, j in enumerate(best):
            order[group[i]] = group[j]
    return order


class OverlapAdd:
    """Join separated segments [C, K, S] into a stream of [C, K, n] blocks."""

    def __init__(self, segment: int, overlap: int, groups: Sequence[Sequence[int]] = ()) -> None:
        self.segment, self.overlap, self.groups = segment, overlap, groups
        ramp = (torch.arange(overlap) + 0.5) / max(overlap, 1)
        self.fade_in, self.fade_out = ramp, 1 - ramp
        self.tail: Tensor | None = None  # raw (unfaded) last ``overlap`` samples

    def push(self, seg: Tensor) -> Tensor:
        """Add the next segment [C, K, S] (the last may be shorter, >= 2 O); return the
        samples now final, [C, K, S - O]."""
        o, size = self.overlap, seg.shape[-1]
        if self.tail is None:
            out = seg[..., : size - o]
        else:
            seg = (
                torch.stack(
                    [
                        c[_best_permutation(t, c[:, :o], self.groups)]
                        for t, c in zip(self.tail, seg, strict=True)
                    ]
                )
                if o and self.groups
                else seg
            )
            head = self.tail * self.fade_out + seg[..., :o] * self.fade_in
            out = torch.cat([head, seg[..., o : size - o]], dim=-1)
        self.tail = seg[..., size - o :]
        return out

    def finish(self) -> Tensor:
        """The last segment's final ``overlap`` samples, [C, K, O]."""
        if self.tail is None:
            raise ValueError("no segment was pushed")
        return self.tail
