import json
from collections import Counter

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from diffsep_cli.config import NetConfig, PriorConfig
from diffsep_cli.core.nets import UDiTBlock
from diffsep_cli.core.prior import Prior

from .conftest import FIXTURES, needs_shared, tiny_prior

LAYOUT = FIXTURES / "official_layout_h72.json"


@needs_shared(LAYOUT)
@pytest.mark.parametrize("kind,num_classes", [("speech", 1), ("sound", 50)])
def test_official_layout(kind: str, num_classes: int) -> None:
    expected = json.loads(LAYOUT.read_text())[kind]
    net = Prior(PriorConfig(net=NetConfig(num_classes=num_classes))).net
    got = {k: list(v.shape) for k, v in net.state_dict().items()}
    assert got == expected
    total = sum(v.numel() for v in net.state_dict().values())
    assert total == {1: 37_212_016, 50: 37_243_376}[num_classes]


@pytest.mark.parametrize("length", [31 * 7, 31 * 8 - 1, 1000, 4000, 1])
def test_any_length(length: int) -> None:
    """Every length returns a same-length output (the official code returned an empty one when
    no padding was needed)."""
    prior = tiny_prior()
    x = 0.1 * torch.randn(2, length)
    with torch.no_grad():
        eps = prior.eps(x, torch.tensor([10, 150]))
    assert eps.shape == x.shape
    assert torch.isfinite(eps).all()


def test_batch_items_independent() -> None:
    prior = tiny_prior(num_classes=3)
    x = 0.1 * torch.randn(3, 2000)
    t, lab = torch.tensor([5, 100, 199]), torch.tensor([0, 2, 3])
    with torch.no_grad():
        both = prior.eps(x, t, lab)
        one = torch.cat([prior.eps(x[i : i + 1], t[i], lab[i]) for i in range(3)])
    assert torch.allclose(both, one, atol=1e-5)
    assert not torch.allclose(both[1], prior.eps(x[1:2], t[1], 0)[0], atol=1e-4)


def test_shared_conditioning_path_equals_per_item_path() -> None:
    """A batch at one t and class runs the modulations at batch 1 (fused layer norms); the
    same items beside one at another t run per item: equal outputs and weight gradients."""
    prior = tiny_prior(num_classes=2).requires_grad_(True)
    x = 0.1 * torch.randn(4, 2000)
    t, lab = torch.tensor([40, 40, 40, 120]), torch.tensor([1, 1, 1, 1])
    shared = prior.eps(x[:3], 40, 1)
    mixed = prior.eps(x, t, lab)[:3]
    assert torch.allclose(shared, mixed, atol=1e-6)
    weights = list(prior.parameters())
    g1 = torch.autograd.grad(shared.square().sum(), weights)
    g2 = torch.autograd.grad(mixed.square().sum(), weights)
    assert all((a - b).norm() <= 1e-5 * a.norm() + 1e-7 for a, b in zip(g1, g2, strict=True))
    assert not torch.allclose(prior.eps(x[3:], 40, 1), prior.eps(x[3:], 120, 1), atol=1e-4)


