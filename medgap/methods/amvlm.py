"""AMVLM step 1: alignment-multiplicity aware vision–language pretraining on image–report pairs (Pan et al.).

One report may fit several images and one image may be described by several reports (and one phrase may fit
several regions): AMVLM aligns images and reports at three levels and softens the penalty on such ambiguous
matches. With embeddings L2-normalised and ``sim(a, b) = aᵀb``, temperature τ:

- coarse image–report InfoNCE between the CLS tokens, symmetric (CLIP);
- **CSS** (cross-modal similarity supervision): each patch v^p attends over the words of *its own* report with
  learned Q/K/V, t̃^p = Σ_k softmax_k((Q v^p)ᵀ(K t^k)/√d) V t^k, and
      L_V2T = −1/(2BP) Σ_i Σ_p [ log e^{sim(v^p, t̃^p)/τ} / Σ_k e^{sim(v^p, t̃^k)/τ}
                                + log e^{sim(t̃^p, v^p)/τ} / Σ_k e^{sim(t̃^p, v^k)/τ} ]     (k over the image's patches)
  and L_T2V symmetrically (each word attends over patches, k over the report's words);
- **PDT** (probabilistic distribution transformation): a head maps every token to a diagonal Gaussian
  N(μ, σ²) (σ = exp(log σ)); the similarity of two tokens is modulated by their 2-Wasserstein distance
      W2(a, b) = ‖μ_a − μ_b‖² + ‖σ_a − σ_b‖²,   sim'(a, b) = 1 − (1 − sim(μ̂_a, μ̂_b)) · sigmoid(W2 / ‖μ_a − μ_b‖²)
  (the MAP/AMVLM form, computed *pairwise*); with equal spreads the gate is sigmoid(1) ≈ 0.73 and mismatches
  are compressed towards 1 (an ambiguous match costs less), while unequal spreads restore the plain cosine.
  sim' replaces sim in the CSS losses and the coarse loss;
- **L_local** (official ``my_model.py``; not in the paper's equations): each patch embedding against the report
  CLS embeddings of the batch and each word embedding against the image CLS embeddings, InfoNCE both ways
      L_local^v = −1/(2BP) Σ_i Σ_p [ log e^{sim(v_i^p, t_i)/τ} / Σ_j e^{sim(v_i^p, t_j)/τ}
                                    + log e^{sim(t_i, v_i^p)/τ} / Σ_j e^{sim(t_i, v_j^p)/τ} ]
  and L_local^t the same with words and image CLS; L_local = (L_local^v + L_local^t)/2. It is the only term that
  puts the patches in the space of the report's CLS, which the SSMIS text mask ⟨patch, t^cls⟩ reads;
- **ICL** (intra-modal contrast) between an image and its augmented view (rotation ±20°, rot90 + flip,
  intensity jitter), coarse CLS–CLS and fine CLS–patch, the view encoded by an EMA copy (momentum 0.995;
  ``icl_ema: false`` = the online encoder, which does not lag in short runs):
      L_V2V = −1/B Σ_i log e^{sim(v_i, v_{i,a})/τ} / Σ_j e^{sim(v_i, v_{j,a})/τ}
      L_fine = −1/(BP) Σ_i Σ_p log e^{sim(v_i, v^p_{i,a})/τ} / Σ_j e^{sim(v_i, v^p_{j,a})/τ}.

Total (official weights): L = L_coarse + 0.5 (L_V2T + L_T2V)/2 + 0.1 L_local + 0.1 (L_V2V + L_fine), i.e.
``weight_coarse``, ``weight_css``, ``weight_local``, ``weight_icl_coarse`` = ``weight_icl_fine`` = 0.1 (the last
two are ICL's coarse and fine parts). Each component switches off with ``method.css``/``pdt``/``local``/``icl``
for the ablation. Deviations from the official code we do not copy (see ``docs/methods/amvlm.md``): the view is
augmented in float (no uint8 cast), W2 is pairwise, σ is exponentiated. Differences we keep (documented there):
the coarse loss uses the PDT similarity sim', μ replaces the token embedding, the PDT gate acts before τ, no text
ICL (our reports have no augmented view).

The encoders (:class:`AMVLMEncoders`) are reused frozen by :mod:`medgap.methods.amvlm_ssmis`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medgap.config import ExperimentConfig
from medgap.data.dataset_json import DatasetSpec
from medgap.errors import ConfigError, MedgapError
from medgap.losses.contrastive import info_nce
from medgap.methods.base import PretrainingMethod, StepOutput
from medgap.methods.options import AMVLMOptions
from medgap.nets.text import PretrainedTextEncoder, TextEncoder, WordTokenizer
from medgap.nets.vit import ViT
from medgap.training.ema import make_teacher, update_teacher


Config = AMVLMOptions  # the method's options (the YAML ``method:`` section), in methods/options.py


# ----------------------------------------------------------------------------------------------- losses
def token_matching_loss(similarity: torch.Tensor, mask: torch.Tensor, temperature: float) -> torch.Tensor:
    """The CSS loss of one direction (L_V2T or L_T2V) from ``similarity (B, N, N)``, ``[i, p, k] = sim(q_i^p, m_i^k)``.

    Token p of sample i must match its own cross-attended counterpart rather than those of the sample's other
    tokens k (both terms of the paper's sum; the second uses sim(m^p, q^k) = similarity[i, k, p]). ``mask (B, N)``
    drops padding tokens from the sums and the denominators. Returns the mean over valid (i, p) of the two terms'
    average: −1/(2BP) Σ_i Σ_p [...] when no token is masked.
    """
    logits = similarity / temperature
    pair = mask[:, :, None] & mask[:, None, :]
    logits = logits.masked_fill(~pair, float("-inf"))
    eye = torch.eye(similarity.shape[1], dtype=torch.bool, device=similarity.device)
    forward = -(logits.log_softmax(-1)[:, eye])                    # (B, N): −log softmax_k sim(q^p, m^k)
    backward = -(logits.transpose(1, 2).log_softmax(-1)[:, eye])  # (B, N): −log softmax_k sim(m^p, q^k)
    return (0.5 * (forward + backward))[mask].mean()


def local_infonce(tokens: torch.Tensor, mask: torch.Tensor, other_cls: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """One modality's half of L_local: tokens ``(B, N, d)`` of sample i against the other modality's CLS ``(B, d)``.

    For every valid token (i, p) (``mask (B, N)``): −log softmax_j sim(x_i^p, c_j)/τ at j = i (token → CLS of the
    batch) and −log softmax_j sim(c_i, x_j^p)/τ at j = i (CLS → the p-th tokens of the batch, invalid ones left
    out); returns the mean over valid (i, p) of the two terms' average.
    """
    logits = torch.einsum("ipd,jd->ipj", tokens, other_cls) / temperature                    # (B, N, B)
    target = torch.arange(len(tokens), device=tokens.device)
    token_to_cls = -logits.log_softmax(-1).diagonal(dim1=0, dim2=2).T                       # (B, N): [i, p]
    # [i, p, j] = sim(c_i, x_j^p); a finite fill keeps a position that is padding in every sample NaN-free
    backward = logits.permute(2, 1, 0).masked_fill(~mask.T[None], -1e9)
    cls_to_token = -backward.log_softmax(-1)[target, :, target]                               # (B, N)
    return (0.5 * (token_to_cls + cls_to_token))[mask].mean()


def w2_distance(mu_a: torch.Tensor, sigma_a: torch.Tensor, mu_b: torch.Tensor, sigma_b: torch.Tensor) -> torch.Tensor:
    """Pairwise squared 2-Wasserstein distance between diagonal Gaussians.

    ``mu_a, sigma_a (..., N, d)``, ``mu_b, sigma_b (..., M, d)`` (σ the standard deviations) → ``(..., N, M)``
    with ``[n, m] = ‖μ_a^n − μ_b^m‖² + ‖σ_a^n − σ_b^m‖²`` (every pair, not only n = m).
    """
    return _squared_distances(mu_a, mu_b) + _squared_distances(sigma_a, sigma_b)


def _squared_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    distances = (a * a).sum(-1)[..., :, None] + (b * b).sum(-1)[..., None, :] - 2 * a @ b.transpose(-1, -2)
    return distances.clamp_min(0.0)


def pdt_similarity(mu_a, sigma_a, mu_b, sigma_b, eps: float = 1e-4, max_ratio: float = 50.0) -> torch.Tensor:
    """sim' = 1 − (1 − cos(μ_a, μ_b)) · sigmoid(W2 / ‖Δμ‖²), pairwise ``(..., N, M)``.

    The ratio is ≥ 1 (W2 = ‖Δμ‖² + ‖Δσ‖²) and capped at ``max_ratio`` (where the sigmoid is already 1) so that
    nearly equal means cannot produce huge gradients; ``eps`` guards ‖Δμ‖² = 0 (identical tokens: sim' = 1).
    """
    cosine = F.normalize(mu_a, dim=-1) @ F.normalize(mu_b, dim=-1).transpose(-1, -2)
    ratio = w2_distance(mu_a, sigma_a, mu_b, sigma_b) / (_squared_distances(mu_a, mu_b) + eps)
    return 1.0 - (1.0 - cosine) * torch.sigmoid(ratio.clamp(max=max_ratio))


# ----------------------------------------------------------------------------------------------- modules
class TokenProjectionHead(nn.Module):
    """Linear → BatchNorm → ReLU → Linear (official: width → 2048 → 128) over CLS and token embeddings
    ``(..., width)`` (unlike :class:`medgap.nets.encoders.ProjectionHead`: BatchNorm, any leading shape)."""

    def __init__(self, width: int, hidden: int, out: int):
        super().__init__()
        self.first, self.norm, self.second = nn.Linear(width, hidden), nn.BatchNorm1d(hidden), nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        hidden = F.relu(self.norm(self.first(x.reshape(-1, shape[-1]))))
        return self.second(hidden).reshape(*shape[:-1], -1)


class CrossAttention(nn.Module):
    """Soft matching with learned Q/K/V: every query token gathers the key tokens of the *same* sample.

    ``queries (B, N, d)``, ``keys (B, M, d)``, ``key_mask (B, M)`` bool or None → ``attended (B, N, d)`` and the
    weights ``α (B, N, M)`` (rows sum to 1 over valid keys).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.query, self.key, self.value = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, queries, keys, key_mask=None):
        scores = self.query(queries) @ self.key(keys).transpose(1, 2) * self.scale            # (B, N, M)
        if key_mask is not None:
            scores = scores.masked_fill(~key_mask[:, None, :], float("-inf"))
        weights = torch.nan_to_num(scores.softmax(-1))  # a sample without any key (empty report) attends nothing
        return weights @ self.value(keys), weights


class PDTHead(nn.Module):
    """Token embeddings ``(B, N, d)`` → Gaussian ``μ (B, N, d)`` (identity + residual) and ``log σ (B, N, d)``.

    As the official head (MAP): Linear + GELU + LayerNorm, one self-attention layer, residual MLPs for μ and log σ.
    """

    def __init__(self, dim: int, heads: int = 4):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim))
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mu = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))
        self.log_sigma = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, tokens: torch.Tensor, padding: torch.Tensor | None = None):
        hidden = self.embed(tokens)
        hidden = hidden + self.attention(hidden, hidden, hidden, key_padding_mask=padding, need_weights=False)[0]
        mu = tokens + self.mu(hidden)
        log_sigma = self.log_sigma(hidden).clamp(-6.0, 3.0)  # σ = exp(log σ) stays in [2.5e-3, 20]
        return mu, log_sigma


