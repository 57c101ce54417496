"""``composer-automl evaluate`` on two exports: its wall time, its table, and held-out loss through transformers.

Runs the evaluation (held-out split, lm-eval tasks, efficiency) of ``--models A,B`` as the CLI does and
prints one ``name: value`` line per figure: the wall time, every row of the report per model, the
ratios B / A of the latency rows (measured in the same run, models alternating), and for each model
the held-out loss computed by ``transformers`` (``AutoModelForCausalLM`` on its ``format=hf`` export,
the same rolling windows) next to ours, with their absolute difference (fp32: ~1e-6).

Without ``--models`` it exports two seeded, untrained tiny models (the ``tiny`` preset's ``AMMAMM`` and
an ``AMAMAM`` baseline) and uses the default corpus (``data prepare``'s stdlib split): a smoke run of
the same path. The README's worked example passes its trained exports:

    python benchmarks/bench_evaluate.py --models exports/hybrid,exports/baseline --data DATA
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help="comma-separated export folders (default: two untrained tiny ones)")
    p.add_argument("--names", default=None, help="comma-separated column names")
    p.add_argument("--data", default=None, help="prepared dataset folder (default: the stdlib corpus)")
    p.add_argument("--tasks", default="py_cloze", help="comma-separated lm-eval tasks ('' for none)")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--max-documents", type=int, default=None, help="held-out documents scored (default: all)")
    p.add_argument("--accelerator", default="cpu", choices=["cpu", "gpu"])
    p.add_argument("--precision", default="auto")
    return p.parse_args()


def smoke_exports(root: Path) -> list[str]:
    """Two seeded untrained exports at the tiny preset's width: AMMAMM (native) and AMAMAM (hf)."""
    from safetensors.torch import save_file

    from composer_automl.export.command import main as export_main
    from composer_automl.model import HybridLM
    from composer_automl.presets import get_preset

    folders = []
    for name, pattern, fmt in (("hybrid", "AMMAMM", "native"), ("baseline", "AMAMAM", "hf")):
        spec = get_preset("tiny").replace(pattern=pattern)
        torch.manual_seed(0)
        bare = root / f"{name}-weights"
        bare.mkdir()
        spec.save_yaml(bare / "model.yaml")
        save_file(HybridLM(spec).state_dict(), str(bare / "model.safetensors"))
        export_main([f"ckpt={bare}", f"out={root / name}", f"format={fmt}"])
        folders.append(str(root / name))
    return folders


def transformers_heldout_loss(folder: str, root: Path, text, batch_size: int, runtime) -> float:
    """Held-out loss of the export's ``format=hf`` twin through ``AutoModelForCausalLM`` (same windows as ours)."""
    from transformers import AutoModelForCausalLM

    import composer_automl.modeling_hybrid  # noqa: F401  (registers the auto classes)
    from composer_automl.evaluate.scoring import text_loglikelihood
    from composer_automl.export.command import main as export_main
    from composer_automl.export.files import open_export

    exported = open_export(folder)
    hf = Path(folder)
    if exported.format != "hf":
        hf = root / f"{hf.name}-hf"
        export_main([f"ckpt={folder}", f"out={hf}", "format=hf"])
    model = AutoModelForCausalLM.from_pretrained(hf).to(runtime.device, runtime.weights).eval()
    tokenizer = exported.tokenizer()

    def logits(idx: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), runtime.context():
            return model(idx.to(runtime.device)).logits

    same = exported.tokenizer_info["identity"] == text.tokenizer_identity
    documents = text.documents if same else tokenizer.encode_batch(text.texts)
    loglik = text_loglikelihood(logits, documents, tokenizer.eod_id, exported.spec.max_seq_len, batch_size)
    return -sum(loglik) / sum(len(d) for d in documents)


def main() -> None:
    args = parse_args()
    from composer_automl.config import to_dataclass
    from composer_automl.devices import cpu_threads
    from composer_automl.evaluate.command import evaluate, plan
    from composer_automl.evaluate.config import EvaluateConfig
    from composer_automl.evaluate.report import markdown

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        models = args.models.split(",") if args.models else smoke_exports(root)
        if args.data is None:
            from composer_automl.data.config import DataConfig
            from composer_automl.data.prepare import prepare

            args.data = str(prepare(DataConfig(progress=False)).path)
        config = to_dataclass(EvaluateConfig, {
            "models": models, "names": args.names.split(",") if args.names else None,
            "data": {"path": args.data, "max_documents": args.max_documents},
            "tasks": [t for t in args.tasks.split(",") if t], "limit": args.limit,
            "accelerator": args.accelerator, "precision": args.precision, "out": str(root / "report"),
        }, "bench_evaluate")
        start = time.perf_counter()
        checked = plan(config)
        report = evaluate(checked, log=lambda line: print(f"# {line}"))
        wall = time.perf_counter() - start
        names = report.names
        e = config.efficiency
        print(f"device: {report.runtime}; latency: batch 1, prompt {e.prompt_tokens} tokens, {e.decode_tokens} decoded, "
              f"fastest of {e.reps}; FLOPs and KV cache at {e.seq_len} tokens")
        print("models: " + ", ".join(f"{m['name']}={m['pattern']} ({m['format']})" for m in report.models))
        print(f"evaluate_wall_s: {wall:.1f}")
        for row in report.rows:
            for name, value in zip(names, row.values):
                print(f"{row.section}/{row.name}/{name}: {value:.6g}")
        if len(names) == 2:
            for row in report.rows:
                if row.section == "efficiency" and row.values[0]:
                    print(f"ratio_{row.name}_{names[1]}_over_{names[0]}: {row.values[1] / row.values[0]:.3f}")
        losses = {r.name: r.values for r in report.rows if r.section == "held-out"}["loss"]
        for folder, name, ours in zip(models, names, losses):
            with cpu_threads(config.cpu_threads):
                theirs = transformers_heldout_loss(folder, root, checked.text, config.batch_size, checked.runtime)
            print(f"heldout_loss_ours/{name}: {ours:.7f}")
            print(f"heldout_loss_transformers/{name}: {theirs:.7f}")
            print(f"heldout_loss_abs_diff/{name}: {abs(theirs - ours):.2e}")
        print()
        print(markdown(report, image=None))


if __name__ == "__main__":
    main()
