"""Contrastive losses: InfoNCE (positives on the diagonal; CLIP's symmetric form, ContIG's weighted form, AMVLM's
terms, the ExtendedInfoNCE of text-grounded masks) and SimCLR's NT-Xent.

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


def same_group_pairs(group: torch.Tensor) -> torch.Tensor:
    """``(N, N)`` bool: pairs (i, j ≠ i) of rows of the same group (e.g. the two eyes of one person)."""
    return (group[:, None] == group[None, :]) & ~torch.eye(len(group), dtype=torch.bool, device=group.device)


def cross_modal_infonce(z_image: torch.Tensor, z_other: torch.Tensor, temperature: float = 0.1,
                        alpha: float = 0.75, group: torch.Tensor | None = None) -> torch.Tensor:
    """ContIG's pairwise loss (Taleb et al. 2022, Eq. 1–3; official τ 0.1, α 0.75): :func:`info_nce` of the
    L2-normalised projections, ``α · CE(v→g) + (1 − α) · CE(g→v)`` (only cross-modal logits, no image–image or
    genetics–genetics negatives).

    Args:
        z_image: ``(N, D)`` image projections; z_other: ``(N, D)`` projections of the same N rows' modality.
        group: ``(N,)`` person of each row or None. Rows of one person (both eyes share the genetics) are not each
            other's negatives: their off-diagonal logits are dropped (otherwise the fellow eye is a negative with
            the same genetics, and even a perfect model is capped at retrieval 0.5).

    Returns:
        scalar, mean over the N rows.
    """
    z_image, z_other = F.normalize(z_image, dim=1), F.normalize(z_other, dim=1)
    similarity = z_image @ z_other.T                                                             # (N, N)
    if group is not None:
        similarity = similarity.masked_fill(same_group_pairs(group), float("-inf"))
    return info_nce(z_image, z_other, temperature, alpha, similarity)


def extended_infonce(similarity: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """The ExtendedInfoNCE of text-grounded masks (TCL, Cha et al. 2023; AMVLM's official L_tg).

    Unlike InfoNCE, the image side of a pair depends on the text: ``similarity[b, n] = sim(v_{b|n}, t_n)`` where
    ``v_{b|n}`` is image b pooled with the mask that report n draws on it. Symmetric :func:`info_nce` on that
    matrix (positive of image b at report b, of report n at image n) with logits ``scale · S``.

    Args:
        similarity: ``(B, B)`` cosines of (image b under report n's mask, report n).
        logit_scale: 1/τ (a learnable scalar in the official code, clamped at 100; initial 1/0.07).

    Returns:
        scalar.
    """
    return info_nce(similarity, similarity, 1 / logit_scale, 0.5, similarity)


def nt_xent(z_first: torch.Tensor, z_second: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al. 2020, Eq. 1): each of the 2N views against the 2N − 1 others, positive =
    the other view of the same image. ``z_first, z_second``: ``(N, D)``. Returns a scalar (mean over 2N)."""
    z = F.normalize(torch.cat([z_first, z_second]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    n = len(z_first)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, target)
