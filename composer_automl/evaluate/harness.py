"""lm-evaluation-harness adapter: our models as an lm-eval model, tasks looked up and run. All lm-eval use is here.

``HarnessLM`` is registered as lm-eval model ``composer-automl``: ``lm_eval.simple_evaluate(
model="composer-automl", model_args={"pretrained": EXPORT_FOLDER})`` evaluates any export (native or
hf) once this module is imported. It is a ``TemplateLM``, so lm-eval's own rules split contexts from
continuations and put the end-of-document token before an empty context; scoring is
:mod:`composer_automl.evaluate.scoring` (batched, longest first, left-truncated to ``max_seq_len``,
lm-eval's rolling windows for ``loglikelihood_rolling``), and ``generate_until`` batches prompts of
equal length (HybridLM takes no padding) through :meth:`HybridLM.generate`'s KV cache, stopping
when every row has produced a stop sequence or the end-of-document token.

Used beyond lm-eval's documented model API (a test breaks when they change): ``TemplateLM``,
``lm_eval.models.utils.normalize_gen_kwargs`` / ``handle_stop_sequences``, ``TaskManager``
(``include_path``, ``include_defaults``, ``all_tasks``, ``load``) and the layout of
``simple_evaluate``'s result (``results``, ``n-samples``, ``higher_is_better``).
"""

from __future__ import annotations

import logging
import time
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from lm_eval import simple_evaluate
from lm_eval.api.model import TemplateLM
from lm_eval.api.registry import register_model
from lm_eval.models.utils import handle_stop_sequences, normalize_gen_kwargs
from lm_eval.tasks import TaskManager
from tqdm import tqdm

from composer_automl.config import ConfigError
from composer_automl.evaluate.models import LoadedModel, load_model, resolve_runtime
from composer_automl.evaluate.scoring import score, text_loglikelihood
from composer_automl.export.files import open_export

TASKS_DIR = Path(__file__).resolve().parent / "tasks"
"""The shipped offline tasks (``py_cloze``): task YAMLs over JSON files in the package."""
SUPPORTED_GEN_KWARGS = {"until", "max_gen_toks", "do_sample", "temperature", "top_k"}


