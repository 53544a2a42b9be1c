"""Which genetic features drive ContIG's image–genetics alignment (ContIG Sec. 4.5), with captum.

Explainer (the paper's): fix a reference batch of individuals (images and genetics) and one test person's image.
The output is the contrastive loss over [reference rows + that person's row] with τ = 1 and α = 0.5 (the official
explainer's settings, not the training τ/α); the image side and the reference genetics are fixed, only the person's
genetic input varies. Attributions (Integrated Gradients 50 steps, IG with a noise tunnel, DeepLift; zero
baseline) are taken per person; global importance = mean |attribution| per feature over test people. Missing
modalities are simply left out (the person is not explained for a modality they lack).

Because the synthetic cohort's causal SNPs/genes/PGS are known, :func:`precision_at_k` scores a ranking against
the truth, next to the expected precision of a random ranking (= causal share of features).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medgap.optional import require
from medgap.phases import timed

ALGORITHMS = ("integrated_gradients", "ig_noise_tunnel", "deeplift")


class PersonLoss(nn.Module):
    """``forward(x (K, F)) -> (K,)``: the contrastive loss of [reference + person] for each candidate genetic input.

    Args:
        genetic_encoder, genetic_head: the modality's MLP and projection head (eval mode: BatchNorm fixed).
        z_image: ``(R + 1, D)`` image projections, reference rows first, the person last (fixed).
        reference_genetics: ``(R, F)`` the reference people's genetic inputs (fixed).
    """

    def __init__(self, genetic_encoder: nn.Module, genetic_head: nn.Module, z_image: torch.Tensor,
                 reference_genetics: torch.Tensor, temperature: float = 1.0, alpha: float = 0.5):
        super().__init__()
        self.genetic_encoder, self.genetic_head = genetic_encoder, genetic_head
        self.temperature, self.alpha = temperature, alpha
        self.register_buffer("z_image", F.normalize(z_image.detach(), dim=1))
        with torch.no_grad():
            reference = F.normalize(genetic_head(genetic_encoder(reference_genetics)), dim=1)
        self.register_buffer("fixed_logits", self.z_image @ reference.T / temperature)  # (R + 1, R)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        z_person = F.normalize(self.genetic_head(self.genetic_encoder(inputs)), dim=1)  # (K, D)
        person_column = (z_person @ self.z_image.T / self.temperature)  # (K, R + 1)
        k, rows = len(inputs), self.fixed_logits.shape[0]
        logits = torch.cat([self.fixed_logits.expand(k, -1, -1), person_column[:, :, None]], 2)  # (K, R+1, R+1)
        target = torch.arange(rows, device=inputs.device).expand(k, -1)
        image_to_genetics = F.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(1)
        genetics_to_image = F.cross_entropy(logits, target, reduction="none").mean(1)
        return self.alpha * image_to_genetics + (1 - self.alpha) * genetics_to_image


def attribute(explainer: nn.Module, person: torch.Tensor, algorithm: str, steps: int = 50,
              noise_samples: int = 10, noise_std: float = 0.1) -> torch.Tensor:
    """Attributions ``(F,)`` of one person's genetic input ``(F,)`` to the explainer output, zero baseline."""
    require("captum", "genetic attributions")
    from captum.attr import DeepLift, IntegratedGradients, NoiseTunnel

    inputs, baseline = person[None].float(), torch.zeros_like(person[None]).float()
    if algorithm == "integrated_gradients":
        result = IntegratedGradients(explainer).attribute(inputs, baseline, n_steps=steps)
    elif algorithm == "ig_noise_tunnel":
        scale = float(inputs.std()) if inputs.numel() > 1 else 1.0
        result = NoiseTunnel(IntegratedGradients(explainer)).attribute(
            inputs, baselines=baseline, n_steps=steps, nt_type="smoothgrad", nt_samples=noise_samples,
            stdevs=noise_std * max(scale, 1e-3))
    elif algorithm == "deeplift":
        result = DeepLift(explainer).attribute(inputs, baseline)
    else:
        raise ValueError(f"unknown attribution algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")
    return result[0].detach()


