"""``composer-automl evaluate models=[A,B] [data.path=DATA] [tasks=[…]]``: did the search pay off?

Checks everything first (the exports and their tokenizers, the device, the dataset against the
models' tokenizers, the task names and their data, a free ``out``), then per model: held-out loss,
each lm-eval task, and the cost/latency figures, one console line each; finally the side-by-side
report (:mod:`composer_automl.evaluate.report`) written under a temporary name and renamed into ``out``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from omegaconf import DictConfig

from composer_automl import devices
from composer_automl.config import ConfigError, to_dataclass
from composer_automl.evaluate import efficiency, heldout
from composer_automl.evaluate.config import EvaluateConfig
from composer_automl.evaluate.models import LoadedModel, Runtime, load_model, open_models, resolve_runtime
from composer_automl.evaluate.report import Report, Row, markdown, write
from composer_automl.files import atomic_dir, check_writable
from composer_automl.export.files import ExportedModel

HELDOUT_METRICS = {"loss": False, "perplexity": False, "bits_per_byte": False, "tokens": None, "bytes": None}
"""Held-out row → higher is better (None: a count)."""
EFFICIENCY_METRICS = ("params", "layers", "attention_layers", "flops_per_token", "kv_cache_bytes",
                      "prefill_s", "decode_ms_per_token")
LOWER_IS_BETTER = {"flops_per_token", "kv_cache_bytes", "prefill_s", "decode_ms_per_token"}


@dataclass
class Plan:
    """A checked run: what will be read and where it runs."""

    config: EvaluateConfig
    exports: list[ExportedModel]
    runtime: Runtime
    out: Path
    text: Optional[heldout.HeldoutText]
    task_manager: Any
    """lm-eval's TaskManager (None without tasks)."""


def require_lm_eval(tasks: list[str]) -> None:
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        raise ConfigError(f"tasks={tasks} needs lm-evaluation-harness: pip install 'composer-automl[eval]' "
                          "(or tasks=[] for held-out loss and efficiency only)") from None


def plan(config: EvaluateConfig) -> Plan:
    """Validate the whole run before any work; every bad input is one ConfigError."""
    out = Path(config.out) if config.out else Path("runs") / f"evaluate-{time.strftime('%Y%m%d-%H%M%S')}"
    if out.exists():
        raise ConfigError(f"out={str(out)!r} already exists; choose a new folder")
    check_writable(out, "out")
    if config.tasks:
        require_lm_eval(config.tasks)
    exports = open_models(config.models)
    runtime = resolve_runtime(config.accelerator, config.precision)
    text = None
    if config.data.path is not None:
        text = heldout.read_heldout(config.data)
        keys = [(f"models[{i}]={config.models[i]!r}", e.tokenizer_info["identity"], e.spec.vocab_size)
                for i, e in enumerate(exports)]
        heldout.check_models(keys, text, config.data.compare)
    if config.efficiency.latency:
        need = config.efficiency.prompt_tokens + config.efficiency.decode_tokens
        for i, e in enumerate(exports):
            if need > e.spec.max_seq_len:
                raise ConfigError(f"efficiency.prompt_tokens + efficiency.decode_tokens = {need} exceeds models[{i}]'s "
                                  f"max_seq_len={e.spec.max_seq_len}")
    manager = None
    if config.tasks:
        from composer_automl.evaluate.harness import check_tasks

        manager = check_tasks(config.tasks)
    return Plan(config, exports, runtime, out, text, manager)


def evaluate(p: Plan, log: Callable[[str], None] = print) -> Report:
    """Run every part for every model and write the report into ``p.out``; return it."""
    with devices.cpu_threads(p.config.cpu_threads):
        report = _measure(p, log)
    with atomic_dir(p.out) as folder:
        write(report, folder)
    return report


def _measure(p: Plan, log: Callable[[str], None]) -> Report:
    start = time.perf_counter()
    c = p.config
    torch.manual_seed(c.seed)
    models = []
    for name, exported in zip(c.column_names, p.exports):
        model = load_model(name, exported, p.runtime)
        log(f"[{name}] {exported.format} export {exported.folder}: {exported.spec.pattern} "
            f"({exported.spec.num_params():,} params, {model.tokenizer.name} tokenizer) on "
            f"{efficiency.describe_runtime(p.runtime)}")
        models.append(model)
    rows: list[Row] = []
    if p.text is not None:
        rows += _heldout_rows(models, p.text, c, log)
    if c.tasks:
        rows += _task_rows(models, p, log)
    rows += _efficiency_rows(models, c, log)
    return Report(models=[_describe(m) for m in models], runtime=efficiency.describe_runtime(p.runtime),
                  settings=asdict(c), rows=rows, wall_s=time.perf_counter() - start)


