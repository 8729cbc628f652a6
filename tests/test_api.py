"""The public Python API as the README shows it, and the layout that keeps it light."""

from __future__ import annotations

import subprocess
import sys

import torch


def test_readme_api_separates_with_the_bundled_priors() -> None:
    from diffsep_cli import Prior, load_prior, separate_tensor

    speech, sfx = load_prior("speech"), load_prior("sfx")
    assert isinstance(speech, Prior)
    mix = 0.1 * torch.randn(2, 8000)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    est = separate_tensor(
        [speech, sfx], mix, steps=2, solver="dirac", consistency="mask", generator=gens
    )
    assert est.shape == (2, 2, 8000) and torch.allclose(est.sum(1), mix, atol=1e-4)
    assert speech.eps(mix, t=199).shape == mix.shape


def test_importing_the_package_and_the_cli_pulls_in_no_torch() -> None:
    code = (
        "import sys, diffsep_cli, diffsep_cli.cli.app; "
        "print('torch' in sys.modules, diffsep_cli.__version__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split()[0] == "False"


def test_readme_api_class_guidance_with_the_bundled_classifier() -> None:
    from diffsep_cli import load_prior, separate_tensor
    from diffsep_cli.hub.classifiers import resolve_classifier

    speech, sfx = load_prior("speech"), load_prior("sfx")
    clf = resolve_classifier("auto", [speech, sfx])
    assert clf is not None and clf.config.labels == ("speech", "sfx")
    classes = [clf.config.labels.index(p.config.name) for p in (speech, sfx)]
    mix = 0.1 * torch.randn(1, 8000)
    kw = {"steps": 3, "generator": torch.Generator().manual_seed(0)}
    guided = separate_tensor([speech, sfx], mix, classifier=clf, classes=classes, **kw)
    kw["generator"] = torch.Generator().manual_seed(0)
    plain = separate_tensor([speech, sfx], mix, **kw)
    assert guided.shape == plain.shape == (1, 2, 8000) and not torch.allclose(guided, plain)