class _CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.calls[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def test_grad_checkpointing_recomputes_all_but_attention_and_the_last_level() -> None:
    """Same gradient; each block outside the last level runs again in the backward (its
    GEMMs recomputed), but its attention is not: the attention outputs are kept."""
    prior = tiny_prior()
    net = prior.net
    runs: Counter[int] = Counter()
    for block in net.modules():
        if isinstance(block, UDiTBlock):
            block.register_forward_pre_hook(lambda m, _: runs.update([id(m)]))
    x = (0.1 * torch.randn(2, 3000)).requires_grad_(True)

    def step(ckpt: bool) -> tuple[torch.Tensor, Counter[str]]:
        net.grad_checkpointing = ckpt
        runs.clear()
        with _CountOps() as ops:
            (g,) = torch.autograd.grad(prior.eps(x, 50).square().sum(), x)
        return g, ops.calls

    g1, plain = step(False)
    assert set(runs.values()) == {1}
    g2, ckpt = step(True)
    assert torch.allclose(g1, g2, atol=1e-6)
    last = {id(b) for b in net.decoder_level_1}
    assert all(n == (1 if i in last else 2) for i, n in runs.items()) and len(runs) == 5
    attention = "_scaled_dot_product_flash_attention_for_cpu"
    assert plain[attention] > 0 and ckpt[attention] == plain[attention]
    assert ckpt["addmm"] > plain["addmm"]


def test_label_out_of_range() -> None:
    prior = tiny_prior(num_classes=2)
    with pytest.raises(ValueError, match="class index"):
        prior.eps(torch.zeros(1, 100), 3, 5)
    with pytest.raises(ValueError, match="DDPM step"):
        prior.eps(torch.zeros(1, 100), 200)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="depths"):
        NetConfig(depths=(1, 2, 3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="divisible"):
        NetConfig(n_fft=500)
    with pytest.raises(ValueError, match="label names"):
        PriorConfig(labels=("a", "b"))


def test_rope_rotates_adjacent_pairs() -> None:
    """Pair (2j, 2j+1) of the token at position p turns by p * 1e4^(-2j/D) (the official
    formula), in fp64 and half precision alike; dot products depend on offsets only."""
    from diffsep_cli.core.layers import rope as _rope

    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)  # [N, H, L, D], positions on axis -2
    pos = torch.arange(7, dtype=torch.float64)[:, None]
    angle = pos * 1e4 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)  # [L, D/2]
    cos, sin = angle.cos(), angle.sin()
    x1, x2 = x[..., 0::2], x[..., 1::2]
    ref = torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    assert torch.allclose(_rope(x), ref, atol=1e-6)
    assert _rope(x.bfloat16()).dtype == torch.bfloat16
    q = torch.randn(8).expand(1, 7, 8)
    dots = (_rope(q)[0, :-1] * _rope(q)[0, 1:]).sum(-1)  # neighbours: one offset
    assert torch.allclose(dots, dots[0].expand_as(dots), atol=1e-4)


def test_cpu_bf16_attention_runs_in_fp32_only_when_a_backward_follows() -> None:
    """Under CPU bf16 autocast the attention of a guided step (inputs that need gradients) runs
    in fp32, where the CPU's backward is fast; forward-only attention stays in bf16."""
    from diffsep_cli.core.layers import attend as _attend

    q, k, v = torch.randn(3, 2, 2, 5, 4).unbind(0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _attend(q, k, v).dtype == torch.bfloat16
        qg = q.clone().requires_grad_(True)
        out = _attend(qg, k, v)
        assert out.dtype == torch.float32
        out.sum().backward()
    assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v), atol=1e-6)
    assert qg.grad is not None and qg.grad.dtype == torch.float32


def test_swiglu_gradient_is_exact() -> None:
    """The SwiGLU autograd function (a * SiLU(b), keeping only a and b) has the true gradient."""
    from diffsep_cli.core.layers import SwiGLU

    a, b = (torch.randn(3, 5, dtype=torch.float64, requires_grad=True) for _ in range(2))
    assert torch.autograd.gradcheck(SwiGLU.apply, (a, b))
    assert torch.allclose(SwiGLU.apply(a, b), a * F.silu(b))


def test_a_block_keeps_thirteen_activations_per_token_for_the_backward() -> None:
    """What an adaLN attention block saves for a guided step's backward, per token, in units of
    its width C: layer-norm inputs 3, SwiGLU halves 2 + 4, q and k 2, v 1, attention output 1
    (18 before v stopped holding q and k and the SwiGLU stopped keeping SiLU(b)). Its gradient
    builds q, k and v's gradient without zero-filled slices (no Select/Slice backward)."""
    from diffsep_cli.core.nets import PathAtt

    torch.manual_seed(0)
    dim, heads, emb, a1, a2 = 64, 2, 8, 6, 10
    block = PathAtt(dim, heads, emb).requires_grad_(False)
    params = {p.untyped_storage().data_ptr() for p in block.parameters()}
    x = torch.randn(1, a1, a2, dim, requires_grad=True)
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = block(x, torch.randn(1, emb), axis=1)
    units = sum(saved.values()) / (a1 * a2 * dim * 4)
    assert 13 <= units < 13.5  # + per-token norm statistics and the attention's log-sum-exp
    names, todo, seen = set(), [out.grad_fn], set()
    while todo:
        fn = todo.pop()
        if fn is not None and fn not in seen:
            seen.add(fn)
            names.add(type(fn).__name__)
            todo.extend(f for f, _ in fn.next_functions)
    assert "SplitWithSizesBackward0" in names and "UnbindBackward0" in names
    assert not names & {"SelectBackward0", "SliceBackward0"}