@dataclass
class Embeddings:
    """L2-normalised embeddings of one modality: CLS ``(B, d)``, tokens ``(B, N, d)``, token mask ``(B, N)``;
    with PDT also the spreads σ of the CLS ``(B, d)`` and of the tokens ``(B, N, d)``. ``cls_projected`` is the
    CLS before the PDT head (= ``cls`` without PDT): the space of the EMA view encoder that ICL compares with."""

    cls: torch.Tensor
    tokens: torch.Tensor
    mask: torch.Tensor
    cls_sigma: torch.Tensor | None = None
    token_sigma: torch.Tensor | None = None
    cls_projected: torch.Tensor | None = None


class AMVLMEncoders(nn.Module):
    """Image ViT + report encoder + projection heads (+ PDT heads): what pretraining learns and SSMIS reuses."""

    def __init__(self, method: Config, image_size: int, in_channels: int, tokenizer: WordTokenizer | None):
        super().__init__()
        self.pdt = method.pdt
        self.image = ViT(image_size, in_channels, method.vit_patch_size, method.vit_width, method.vit_depth,
                         method.vit_heads)
        if method.text_encoder_path:
            self.text = PretrainedTextEncoder(method.text_encoder_path, method.max_words, method.text_pooling)
        else:
            self.text = TextEncoder(tokenizer, method.text_width, method.text_depth, method.text_heads,
                                    method.text_pooling)
        self.text_frozen = method.text_lr_scale == 0
        if self.text_frozen:
            self.text.requires_grad_(False)
        elif method.text_lr_scale != 1:
            scale_learning_rate(self.text, method.text_lr_scale)
        d = method.embed_dim
        self.image_projection = TokenProjectionHead(method.vit_width, method.projection_hidden, d)
        self.text_projection = TokenProjectionHead(self.text.width, method.projection_hidden, d)
        if self.pdt:
            self.image_pdt, self.text_pdt = PDTHead(d), PDTHead(d)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.text_frozen:  # a frozen pretrained encoder keeps its dropout off
            self.text.eval()
        return self

    def _embed(self, cls, tokens, mask, projection, pdt) -> Embeddings:
        sequence = projection(torch.cat([cls[:, None], tokens], 1))                     # (B, 1 + N, d)
        cls_projected = F.normalize(sequence[:, 0], dim=-1)
        cls_sigma = token_sigma = None
        if self.pdt:
            padding = torch.cat([torch.zeros_like(mask[:, :1]), ~mask], 1)
            sequence, log_sigma = pdt(sequence, padding)
            sigma = log_sigma.exp()
            cls_sigma, token_sigma = sigma[:, 0], sigma[:, 1:]
        sequence = F.normalize(sequence, dim=-1)
        return Embeddings(sequence[:, 0], sequence[:, 1:], mask, cls_sigma, token_sigma, cls_projected)

    def encode_image(self, image: torch.Tensor) -> Embeddings:
        """``image (B, C, H, W)`` → :class:`Embeddings` with P = (H/patch)² patch tokens (row-major grid)."""
        cls, patches = self.image(image)
        mask = torch.ones(patches.shape[:2], dtype=torch.bool, device=patches.device)
        return self._embed(cls, patches, mask, self.image_projection, getattr(self, "image_pdt", None))

    def encode_text(self, texts: list[str]) -> Embeddings:
        """``texts`` (B reports) → :class:`Embeddings` with W = max_words word tokens (mask = real words)."""
        cls, word_states, mask = self.text(texts)
        return self._embed(cls, word_states, mask, self.text_projection, getattr(self, "text_pdt", None))

    def similarity(self, a: Embeddings, b: Embeddings) -> torch.Tensor:
        """CLS–CLS similarity ``(B_a, B_b)``: sim' with PDT, else the cosine."""
        if self.pdt:
            return pdt_similarity(a.cls, a.cls_sigma, b.cls, b.cls_sigma)
        return a.cls @ b.cls.T


