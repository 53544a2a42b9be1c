"""Contrastive losses: InfoNCE (positives on the diagonal; CLIP's symmetric form, ContIG's weighted form, AMVLM's
terms) and SimCLR's NT-Xent.

The positive of row i is its partner with the same index; logits are similarity / temperature.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float, alpha: float = 0.5,
             similarity: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE with positives on the diagonal: row i of ``a (B, d)`` belongs with row i of ``b (B, d)``.

    ``L = α · CE(a→b) + (1 − α) · CE(b→a)`` with logits ``s_ij / τ``, ``s_ij = a_iᵀ b_j`` (or a given
    ``similarity (B, B)``), each CE the mean over the batch. α = 0.5 is the symmetric CLIP loss, α = 1 one
    direction only (a→b, rows), α = 0.75 ContIG's weighting. The embeddings are used as given (normalise first
    for cosine similarities).
    """
    logits = (a @ b.T if similarity is None else similarity) / temperature
    target = torch.arange(len(logits), device=logits.device)
    rows = F.cross_entropy(logits, target)
    if alpha == 1:
        return rows
    return alpha * rows + (1 - alpha) * F.cross_entropy(logits.T, target)


def cross_modal_infonce(z_image: torch.Tensor, z_other: torch.Tensor, temperature: float = 0.1,
                        alpha: float = 0.75) -> torch.Tensor:
    """ContIG's pairwise loss (Taleb et al. 2022, Eq. 1–3; official τ 0.1, α 0.75): :func:`info_nce` of the
    L2-normalised projections, ``α · CE(v→g) + (1 − α) · CE(g→v)`` (only cross-modal logits, no image–image or
    genetics–genetics negatives).

    Args:
        z_image: ``(N, D)`` image projections; z_other: ``(N, D)`` projections of the same N individuals' modality.

    Returns:
        scalar, mean over the N rows.
    """
    return info_nce(F.normalize(z_image, dim=1), F.normalize(z_other, dim=1), temperature, alpha)


def nt_xent(z_first: torch.Tensor, z_second: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al. 2020, Eq. 1): each of the 2N views against the 2N − 1 others, positive =
    the other view of the same image. ``z_first, z_second``: ``(N, D)``. Returns a scalar (mean over 2N)."""
    z = F.normalize(torch.cat([z_first, z_second]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    n = len(z_first)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, target)
