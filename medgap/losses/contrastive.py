"""InfoNCE variants: ContIG's weighted cross-modal loss, SimCLR's NT-Xent and the ExtendedInfoNCE of text-grounded masks.

All use cosine similarities of L2-normalised embeddings / temperature as logits; the positive of each row is
its partner with the same index.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def same_group_pairs(group: torch.Tensor) -> torch.Tensor:
    """``(N, N)`` bool: pairs (i, j ≠ i) of rows of the same group (e.g. the two eyes of one person)."""
    return (group[:, None] == group[None, :]) & ~torch.eye(len(group), dtype=torch.bool, device=group.device)


def cross_modal_infonce(z_image: torch.Tensor, z_other: torch.Tensor, temperature: float = 0.1,
                        alpha: float = 0.75, group: torch.Tensor | None = None) -> torch.Tensor:
    """ContIG's pairwise loss (Taleb et al. 2022, Eq. 1–3; official τ 0.1, α 0.75).

    ``L = α · CE(v→g) + (1 − α) · CE(g→v)`` with logits ``s_ij = <z_v_i, z_g_j> / τ`` over the batch (row i's
    positive is column i; only cross-modal logits, no image–image or genetics–genetics negatives).

    Args:
        z_image: ``(N, D)`` image projections; z_other: ``(N, D)`` projections of the same N rows' modality.
        group: ``(N,)`` person of each row or None. Rows of one person (both eyes share the genetics) are not each
            other's negatives: their off-diagonal logits are dropped (otherwise the fellow eye is a negative with
            the same genetics, and even a perfect model is capped at retrieval 0.5).

    Returns:
        scalar, mean over the N rows.
    """
    z_image, z_other = F.normalize(z_image, dim=1), F.normalize(z_other, dim=1)
    logits = z_image @ z_other.T / temperature  # (N, N)
    if group is not None:
        logits = logits.masked_fill(same_group_pairs(group), float("-inf"))
    target = torch.arange(len(logits), device=logits.device)
    return alpha * F.cross_entropy(logits, target) + (1 - alpha) * F.cross_entropy(logits.T, target)


def nt_xent(z_first: torch.Tensor, z_second: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's NT-Xent (Chen et al. 2020, Eq. 1): each of the 2N views against the 2N − 1 others, positive =
    the other view of the same image. ``z_first, z_second``: ``(N, D)``. Returns a scalar (mean over 2N)."""
    z = F.normalize(torch.cat([z_first, z_second]), dim=1)
    logits = z @ z.T / temperature
    logits = logits.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), float("-inf"))
    n = len(z_first)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, target)


def extended_infonce(similarity: torch.Tensor, logit_scale: torch.Tensor | float) -> torch.Tensor:
    """The ExtendedInfoNCE of text-grounded masks (TCL, Cha et al. 2023; AMVLM's official L_tg).

    Unlike InfoNCE, the image side of a pair depends on the text: ``similarity[b, n] = sim(v_{b|n}, t_n)`` where
    ``v_{b|n}`` is image b pooled with the mask that report n draws on it. Symmetric cross-entropy with the positive
    of image b at report b (and of report n at image n)::

        L = ½ [ CE_b(scale · S[b, :], b) + CE_n(scale · S[:, n], n) ]

    Args:
        similarity: ``(B, B)`` cosines of (image b under report n's mask, report n).
        logit_scale: 1/τ (a learnable scalar in the official code, clamped at 100; initial 1/0.07).

    Returns:
        scalar.
    """
    logits = similarity * logit_scale
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