class _Scaled(nn.Module):
    """Parametrisation w = factor · u (u is the stored, optimised tensor)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, stored: torch.Tensor) -> torch.Tensor:
        return stored * self.factor

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        return weight / self.factor


def scale_learning_rate(module: nn.Module, factor: float) -> None:
    """Give every parameter of ``module`` an effective learning rate ``factor`` × the optimiser's, without a
    parameter group: each weight is stored as u = w / factor and used as w = factor · u. Adam's step on u has the
    size of the LR whatever the gradient's scale, so w moves by factor × LR (plain SGD would move it by factor²)."""
    from torch.nn.utils import parametrize

    for submodule in list(module.modules()):
        for name, parameter in list(submodule.named_parameters(recurse=False)):
            if parameter.requires_grad:
                parametrize.register_parametrization(submodule, name, _Scaled(factor))


def augment_view(image: torch.Tensor, generator: torch.Generator | None = None, degrees: float = 20.0,
                 jitter: float = 0.1) -> torch.Tensor:
    """The ICL view of ``image (B, C, H, W)`` (float, never cast to uint8): random rot90 + flip, rotation by
    U(±degrees), intensity scale/shift U(±jitter) per image."""
    batch = len(image)
    draw = lambda *shape: torch.rand(*shape, generator=generator).to(image.device)  # noqa: E731
    views = []
    for index in range(batch):
        view = torch.rot90(image[index], int(draw(1).item() * 4) % 4, dims=(-2, -1))
        if draw(1).item() < 0.5:
            view = view.flip(-1)
        views.append(view)
    view = torch.stack(views)
    angle = (draw(batch) * 2 - 1) * math.radians(degrees)
    cos, sin = angle.cos(), angle.sin()
    theta = torch.stack([torch.stack([cos, -sin, torch.zeros_like(cos)], 1),
                         torch.stack([sin, cos, torch.zeros_like(cos)], 1)], 1).to(image.dtype)  # (B, 2, 3)
    grid = F.affine_grid(theta, list(view.shape), align_corners=False)
    view = F.grid_sample(view, grid, padding_mode="border", align_corners=False)
    scale = 1 + (draw(batch, 1, 1, 1) * 2 - 1) * jitter
    shift = (draw(batch, 1, 1, 1) * 2 - 1) * jitter
    return view * scale.to(image.dtype) + shift.to(image.dtype)