def _heldout_rows(models: list[LoadedModel], text: heldout.HeldoutText, c: EvaluateConfig,
                  log: Callable[[str], None]) -> list[Row]:
    results = []
    for m in models:
        t = time.perf_counter()
        r = heldout.heldout_metrics(m, text, c.batch_size)
        results.append(r)
        log(f"[{m.name}] held-out {text.split} of {text.path.name}: loss {r['loss']:.4f}, perplexity "
            f"{r['perplexity']:.3f}, bits/byte {r['bits_per_byte']:.4f} ({r['documents']} docs, {r['tokens']:,} "
            f"tokens, {time.perf_counter() - t:.1f} s)")
    same_tokens = len({m.tokenizer_identity for m in models} | {text.tokenizer_identity}) == 1
    return [Row("held-out", name, [r[name] for r in results], higher_is_better=better,
                comparable=same_tokens or name in ("bits_per_byte", "bytes"))
            for name, better in HELDOUT_METRICS.items()]


def _task_rows(models: list[LoadedModel], p: Plan, log: Callable[[str], None]) -> list[Row]:
    from composer_automl.evaluate.harness import format_result, run_task

    c = p.config
    results: dict[tuple[str, str], list] = {}
    for m in models:
        for task in c.tasks:
            for r in run_task(m, task, p.task_manager, c.batch_size, c.max_gen_toks, c.num_fewshot, c.limit, c.seed):
                log(f"[{m.name}] {r.task}: {format_result(r)}")
                for metric in r.metrics:
                    results.setdefault((r.task, metric), [None] * len(models))
                    results[(r.task, metric)][models.index(m)] = r
    rows = []
    for (task, metric), per_model in results.items():
        rows.append(Row("tasks", f"{task}/{metric}", [r.metrics[metric] if r else None for r in per_model],
                        [r.stderr[metric] if r else None for r in per_model],
                        higher_is_better=next(r.higher_is_better[metric] for r in per_model if r)))
    return rows


def _efficiency_rows(models: list[LoadedModel], c: EvaluateConfig, log: Callable[[str], None]) -> list[Row]:
    values = {m.name: efficiency.static_costs(m, c.efficiency) for m in models}
    if c.efficiency.latency:
        for name, latency in efficiency.measure_latency(models, c.efficiency, c.seed).items():
            values[name].update(latency)
    for m in models:
        v = values[m.name]
        latency = (f", prefill {v['prefill_s'] * 1e3:.1f} ms ({c.efficiency.prompt_tokens} tokens), decode "
                   f"{v['decode_ms_per_token']:.2f} ms/token" if "prefill_s" in v else "")
        log(f"[{m.name}] {v['params']:,} params, {v['flops_per_token']:.3g} FLOPs/token and KV cache "
            f"{v['kv_cache_bytes'] / 2**20:.2f} MiB at {c.efficiency.seq_len} tokens{latency}")
    return [Row("efficiency", name, [values[m.name].get(name) for m in models],
                higher_is_better=False if name in LOWER_IS_BETTER else None)
            for name in EFFICIENCY_METRICS if name in values[models[0].name]]


def _describe(m: LoadedModel) -> dict[str, Any]:
    return {"name": m.name, "folder": str(m.export.folder), "format": m.export.format,
            "pattern": m.spec.pattern.run_length(), "tokenizer": m.tokenizer_identity,
            "exported_from": m.export.info.get("exported_from"), "step": m.export.info.get("step")}


def _task(cfg: DictConfig) -> None:
    config = to_dataclass(EvaluateConfig, cfg, "evaluate")
    p = plan(config)
    report = evaluate(p)
    sys.stdout.write("\n" + markdown(report, image=None))
    print(f"\nreport: {p.out}/report.md (report.json, report.png; tensorboard --logdir {p.out}/tb)")


def main(argv: list[str]) -> None:
    from composer_automl.cli import run_hydra_app

    run_hydra_app("evaluate", _task, argv)
