"""Class guidance: the source classifier, its guidance wrapper, its folder, its training."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import Tensor

from diffsep_cli.config import ClassifierConfig, GuidanceConfig
from diffsep_cli.core.classifier import SourceClassifier, class_guidance, mel_filters
from diffsep_cli.core.diffusion import ddpm_schedule, respace
from diffsep_cli.core.separation import separate_tensor
from diffsep_cli.core.sources import ResolvedSources, with_classifier
from diffsep_cli.errors import DiffsepError
from diffsep_cli.hub.classifiers import load_classifier_dir, resolve_classifier, save_classifier
from diffsep_cli.hub.folder import save_prior
from diffsep_cli.train.classify import ClassifierRecipe, add_leaks, train_classifier

from .conftest import ROOT, tiny_prior
from .gauss import GaussPrior, gauss_case, sdr

TINY = ClassifierConfig(channels=(4, 8), emb=8, n_fft=64, hop=32, mels=16, segment=4000)


class Bands(torch.nn.Module):
    """A hand-made classifier: class 0 = low band (< 0.1 Nyquist), class 1 = high (> 0.3)."""

    def forward(self, x: Tensor, t: int) -> Tensor:
        spec = torch.fft.rfft(x, norm="ortho").abs().square()
        n = spec.shape[-1]
        z = 4 * (spec[:, : n // 10].mean(-1).log() - spec[:, 3 * n // 10 :].mean(-1).log())
        return torch.stack([z, -z], dim=-1)


def _separate(classes: list[int] | None, weight: float) -> Tensor:
    p1, p2, s1, s2 = gauss_case()
    flat = GaussPrior((p1 + p2) / 2)  # one prior for both: it cannot tell them apart
    return separate_tensor(
        [flat, flat],
        (s1 + s2)[None],
        steps=25,
        # every step: a prior that cannot tell the bands apart undoes an early assignment
        guidance=GuidanceConfig(solver="dirac", eta=0.0, class_weight=weight, class_min_step=0),
        classifier=Bands() if classes else None,
        classes=classes,
        generator=torch.Generator().manual_seed(3),
    )[0]


def test_class_guidance_assigns_the_sources_a_prior_cannot_tell_apart() -> None:
    _, _, s1, s2 = gauss_case()
    alone = _separate(None, 0.0)  # y / 2 each: 3 dB against either source
    assert abs(sdr(alone[0], s1) - 3.0) < 0.3 and abs(sdr(alone[1], s2) - 3.0) < 0.3
    guided = _separate([0, 1], 256.0)
    assert sdr(guided[0], s1) > 5.0 and sdr(guided[1], s2) > 5.0
    swapped = _separate([1, 0], 256.0)  # negative control: the classes name the other band
    assert sdr(swapped[0], s2) > 5.0 and sdr(swapped[0], s1) < 1.0
    assert torch.equal(_separate([0, 1], 0.0), alone)  # weight 0: no guidance at all


def test_the_guidance_step_is_the_classifiers_score() -> None:
    sched = respace(ddpm_schedule(TINY.diffusion), 10)
    clf = SourceClassifier(TINY).eval()
    x = torch.randn(2, 3, 4000) * 0.5
    x0_hat = torch.randn(2, 3, 4000) * 0.1
    guided = class_guidance(lambda x, i: x0_hat.clone(), clf, [1, None, 0], sched, weight=2.0)
    i, t, abar = 6, int(sched.timesteps[6]), float(sched.alphas_cumprod[6])
    out = guided(x, i)
    assert torch.equal(out[:, 1], x0_hat[:, 1])  # no class: left alone
    for k, c in ((0, 1), (2, 0)):
        xk = x[:, k].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(clf(xk, t).log_softmax(-1)[:, c].sum(), xk)
        step = 2.0 * (1 - abar) / abar**0.5 * grad
        tol = 1e-4 * float(step.abs().max())
        torch.testing.assert_close(out[:, k] - x0_hat[:, k], step, rtol=1e-3, atol=tol)
        with torch.no_grad():  # a small move along it makes the own class likelier
            before = clf(x[:, k], t).log_softmax(-1)[:, c]
            after = clf(x[:, k] + 1e-3 * grad / grad.norm(), t).log_softmax(-1)[:, c]
        assert (after > before).all()
    above = class_guidance(lambda x, i: x0_hat.clone(), clf, [1, None, 0], sched, 2.0, t + 1)
    assert torch.equal(above(x, i), x0_hat)  # below the lowest guided step: none
    torch.testing.assert_close(  # from it on, the same guidance
        class_guidance(lambda x, i: x0_hat.clone(), clf, [1, None, 0], sched, 2.0, t)(x, i), out
    )


def test_the_lowest_guided_step_follows_eta() -> None:
    """Auto: from DDPM step 40 in the deterministic ODE (eta 0), every step with fresh noise."""
    dirac = GuidanceConfig(solver="dirac")
    assert dirac.for_sources(shared_prior=False).class_min_step == 40  # eta 0
    assert dirac.for_sources(shared_prior=True).class_min_step == 0  # eta 1
    assert GuidanceConfig(solver="hybrid").for_sources(False).class_min_step == 0
    assert GuidanceConfig(solver="dirac", eta=0.5).for_sources(False).class_min_step == 0
    assert GuidanceConfig(solver="dirac", class_min_step=7).for_sources(True).class_min_step == 7
    with pytest.raises(ValueError):
        GuidanceConfig(class_min_step=-1)


def test_classifier_shapes_noise_conditioning_and_mel_filters() -> None:
    fb = mel_filters(512, 64, 16000)
    assert fb.shape == (64, 257) and fb.min() >= 0 and fb.max() <= 1 + 1e-6
    assert (fb.argmax(dim=1).diff() >= 0).all() and (fb.sum(dim=1) > 0).all()
    clf = SourceClassifier(TINY).eval()
    x = torch.randn(3, 4000)
    with torch.no_grad():
        a, b = clf(x, 50), clf(x, torch.full((3,), 50))
        assert a.shape == (3, 2) and torch.equal(a, b)
        assert not torch.allclose(clf(x, 5), clf(x, 150))


def test_sources_take_their_class_from_their_priors_name() -> None:
    sp, sfx = tiny_prior(0, name="speech"), tiny_prior(1, name="sfx")
    clf = SourceClassifier(TINY)
    src = ResolvedSources([sfx, sp, tiny_prior(2, name="x")], [None] * 3, ["a", "b", "c"], [])
    got = with_classifier(src, clf)
    assert got.classifier is clf and got.classes == [1, 0, None]
    two_talkers = ResolvedSources([sp, sp], [None, None], ["a", "b"], [[0, 1]])
    assert with_classifier(two_talkers, clf).classifier is None  # nothing to tell apart


def test_classifier_folder_round_trip_and_choice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clf = SourceClassifier(TINY).eval()
    folder = save_classifier(clf, tmp_path / "models" / "classifiers" / "speech-sfx", "card")
    back = load_classifier_dir(folder)
    x = torch.randn(2, 4000)
    assert ClassifierConfig.load(folder / "config.json") == TINY
    assert torch.equal(back(x, 9), clf(x, 9).detach())
    (folder.parent / "broken").mkdir()
    (folder.parent / "broken" / "config.json").write_text('{"labels": ["a", "b"], "bogus": 1}')
    with pytest.raises(DiffsepError, match="not a loadable classifier folder"):
        load_classifier_dir(folder.parent / "broken")
    monkeypatch.setenv("DIFFSEP_MODELS", str(tmp_path / "models"))
    pair = [tiny_prior(0, name="speech"), tiny_prior(1, name="sfx")]
    assert resolve_classifier("none", pair) is None
    (folder.parent / "broken" / "config.json").unlink()  # auto skips folders without a config
    assert isinstance(resolve_classifier("auto", pair), SourceClassifier)
    assert resolve_classifier("auto", [tiny_prior(0, name="speech")] * 2) is None
    with pytest.raises(DiffsepError, match="use auto, none or a classifier folder"):
        resolve_classifier(str(tmp_path / "nowhere"), pair)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "diffsep_cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
        timeout=300,
    )


def test_leaks_mix_another_class_beneath_with_energy_share_targets() -> None:
    n, length = 6, 1000
    k = torch.arange(length)
    tones = [torch.sin(2 * torch.pi * f * k / length) for f in (10, 20, 30, 70, 80, 90)]
    x0 = torch.stack(tones) * torch.tensor([1.0, 2, 3, 4, 5, 6])[:, None]  # orthogonal
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    same, onehot = add_leaks(x0, y, 2, 0.0, (-25.0, 0.0), torch.Generator().manual_seed(0))
    assert torch.equal(same, x0) and torch.equal(onehot, torch.eye(2)[y])
    mixed, target = add_leaks(x0, y, 2, 1.0, (-20.0, -3.0), torch.Generator().manual_seed(0))
    assert torch.allclose(target.sum(-1), torch.ones(n))
    own = target[torch.arange(n), y]
    assert bool(((own > 0.66) & (own < 0.991)).all())  # -3 .. -20 dB beneath
    rms = x0.square().mean(-1).sqrt()
    assert torch.allclose(mixed.square().mean(-1).sqrt(), rms, rtol=1e-4)  # own level kept
    other = (torch.arange(n) + 3) % n  # the crop of the other class beneath each one
    for i in range(n):  # energy shares of the two (orthogonal) parts equal the targets
        a = (mixed[i] @ x0[i]) / (x0[i] @ x0[i])
        b = (mixed[i] @ x0[other[i]]) / (x0[other[i]] @ x0[other[i]])
        e_own, e_other = (a * x0[i]).square().sum(), (b * x0[other[i]]).square().sum()
        assert abs(float(e_own / (e_own + e_other)) - float(own[i])) < 1e-4
        assert abs(float(target[i, 1 - y[i]]) - float(1 - own[i])) < 1e-6
    half, _ = add_leaks(x0, y, 2, 0.5, (-25.0, 0.0), torch.Generator().manual_seed(1))
    assert 0 < int((half != x0).any(-1).sum()) < n  # some crops leak, some stay pure


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_classifier_training_runs_the_convolutions_in_its_precision(
    precision: str, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: set[torch.dtype] = set()
    conv = torch.nn.functional.conv2d
    monkeypatch.setattr(
        torch.nn.functional, "conv2d", lambda *a, **k: (y := conv(*a, **k), seen.add(y.dtype))[0]
    )
    cfg = ClassifierConfig(labels=("speech", "sfx"), channels=(8, 16))
    folders = {c: [corpus / c] for c in cfg.labels}
    run = train_classifier(folders, cfg, ClassifierRecipe(steps=2, batch=4, precision=precision))
    assert seen == {torch.bfloat16 if precision == "bf16" else torch.float32}
    assert all(p.dtype == torch.float32 and p.isfinite().all() for p in run.classifier.parameters())


def test_train_classifier_then_separate_with_it(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "clf"
    classes = [f"speech={corpus / 'speech'}", f"sfx={corpus / 'sfx'}"]
    valid = ["--valid", f"speech={corpus / 'speech'}", "--valid", f"sfx={corpus / 'sfx'}"]
    args = ("--out", str(out), "--steps", "20", "--leak", "0.5", "--channels", "8,16", "-q")
    r = _cli(
        "train-classifier",
        *classes,
        *valid,
        *args,
        "--augment",
        "sfx=speech",
        "--precision",
        "bf16",
    )
    assert r.returncode == 0, r.stderr
    card = (out / "README.md").read_text()
    assert "20 steps" in card and "| 150 |" in card and "50% of crops" in card
    assert "augmentation presets: speech speech, sfx speech; arithmetic bf16." in card
    assert load_classifier_dir(out).config.labels == ("speech", "sfx")
    assert load_classifier_dir(out).config.channels == (8, 16)
    weights = (out / "model.safetensors").read_bytes()
    again = _cli("train-classifier", *classes, "--out", str(out), "--steps", "5")
    assert (
        again.returncode != 0 and "--overwrite" in again.stderr and "Traceback" not in again.stderr
    )
    assert (out / "model.safetensors").read_bytes() == weights  # nothing lost
    bad = _cli("train-classifier", "speech", "--out", str(tmp_path / "x"))
    assert bad.returncode != 0 and "NAME=FOLDER" in bad.stderr and not (tmp_path / "x").exists()
    bad = _cli("train-classifier", *classes, "--out", str(tmp_path / "x"), "--channels", "8,x")
    assert bad.returncode != 0 and "--channels" in bad.stderr and not (tmp_path / "x").exists()
    for option, item, says in (
        ("--augment", "sfx=loud", "unknown augment 'loud'; choose from none, speech"),
        ("--augment", "music=sfx", "one of the classes"),
        ("--precision", "fp16", "unknown precision 'fp16'; choose from auto, fp32, bf16"),
    ):
        bad = _cli("train-classifier", *classes, "--out", str(tmp_path / "x"), option, item)
        assert bad.returncode == 1 and says in bad.stderr and "Traceback" not in bad.stderr
        assert not (tmp_path / "x").exists()
    models = tmp_path / "models"
    save_prior(tiny_prior(0, name="speech"), models / "speech")
    save_prior(tiny_prior(1, name="sfx"), models / "sfx")
    mix = tmp_path / "mix.wav"
    sf.write(mix, np.asarray(sf.read(ROOT / "examples" / "mix.wav")[0])[:8000], 16000)
    outputs = {}
    for name, spec, lowest in (("none", "none", []), ("clf", str(out), []), ("all", str(out), [0])):
        args = ["separate", str(mix), "-s", "speech,sfx", "-o", str(tmp_path / name)]
        args += ["--classifier", spec, *(f"--class-min-step={n}" for n in lowest)]
        r = _cli(*args, "--steps", "4", "--json", env={"DIFFSEP_MODELS": str(models)})
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc["class_weight"] == (0.0 if name == "none" else 8.0)
        assert doc["class_min_step"] == (lowest or [40])[0]  # auto: 40 for two priors (eta 0)
        outputs[name] = sf.read(doc["files"][0]["outputs"]["speech"])[0]
    assert not np.allclose(outputs["none"], outputs["clf"])
    assert not np.allclose(outputs["clf"], outputs["all"])  # DDPM steps < 40 guided too


def test_the_bundled_classifier_tells_the_example_clips_apart() -> None:
    """Real weights: the example speech and sound (3 s each), level-calibrated as the priors'
    crops, are each called their own class at low noise (DDPM step 20), for every seed."""
    clf = load_classifier_dir(ROOT / "models" / "classifiers" / "speech-sfx")
    clips = []
    for name in ("speech", "sfx"):
        x = torch.from_numpy(sf.read(ROOT / "examples" / f"{name}.flac", dtype="float32")[0])
        clips.append(x[:32000] * 10 ** (-22.5 / 20) / x[:32000].square().mean().sqrt())
    x0 = torch.stack(clips)
    abar = float(ddpm_schedule(clf.config.diffusion).alphas_cumprod[20])
    with torch.no_grad():
        for seed in range(3):
            noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
            p = clf(abar**0.5 * x0 + (1 - abar) ** 0.5 * noise, 20).softmax(-1)
            assert p[0, 0] > 0.8 and p[1, 1] > 0.8, p
