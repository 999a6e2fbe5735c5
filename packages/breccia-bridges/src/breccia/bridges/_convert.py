"""``breccia convert``: stream a checkpoint shard by shard into another recipe and format, atomically and resumably.

All work happens in ``DST.partial/`` beside DST. Its journal (``.breccia-convert.json``) records the arguments that
decide the output bytes and, per finished shard, the file's name, size and sha256 (plus what the final config and
index need). Only when every shard is done are the index, ``config.json`` and the source directory's other files
written; then the journal is removed and the directory renamed to DST in one step, so DST is either absent or
complete. A later run with the same arguments finds the staging directory, keeps each journaled shard whose size
and hash still match, and redoes the rest; different arguments are refused (the staging directory is not ours).

Shards run in process, in a process pool (``--workers N``) or as ray tasks (``--ray ADDRESS``); each task is one
shard, and the journal is written by this process only, so the output never depends on the execution path.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from breccia._errors import FormatError, RecipeError

from ._compressed_tensors import quantization_config
from ._compressed_tensors_formats import Args
from ._convert_plan import Plan
from ._convert_progress import Progress
from ._convert_shard import ShardTask, file_digest, run_shard
from ._deepseek import quant_config
from ._files import INDEX_NAME, atomic_path, write_index

__all__ = ["JOURNAL", "convert"]

JOURNAL = ".breccia-convert.json"


def _after_shard(record: dict[str, Any]) -> None:
    """Called once a shard is journaled; a seam for tests that simulate a crash between shards."""


class Journal:
    """The staging directory's record of finished shards, rewritten atomically after each one."""

    def __init__(self, staging: Path, args: dict[str, Any]) -> None:
        self.path = staging / JOURNAL
        self.doc: dict[str, Any] = {"version": 1, "args": args, "shards": {}}

    @classmethod
    def open(cls, plan: Plan) -> tuple[Journal, list[str]]:
        """A fresh journal, or the earlier run's with its verified shards; returns the names of those shards."""
        journal = cls(plan.staging, plan.journal_args())
        if not plan.staging.exists():
            plan.staging.mkdir()
            journal.save()
            return journal, []
        if not plan.staging.is_dir():
            raise FormatError(f"{plan.staging} exists and is not a directory; remove it")
        try:
            old = json.loads(journal.path.read_text())
        except FileNotFoundError:
            old = None  # killed before the first journal write: nothing finished
        except (OSError, ValueError, UnicodeDecodeError):
            msg = f"{journal.path} is not a readable journal; remove {plan.staging} to start over"
            raise FormatError(msg) from None
        if old is not None and (not isinstance(old, dict) or old.get("args") != journal.doc["args"]):
            raise FormatError(
                f"{plan.staging} holds a conversion with other arguments ({json.dumps(old.get('args'))[:200]}…); "
                f"rerun with those arguments to resume it, or remove {plan.staging}"
            )
        kept = []
        for name, rec in sorted(((old or {}).get("shards") or {}).items()):
            path = plan.staging / name
            ok = isinstance(rec, dict) and path.is_file() and path.stat().st_size == rec.get("size")
            if ok and file_digest(path) == rec.get("sha256"):
                journal.doc["shards"][name] = rec
                kept.append(name)
        # an atomic write the kill interrupted: ours (``.NAME.XXXX.tmp``), and safetensors' own temporary file
        # (``.tmpXXXXXX``: ``serialize_file`` writes one beside its target and renames it at the end)
        for leftover in [*plan.staging.glob(".*.tmp"), *plan.staging.glob(".tmp*")]:
            leftover.unlink(missing_ok=True)
        journal.save()
        return journal, kept

    def save(self) -> None:
        with atomic_path(self.path) as tmp:
            Path(tmp).write_text(json.dumps(self.doc, indent=1, sort_keys=True))

    def record(self, rec: dict[str, Any]) -> None:
        self.doc["shards"][rec["file"]] = rec
        self.save()
        _after_shard(rec)


def _tasks(plan: Plan, skip: list[str]) -> list[ShardTask]:
    by_file = plan.src.by_file()
    layout = plan.layout.to_dict() if plan.layout else None
    out = []
    for f in plan.src.files:
        if f in skip:
            continue
        chosen = frozenset(e.name for e in by_file[f] if e.name in plan.selected)
        out.append(ShardTask(str(plan.src.path), plan.src.kind, f, str(plan.staging), plan.fmt, plan.recipe.to_dict(),
                             layout, tuple(by_file[f]), chosen, plan.src.quant))  # fmt: skip
    return out


def _run(tasks: list[ShardTask], workers: int, ray: str | None, done: Callable[[dict[str, Any]], None],
         bar: Progress) -> None:  # fmt: skip
    if ray is not None:
        from ._convert_ray import run_ray

        def finished(rec: dict[str, Any]) -> None:
            done(rec)
            bar.advance_shard(rec)

        run_ray(tasks, ray, finished)
    elif workers <= 1 or len(tasks) <= 1:
        for task in tasks:
            done(run_shard(task, bar.advance))
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")  # no fork of a process holding the progress thread
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
            futures = [pool.submit(run_shard, t) for t in tasks]
            try:
                for fut in as_completed(futures):
                    rec = fut.result()
                    done(rec)
                    bar.advance_shard(rec)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise


def _config(plan: Plan, shards: list[dict[str, Any]]) -> dict[str, Any] | None:
    """``config.json`` of DST: the source's (if any) with the target format's ``quantization_config``."""
    cfg = dict(plan.src.config) if plan.src.config is not None else None
    if cfg is not None:
        cfg.pop("quantization_config", None)
        cfg.pop("compression_config", None)
    quantized = any(r["actions"][a] for r in shards for a in ("quantized", "requantized", "repacked"))
    q: dict[str, Any] | None = None
    if plan.fmt == "compressed-tensors":
        merged: dict[str, tuple[str, Args, list[str]]] = {}
        for rec in shards:  # shard order, then first-seen order: the same groups whatever ran them
            for fmt, args, mods in rec.get("schemes", []):
                a = Args(**{**args, "block": tuple(args["block"]) if args.get("block") else None})
                key = json.dumps([fmt, a.to_json()], sort_keys=True)
                merged.setdefault(key, (fmt, a, []))[2].extend(mods)
        q = quantization_config(list(merged.values())) if merged else None
    elif plan.fmt == "deepseek":
        blocks = sorted({tuple(b) for rec in shards for b in rec.get("blocks", [])})
        if len(blocks) > 1:
            raise RecipeError(f"--format deepseek: one checkpoint holds one block size and format; got {blocks}")
        q = quant_config(*blocks[0]) if blocks else None
    elif quantized and cfg is not None:  # a breccia file describes itself; config.json only for HF directories
        q = {"quant_method": "breccia", "format": "breccia", "version": 1, "recipe": plan.recipe.to_dict(),
             "layout": plan.layout.to_dict() if plan.layout else None}  # fmt: skip
    if q is not None:
        cfg = {} if cfg is None else cfg
        cfg["quantization_config"] = q
    return cfg


def _finish(plan: Plan, journal: Journal) -> list[dict[str, Any]]:
    shards = [journal.doc["shards"][f] for f in plan.src.files]
    if plan.src.indexed or len(shards) > 1:
        weight_map = {k: rec["file"] for rec in shards for k in rec["keys"]}
        meta = {k: v for rec in shards for k, v in sorted(rec["meta"].items())}
        write_index(plan.staging, weight_map, sum(r["total_size"] for r in shards), meta)
    cfg = _config(plan, shards)
    if cfg is not None:
        with atomic_path(plan.staging / "config.json") as tmp:
            Path(tmp).write_text(json.dumps(cfg, indent=2))
    if plan.src.path.is_dir():  # tokenizer, generation config, sub-folders (sentence-transformers' 1_Pooling …)
        skip = {INDEX_NAME, "config.json", *plan.src.files}
        for item in sorted(plan.src.root.iterdir()):
            if item.name in skip or item.name.endswith(".safetensors") or item.name.startswith("."):
                continue
            if item.is_dir():
                shutil.copytree(item, plan.staging / item.name, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("*.safetensors"))  # fmt: skip
            elif item.is_file():
                with atomic_path(plan.staging / item.name) as tmp:
                    shutil.copyfile(item, tmp)
    journal.path.unlink()
    os.rename(plan.staging, plan.dst)
    return shards


def convert(plan: Plan, *, workers: int = 1, ray: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Run ``plan`` to completion and return the summary (see :func:`summary`)."""
    journal, kept = Journal.open(plan)
    tasks = _tasks(plan, kept)
    todo = sum(e.nbytes for t in tasks for e in t.entries)
    with Progress(todo, sum(len(t.entries) for t in tasks), enabled=progress and sys.stderr.isatty()) as bar:
        _run(tasks, workers, ray, journal.record, bar)
    shards = _finish(plan, journal)
    return summary(plan, shards, kept)


def summary(plan: Plan, shards: list[dict[str, Any]], kept: list[str]) -> dict[str, Any]:
    """Sizes, counts and mean SQNR per recipe (exact re-packs are counted, not averaged: their SQNR is infinite)."""
    actions = {a: sum(r["actions"][a] for r in shards) for a in ("quantized", "requantized", "repacked", "copied")}
    per: dict[str, list[float]] = {}
    exact: dict[str, int] = {}
    for rec in shards:
        for label, db, _ in rec["sqnr"]:
            per.setdefault(label, [])
            if db is None:
                exact[label] = exact.get(label, 0) + 1
            else:
                per[label].append(db)
    return {
        "src": str(plan.src.path), "dst": str(plan.dst), "format": plan.fmt, "shards": len(shards),
        "resumed_shards": kept, "bytes_before": sum(plan.src.file_bytes.values()),
        "bytes_after": sum(r["size"] for r in shards), "tensors": actions,
        "sqnr_db": {k: {"mean": sum(v) / len(v) if v else None, "tensors": len(v), "exact": exact.get(k, 0)}
                    for k, v in per.items()},
    }  # fmt: skip