# ----------------------------------------------------------------------------------------------- the method
class AMVLMPretraining(PretrainingMethod):
    """Pretraining as a method of the generic loop: ``training_step`` returns the AMVLM loss for a batch of
    ``image (B, C, H, W)`` and ``text`` (B reports); validation scores image→report retrieval."""

    downstream = "use its run in method amvlm_ssmis (method.pretrained_run)"

    def __init__(self, config: ExperimentConfig, spec: DatasetSpec, tokenizer: WordTokenizer | None = None):
        super().__init__()
        self.config = method = config.method
        image_size = _image_size(config)
        if tokenizer is None and not method.text_encoder_path:
            tokenizer = WordTokenizer.from_report_folder(spec.path.parent / "textTr", method.max_words)
        self.encoders = AMVLMEncoders(method, image_size, spec.num_channels, tokenizer)
        d = method.embed_dim
        if method.css:
            self.patch_to_words, self.words_to_patches = CrossAttention(d), CrossAttention(d)
        if method.icl and method.icl_ema:
            # the view encoder: an EMA copy of the image branch (ViT + projection), no gradients
            self.view_encoder = make_teacher(nn.ModuleDict({"image": self.encoders.image,
                                                            "image_projection": self.encoders.image_projection}))

    def train(self, mode: bool = True):
        super().train(mode)
        if hasattr(self, "view_encoder"):
            self.view_encoder.eval()
        return self

    def losses(self, image: torch.Tensor, texts: list[str], view: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Every enabled loss term (unweighted) for one batch; ``view`` = the augmented images (ICL)."""
        method, tau = self.config, self.config.temperature
        images, reports = self.encoders.encode_image(image), self.encoders.encode_text(texts)
        terms = {"coarse": info_nce(images.cls, reports.cls, tau,
                                    similarity=self.encoders.similarity(images, reports))}
        if method.css:
            terms["v2t"] = self._css(images, reports, self.patch_to_words)
            terms["t2v"] = self._css(reports, images, self.words_to_patches)
        if method.local:
            terms["local"] = 0.5 * (local_infonce(images.tokens, images.mask, reports.cls, tau)
                                    + local_infonce(reports.tokens, reports.mask, images.cls, tau))
        if method.icl and view is not None:
            cls_view, patches_view = self._encode_view(view)
            online = images.cls_projected  # same space as the view encoder (projection, no PDT head)
            terms["icl_coarse"] = info_nce(online, cls_view, tau, alpha=1.0)  # one direction
            # [i, p, j] = sim(v_i^cls, v_{j,a}^p): for each (i, p) the positive is j = i
            logits = torch.einsum("id,jpd->ipj", online, patches_view) / tau
            target = torch.arange(len(image), device=image.device)[:, None].expand(-1, logits.shape[1])
            terms["icl_fine"] = F.cross_entropy(logits.reshape(-1, len(image)), target.reshape(-1))
        return terms

    def _css(self, queries: Embeddings, keys: Embeddings, attention: CrossAttention) -> torch.Tensor:
        """L_V2T (queries = patches, keys = words) or L_T2V (queries = words, keys = patches)."""
        attended, weights = attention(queries.tokens, keys.tokens, keys.mask)
        attended = F.normalize(attended, dim=-1)
        if self.encoders.pdt:
            # the attended token's spread: the attention-weighted spread of the tokens it gathered
            sigma = weights @ keys.token_sigma
            similarity = pdt_similarity(queries.tokens, queries.token_sigma, attended, sigma)
        else:
            similarity = queries.tokens @ attended.transpose(1, 2)
        valid = queries.mask & keys.mask.any(1, keepdim=True)
        return token_matching_loss(similarity, valid, self.config.temperature)

    def _encode_view(self, view: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if hasattr(self, "view_encoder"):
            with torch.no_grad():
                cls, patches = self.view_encoder["image"](view)
                sequence = self.view_encoder["image_projection"](torch.cat([cls[:, None], patches], 1))
        else:
            cls, patches = self.encoders.image(view)
            sequence = self.encoders.image_projection(torch.cat([cls[:, None], patches], 1))
        sequence = F.normalize(sequence, dim=-1)
        return sequence[:, 0], sequence[:, 1:]

    def training_step(self, batch: dict, step: int) -> StepOutput:
        texts = batch.get("text")
        if texts is None or any(text is None for text in texts):
            missing = [c for c, t in zip(batch["case"], texts or [None] * len(batch["case"])) if t is None]
            raise MedgapError(f"case {missing[0]}: no report (textTr/{missing[0]}.txt); AMVLM needs one per image")
        method = self.config
        view = None
        if method.icl:
            generator = torch.Generator().manual_seed(int(method_seed(batch["case"], step)))
            view = augment_view(batch["image"], generator, method.rotation_degrees, method.intensity_jitter)
        terms = self.losses(batch["image"], texts, view)
        weights = {"coarse": method.weight_coarse, "v2t": 0.5 * method.weight_css, "t2v": 0.5 * method.weight_css,
                   "local": method.weight_local, "icl_coarse": method.weight_icl_coarse, "icl_fine": method.weight_icl_fine}
        loss = sum(weights[name] * value for name, value in terms.items())
        return StepOutput(loss, {f"loss_{name}": float(value.detach()) for name, value in terms.items()})

    def on_after_optimizer_step(self, step: int) -> None:
        if hasattr(self, "view_encoder"):
            student = nn.ModuleDict({"image": self.encoders.image, "image_projection": self.encoders.image_projection})
            update_teacher(self.view_encoder, student, self.config.ema_decay, step)

    @torch.no_grad()
    def validation_scores(self, data, config: ExperimentConfig, device=None, split: str = "val") -> dict[str, float]:
        """Image→report and report→image top-1 retrieval over the ``split`` cases (a retrieved report counts as
        correct when its text equals the true one: several images share "No lung infection found.")."""
        self.eval()
        cases = [case for case in data.split_cases(split) if case.text is not None]
        cases = cases[: config.trainer.val_max_cases or None]
        if len(cases) < 2:
            return {"retrieval_top1": float("nan")}
        images, reports = [], []
        for start in range(0, len(cases), 32):
            chunk = cases[start:start + 32]
            image = torch.stack([torch.from_numpy(np.array(case.image(), np.float32)) for case in chunk]).to(device)
            images.append(self.encoders.encode_image(image))
            reports.append(self.encoders.encode_text([case.text for case in chunk]))
        image_cls = Embeddings(torch.cat([e.cls for e in images]), None, None,
                               torch.cat([e.cls_sigma for e in images]) if self.encoders.pdt else None)
        text_cls = Embeddings(torch.cat([e.cls for e in reports]), None, None,
                              torch.cat([e.cls_sigma for e in reports]) if self.encoders.pdt else None)
        similarity = self.encoders.similarity(image_cls, text_cls).cpu()
        texts = [case.text for case in cases]
        image_to_text = np.mean([texts[j] == texts[i] for i, j in enumerate(similarity.argmax(1).tolist())])
        text_to_image = np.mean([texts[j] == texts[i] for i, j in enumerate(similarity.argmax(0).tolist())])
        return {"retrieval_top1": float((image_to_text + text_to_image) / 2),
                "retrieval_i2t": float(image_to_text), "retrieval_t2i": float(text_to_image)}


def method_seed(cases: list[str], step: int) -> int:
    """A per-batch seed for the ICL view from the step and the case ids: reproducible, resume-safe."""
    return (step * 1_000_003 + sum(sum(map(ord, c)) for c in cases)) % (2**31)


def _image_size(config: ExperimentConfig) -> int:
    size = config.data.patch_size
    if len(size) != 2 or (config.method.vit_image_size is None and size[0] != size[1]):
        raise ConfigError(f"AMVLM needs square 2-D images: data.patch_size must be [S, S] (the image size), got {size}")
    side = int(config.method.vit_image_size or size[0])
    if side % config.method.vit_patch_size:
        key = "method.vit_image_size" if config.method.vit_image_size else "data.patch_size"
        raise ConfigError(f"{key}: the ViT's image side {side} is not divisible by method.vit_patch_size "
                          f"{config.method.vit_patch_size}")
    return side


def check_whole_images(config: ExperimentConfig, spec: DatasetSpec) -> None:
    """Refuse training patches smaller than the images: a report describes the whole image, and a crop would be
    paired with findings it may not show. The fix keeps the ViT small: whole images, resized inside the ViT."""
    from medgap.data.io import read_image

    first = next(iter(sorted((spec.path.parent / "imagesTr").glob(f"*{spec.file_ending}"))), None)
    if first is None:
        return
    shape = read_image(first)[0].shape[-2:]
    if any(side > patch for side, patch in zip(shape, config.data.patch_size)):
        raise ConfigError(
            f"{first}: images are {shape[0]}x{shape[1]} but data.patch_size is {config.data.patch_size}; AMVLM pairs "
            f"each whole image with its report: set data.patch_size=[{shape[0]},{shape[1]}] (and "
            f"method.vit_image_size={_image_size(config)} to keep the ViT at its size: images are resized to it)")


def build(config: ExperimentConfig, spec: DatasetSpec) -> AMVLMPretraining:
    check_whole_images(config, spec)
    return AMVLMPretraining(config, spec)


# ----------------------------------------------------------------------------------------------- deviations
from medgap.methods.deviations import Deviation  # noqa: E402  (kept beside the list, see medgap/methods/deviations.py)

DEVIATIONS = [
    Deviation("encoders", "from scratch: a pre-norm ViT (64², patch 8, width 128, depth 4) and a word tokenizer + "
              "2-layer transformer", "paper/official: DeiT ViT-B/16 at 224² and Bio_ClinicalBERT (6 layers), "
              "fine-tuned at LR 3e-5", "no downloads and CPU scale; a local Hugging Face text encoder can be "
              "loaded", {"method.text_encoder_path": "/path/to/local/encoder"}, "paper; official code (QingtaoPan/AMVLM), read 2026-12-02"),
    Deviation("projection heads", "Linear → BN → ReLU → Linear, hidden 256, d = 64", "official: hidden 2048, "
              "d = 128", "CPU scale", {"method.projection_hidden": 2048, "method.embed_dim": 128},
              "paper; official code (QingtaoPan/AMVLM)"),
    Deviation("CSS attention", "learned Q/K/V cross-attention and plain averages over tokens (the paper's "
              "equations)", "official: parameter-free softmax(a·bᵀ/τ), token losses weighted by CLS attention "
              "clipped to its 10–90 % quantiles", "the paper's description", None, "paper; official code (QingtaoPan/AMVLM)"),
    Deviation("PDT in the coarse loss", "sim' (Wasserstein-gated) also replaces the CLS cosine of the coarse "
              "InfoNCE", "paper: PDT supervises the fine-grained similarity", "one similarity for every level",
              None, "paper; official code (QingtaoPan/AMVLM)"),
    Deviation("PDT σ and distance", "σ = exp(log σ), log σ clamped to [−6, 3]; pairwise W2; the gate's ratio "
              "capped at 50 with ε = 1e-4", "official: σ never exponentiated; the W2 'pairwise' helper returns "
              "the diagonal", "official bugs; the cap and ε keep the gate finite", None, "official code (QingtaoPan/AMVLM)"),
    Deviation("ICL view", "augmented in float (rot90 + flip, rotation ±20°, intensity jitter)", "official: "
              "[0, 1] images cast to uint8 (near-black views)", "an official bug", None,
              "official code (QingtaoPan/AMVLM)"),
    Deviation("schedule", "Adam 3e-4 from scratch, CPU-sized steps and batches", "official: Adam 3e-5, batch 32, "
              "100 epochs, AMP, from pretrained encoders", "encoders trained from scratch need a larger step",
              None, "paper; official code (QingtaoPan/AMVLM)"),
    Deviation("PDT details", "μ replaces the token embedding; the Wasserstein gate is applied before τ",
              "official: differs in both", "the paper's equations as read", None, "official code (QingtaoPan/AMVLM), read 2026-12-02"),
    Deviation("text ICL", "intra-modal contrast on images only", "official: also on an augmented report view",
              "the synthetic reports have no augmented view", None, "official code (QingtaoPan/AMVLM), read 2026-12-02"),
    Deviation("text encoder pooling", "`cls` by default; `mean` and a frozen or slower text encoder for "
              "sentence-transformer folders (MiniLM)", "official: Bio_ClinicalBERT CLS", "sentence-transformer "
              "models do not train their CLS token", {"method.text_pooling": "cls"}, "official code (QingtaoPan/AMVLM), read 2026-12-02"),
    Deviation("ICL EMA in short budgets", "the reproduction's tiny/small budgets use EMA decay 0.99 and LR 1e-3",
              "official: 0.995, LR 3e-5", "a 0.995 teacher lags in 200-step runs", {"method.ema_decay": 0.995}, "official code (QingtaoPan/AMVLM), read 2026-12-02"),
]