class _QuietCustomDataset(logging.Filter):
    """Drop lm-eval's advice about ``--metadata`` that every ``custom_dataset`` task prints when built."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed" not in record.getMessage()


logging.getLogger("lm_eval.api.task").addFilter(_QuietCustomDataset())


@register_model("composer-automl")
class HarnessLM(TemplateLM):
    """An exported hybrid (native or hf folder, or an already loaded model) as an lm-eval model."""

    def __init__(self, pretrained: str | LoadedModel, batch_size: int | str = 1, max_gen_toks: int = 256,
                 accelerator: str = "cpu", precision: str = "auto", device: str | None = None):
        super().__init__()
        if isinstance(pretrained, LoadedModel):
            self.lm = pretrained
        else:  # by name through lm-eval: lm-eval's `device` (cpu, cuda, cuda:0) picks the accelerator
            if device is not None:
                accelerator = "gpu" if str(device).startswith("cuda") else "cpu"
            exported = open_export(pretrained, "pretrained")
            self.lm = load_model(Path(pretrained).name, exported, resolve_runtime(accelerator, precision))
        self.batch_size, self.max_gen_toks = int(batch_size), max_gen_toks
        self._device = self.lm.runtime.device

    @property
    def eot_token_id(self) -> int:
        return self.lm.tokenizer.eod_id

    @property
    def max_length(self) -> int:
        return self.lm.spec.max_seq_len

    @property
    def tokenizer_name(self) -> str:
        return self.lm.tokenizer_identity

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs: Any) -> list[int]:
        return [int(t) for t in self.lm.tokenizer.encode_batch([string.encode("utf-8")])[0]]

    def tok_decode(self, tokens: list[int]) -> str:
        return self.lm.tokenizer.decode(tokens)

    def _progress(self, total: int, what: str, disable: bool) -> tqdm:
        return tqdm(total=total, desc=f"{self.lm.name}: {what}", disable=disable, leave=False)

    def _loglikelihood_tokens(self, requests: list[tuple[tuple[str, str], list[int], list[int]]],
                              disable_tqdm: bool = False, **kwargs: Any) -> list[tuple[float, bool]]:
        pairs = [(context, continuation) for _, context, continuation in requests]
        with self._progress(len(pairs), "loglikelihood", disable_tqdm) as bar:
            results = score(self.lm.logits, pairs, self.max_length, self.batch_size, bar.update)
        for (strings, _, _), result in zip(requests, results):
            self.cache_hook.add_partial("loglikelihood", strings, result)
        return results

    def loglikelihood_rolling(self, requests: list, disable_tqdm: bool = False) -> list[float]:
        texts = [request.args[0] for request in requests]
        documents = [self.tok_encode(text) for text in texts]
        windows = sum(-(-len(d) // self.max_length) for d in documents)
        with self._progress(windows, "loglikelihood_rolling", disable_tqdm) as bar:
            results = text_loglikelihood(self.lm.logits, documents, self.eot_token_id, self.max_length,
                                         self.batch_size, bar.update)
        for text, result in zip(texts, results):
            self.cache_hook.add_partial("loglikelihood_rolling", (text,), result)
        return results

    def generate_until(self, requests: list, disable_tqdm: bool = False) -> list[str]:
        """Greedy (or sampled, ``do_sample``/``temperature``/``top_k``) continuations cut at the stop sequences."""
        groups: dict[tuple, list[tuple[int, list[int]]]] = defaultdict(list)
        settings = {}
        for i, request in enumerate(requests):
            context, gen_kwargs = request.args
            kwargs = normalize_gen_kwargs(gen_kwargs, self.max_gen_toks)
            unsupported = sorted(set(kwargs) - SUPPORTED_GEN_KWARGS)
            if unsupported:
                warnings.warn(f"composer-automl ignores generation settings {unsupported}", stacklevel=2)
            until = tuple(s for s in handle_stop_sequences(kwargs["until"], eos=None) if s)  # '' stops nothing
            max_new = min(kwargs["max_gen_toks"], self.max_length - 1)
            temperature = float(kwargs.get("temperature", 0.0)) if kwargs.get("do_sample") else 0.0
            tokens = self.tok_encode(context)[-(self.max_length - max_new):]  # left-truncated, room for max_new
            key = (len(tokens), max_new, until, temperature, kwargs.get("top_k"))
            groups[key].append((i, tokens))
            settings[key] = (max_new, until, temperature, kwargs.get("top_k"))
        out: list[str] = [""] * len(requests)
        with self._progress(len(requests), "generate_until", disable_tqdm) as bar:
            for key, members in groups.items():
                max_new, until, temperature, top_k = settings[key]
                for start in range(0, len(members), self.batch_size):
                    chunk = members[start : start + self.batch_size]
                    texts = self._generate([tokens for _, tokens in chunk], max_new, until, temperature, top_k)
                    for (i, _), text in zip(chunk, texts):
                        out[i] = text
                        self.cache_hook.add_partial("generate_until", requests[i].args, text)
                    bar.update(len(chunk))
        return out

    def _generate(self, prompts: list[list[int]], max_new: int, until: tuple[str, ...], temperature: float,
                  top_k: int | None) -> list[str]:
        """Continue equal-length prompts; each text ends before its first stop sequence or end-of-document."""
        n = len(prompts[0])
        eod = self.eot_token_id

        def text_of(row: list[int]) -> str:
            new = row[n:]
            return self.tok_decode(new[: new.index(eod)] if eod in new else new)

        def done(tokens: torch.Tensor) -> bool:  # (B, n + generated)
            return all(eod in row[n:] or any(s in text_of(row) for s in until) for row in tokens.tolist())

        prompt = torch.tensor(prompts, dtype=torch.long, device=self.lm.runtime.device)
        with torch.inference_mode(), self.lm.runtime.context():
            tokens = self.lm.model.generate(prompt, max_new, temperature, top_k, stop=done)
        texts = []
        for row in tokens.tolist():
            text = text_of(row)
            for stop in until:
                text = text.split(stop)[0]
            texts.append(text)
        return texts


@dataclass(frozen=True)
class TaskResult:
    """One task's (or group's) metrics for one model, as lm-eval reports them."""

    task: str
    metrics: dict[str, float]
    """``metric`` (or ``metric,filter`` for a filter other than lm-eval's ``none``) → value."""
    stderr: dict[str, float | None]
    """The same keys → lm-eval's standard error (None where it gives none)."""
    higher_is_better: dict[str, bool]
    n_samples: int | None
    seconds: float


def task_manager(tasks: list[str]) -> TaskManager:
    """A TaskManager that knows the shipped tasks, and lm-eval's own ones only when some name needs them
    (indexing lm-eval's ~15,000 task files takes tens of seconds)."""
    local = TaskManager(include_path=str(TASKS_DIR), include_defaults=False)
    if all(name in local.all_tasks or Path(name).is_file() for name in tasks):
        return local
    return TaskManager(include_path=str(TASKS_DIR))


def check_tasks(tasks: list[str]) -> TaskManager:
    """ConfigError naming ``tasks`` for an unknown name or a task whose data lm-eval cannot load; before any work."""
    missing = [name for name in tasks if name.endswith((".yaml", ".yml")) and not Path(name).is_file()]
    if missing:
        raise ConfigError(f"tasks: {missing[0]!r} names a task YAML file that does not exist")
    manager = task_manager(tasks)
    for name in tasks:
        if name not in manager.all_tasks and not Path(name).is_file():
            shipped = sorted(TaskManager(include_path=str(TASKS_DIR), include_defaults=False).all_tasks)
            raise ConfigError(f"tasks: {name!r} is neither an lm-eval task, group or tag ({len(manager.all_tasks)} "
                              f"known, e.g. hellaswag, arc_easy, piqa, winogrande, lambada_openai; the shipped offline "
                              f"tasks: {shipped}) nor a task YAML file")
    try:
        manager.load(tasks)  # builds every task: reads its data (lm-eval's stock tasks fetch theirs from the hub)
    except Exception as err:  # lm-eval and datasets raise many types; all mean "this task cannot run here"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"tasks={tasks}: lm-eval could not build them ({type(err).__name__}: {first})") from None
    return manager


def run_task(model: LoadedModel, task: str, manager: TaskManager, batch_size: int, max_gen_toks: int,
             num_fewshot: int | None, limit: int | None, seed: int) -> list[TaskResult]:
    """Evaluate ``model`` on one task (a group gives a row per subtask and one for the group)."""
    start = time.perf_counter()
    lm = HarnessLM(model, batch_size=batch_size, max_gen_toks=max_gen_toks)
    logger = logging.getLogger("lm_eval")
    level = logger.level
    logger.setLevel(logging.WARNING)  # our line per task replaces lm-eval's step-by-step INFO log
    try:
        out = simple_evaluate(model=lm, tasks=[task], task_manager=manager, num_fewshot=num_fewshot, limit=limit,
                              log_samples=False, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                              fewshot_random_seed=seed, verbosity=None)
    finally:
        logger.setLevel(level)
    seconds = time.perf_counter() - start
    return [_task_result(name, values, out, seconds) for name, values in out["results"].items()]


def _task_result(name: str, values: dict[str, Any], out: dict[str, Any], seconds: float) -> TaskResult:
    metrics, stderr = {}, {}
    for key, value in values.items():
        if "," not in key or "_stderr," in key or not isinstance(value, (int, float)):
            continue  # name/alias/sample_len entries and the stderr twins (read below)
        metric, filt = key.split(",", 1)
        label = metric if filt == "none" else key
        metrics[label] = float(value)
        err = values.get(f"{metric}_stderr,{filt}")
        stderr[label] = float(err) if isinstance(err, (int, float)) else None
    better = out.get("higher_is_better", {}).get(name, {})
    n_samples = out.get("n-samples", {}).get(name, {}).get("effective")
    return TaskResult(name, metrics, stderr, {m: bool(better.get(m.split(",")[0], True)) for m in metrics},
                      n_samples, seconds)


def format_result(result: TaskResult) -> str:
    """``acc 0.475 ± 0.080, acc_norm 0.450 ± 0.080 (40 docs, 3.1 s)``."""
    parts = [f"{m} {v:.4g}" + (f" ± {result.stderr[m]:.2g}" if result.stderr[m] is not None else "")
             for m, v in result.metrics.items()]
    docs = f"{result.n_samples} docs, " if result.n_samples is not None else ""
    return f"{', '.join(parts)} ({docs}{result.seconds:.1f} s)"
