"""AMVLM speed and memory on CPU: pretraining throughput (image–report pairs/s), text-guided SSMIS train-step time,
and the size of the CSS cross-attention at the paper's 196 patches × 20 words.

    OMP_NUM_THREADS=1 python benchmarks/bench_amvlm.py [--steps 5] [--threads 1]

Prints a table and writes ``benchmarks/results/bench_amvlm.json`` (with machine info). Random tensors and a
word vocabulary made on the fly: no data set needed.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from medgap.atomic import write_json
from medgap.config import ExperimentConfig, NetConfig
from medgap.methods import amvlm
from medgap.methods.amvlm import AMVLMPretraining, CrossAttention
from medgap.methods.amvlm_ssmis import AMVLMSegmentation
from medgap.methods.amvlm_ssmis import Config as SSMISConfig
from medgap.nets.text import WordTokenizer

REPORTS = ["Bilateral pulmonary infection, two infected areas, upper left lung and lower right lung.",
           "Unilateral pulmonary infection, one infected area, middle right lung.", "No lung infection found."]


class _Spec:
    """The few DatasetSpec fields the methods read (one channel, background/infection)."""

    num_channels, label_values, regions = 1, (0, 1), None
    labels = {"background": 0, "infection": 1}
    path = Path("unused/dataset.json")


def _time(function, steps: int) -> float:
    function()  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        function()
    return (time.perf_counter() - start) / steps


def bench_pretraining(image_size: int, batch: int, steps: int, **method) -> dict:
    config = ExperimentConfig(method=amvlm.Config(**method))
    config.data.patch_size = [image_size, image_size]
    model = AMVLMPretraining(config, _Spec(), WordTokenizer.from_corpus(REPORTS))
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 3e-4)
    data = {"image": torch.randn(batch, 1, image_size, image_size), "text": [REPORTS[i % 3] for i in range(batch)],
            "case": [f"c{i}" for i in range(batch)]}

    def step():
        loss = model.training_step(data, 0).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.on_after_optimizer_step(10)

    seconds = _time(step, steps)
    patches = (image_size // config.method.vit_patch_size) ** 2
    return {"image_size": image_size, "patches": patches, "batch": batch, "step_s": seconds,
            "pairs_per_s": batch / seconds,
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad)}


def bench_ssmis(image_size: int, labelled: int, unlabelled: int, steps: int) -> dict:
    config = ExperimentConfig(method=SSMISConfig(), model=NetConfig(features=[16, 32, 64, 128], norm="batch"))
    config.data.patch_size = [image_size, image_size]
    model = AMVLMSegmentation(config, _Spec(), WordTokenizer.from_corpus(REPORTS)).train()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], 3e-4)
    batch = labelled + unlabelled
    data = {"image": torch.randn(batch, 1, image_size, image_size), "text": [REPORTS[i % 3] for i in range(batch)],
            "labelled": torch.arange(batch) < labelled, "case": [f"c{i}" for i in range(batch)],
            "label": (torch.rand(batch, image_size, image_size) > 0.9).long()}

    def step():
        loss = model.training_step(data, 1000).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.on_after_optimizer_step(1000)

    return {"image_size": image_size, "batch": f"{labelled}+{unlabelled}", "step_s": _time(step, steps)}


def bench_cross_attention(batch: int = 32, patches: int = 196, words: int = 20, dim: int = 128) -> dict:
    """Forward + backward of both CSS directions at the paper's sizes; memory of the attention maps and the
    attended tokens (float32), counted from the tensor shapes."""
    attention_v2t, attention_t2v = CrossAttention(dim), CrossAttention(dim)
    v = torch.randn(batch, patches, dim, requires_grad=True)
    t = torch.randn(batch, words, dim, requires_grad=True)

    def step():
        a, _ = attention_v2t(v, t)
        b, _ = attention_t2v(t, v)
        (a.sum() + b.sum()).backward()

    seconds = _time(step, 5)
    maps = 2 * batch * patches * words * 4               # α^{p→k} and α^{k→p}
    attended = batch * (patches + words) * dim * 4        # t̃ per patch, ṽ per word
    similarity = batch * (patches * patches + words * words) * 4  # the B × N × N matrices of the token losses
    return {"batch": batch, "patches": patches, "words": words, "dim": dim, "fwd_bwd_s": seconds,
            "attention_maps_MiB": maps / 2**20, "attended_tokens_MiB": attended / 2**20,
            "token_similarity_MiB": similarity / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    results = {
        "machine": {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
                    "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "pretraining": [bench_pretraining(64, 16, args.steps),
                        bench_pretraining(64, 16, args.steps, css=False, pdt=False, icl=False)],
        "ssmis": [bench_ssmis(64, 8, 8, args.steps)],
        "cross_attention": bench_cross_attention(),
    }
    results["pretraining"][1]["variant"] = "coarse only"
    results["pretraining"][0]["variant"] = "css+pdt+icl"
    print("| what | size | batch | s/step | pairs/s |")
    print("|---|---|---|---|---|")
    for row in results["pretraining"]:
        print(f"| pretrain {row['variant']} | {row['image_size']}² ({row['patches']} patches) | {row['batch']} | "
              f"{row['step_s']:.3f} | {row['pairs_per_s']:.1f} |")
    for row in results["ssmis"]:
        print(f"| SSMIS step | {row['image_size']}² | {row['batch']} | {row['step_s']:.3f} | — |")
    ca = results["cross_attention"]
    print(f"| CSS cross-attention fwd+bwd | {ca['patches']} patches × {ca['words']} words, d={ca['dim']} | "
          f"{ca['batch']} | {ca['fwd_bwd_s']:.3f} | — |")
    print(f"\nCSS memory at B={ca['batch']}: attention maps {ca['attention_maps_MiB']:.2f} MiB, attended tokens "
          f"{ca['attended_tokens_MiB']:.2f} MiB, token-similarity matrices {ca['token_similarity_MiB']:.2f} MiB")
    out = Path(__file__).parent / "results" / "bench_amvlm.json"
    write_json(out, results)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