@timed('attributions')
def global_importance(method, modality: str, reference_images: torch.Tensor, reference_genetics: torch.Tensor,
                      people_images: torch.Tensor, people_genetics: torch.Tensor, algorithm: str,
                      steps: int = 50) -> np.ndarray:
    """Mean |attribution| per feature ``(F,)`` over people, each explained against the same reference batch.

    ``reference_*``: ``(R, C, H, W)`` / ``(R, F)`` people who have the modality; ``people_*`` likewise ``(P, ...)``.
    """
    method.eval()
    encoder, head = method.genetic_encoders[modality], method.genetic_heads[modality]
    with torch.no_grad():
        z_reference = method.image_heads[modality](method.encoder(reference_images))
        z_people = method.image_heads[modality](method.encoder(people_images))
    for module in (encoder, head):  # captum's DeepLift hooks ReLUs; in-place ReLUs would break its bookkeeping
        for layer in module.modules():
            if isinstance(layer, nn.ReLU):
                layer.inplace = False
    total = np.zeros(people_genetics.shape[1])
    for index in range(len(people_genetics)):
        explainer = PersonLoss(encoder, head, torch.cat([z_reference, z_people[index:index + 1]]), reference_genetics)
        total += attribute(explainer, people_genetics[index], algorithm, steps).abs().numpy()
    return total / max(len(people_genetics), 1)


def precision_at_k(importance: np.ndarray, names, causal, k: int) -> dict[str, float]:
    """Share of causal features among the top-``k`` by importance, and a random ranking's expectation."""
    names, causal = list(names), set(causal)
    top = np.argsort(-np.asarray(importance), kind="stable")[:k]
    hits = sum(names[i] in causal for i in top)
    return {"k": k, "precision": hits / k, "random": len(causal & set(names)) / len(names)}


@timed('plots')
def manhattan_importance_plot(names, importance: np.ndarray, causal, path: str | os.PathLike, title: str = "") -> Path:
    """SNP importance along the genome (``rs<chrom>_<pos>`` names), causal SNPs in red."""
    from medgap.evaluation.plots import _save, plt

    chromosome = np.array([int(n[2:].split("_")[0]) for n in names])
    position = np.array([int(n.split("_")[1]) for n in names])
    offsets, start = {}, 0
    for c in np.unique(chromosome):
        offsets[c] = start
        start += position[chromosome == c].max()
    x = np.array([offsets[c] for c in chromosome]) + position
    is_causal = np.array([n in set(causal) for n in names])
    figure, axis = plt.subplots(figsize=(10, 3.2))
    axis.scatter(x[~is_causal], importance[~is_causal], s=4,
                 c=np.where(chromosome[~is_causal] % 2, "#1f77b4", "#7f7f7f"))
    axis.scatter(x[is_causal], importance[is_causal], s=18, color="#d62728", label="causal SNP")
    axis.set_xlabel("genome position (chromosomes alternate in colour)")
    axis.set_ylabel("mean |attribution|")
    axis.set_title(title, fontsize=10)
    axis.legend(fontsize=8)
    return _save(figure, path)


@timed('plots')
def top_features_plot(names, importance: np.ndarray, causal, path: str | os.PathLike, top: int = 15,
                      title: str = "") -> Path:
    """Horizontal bars of the ``top`` most important PGS/genes, causal ones in red."""
    from medgap.evaluation.plots import _save, plt

    order = np.argsort(-importance)[:top][::-1]
    figure, axis = plt.subplots(figsize=(6, 0.3 * len(order) + 1))
    axis.barh([names[i] for i in order], importance[order],
              color=["#d62728" if names[i] in set(causal) else "#7f7f7f" for i in order])
    axis.set_xlabel("mean |attribution| (red: causal)")
    axis.set_title(title, fontsize=10)
    return _save(figure, path)
