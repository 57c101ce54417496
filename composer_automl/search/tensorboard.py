"""Search-level TensorBoard logging under ``RUN_DIR/tb/search``.

Scalars: the incumbent loss against search wall time (step = seconds) and against
cumulative budget (step = budget units), trials finished per budget, failures. The
HParams view holds one row per successful trial (run ``tb/search/<trial>``): its pattern,
budget, rung, attention fraction and layer kinds against its loss and per-task metrics.
Per-trial training curves are written by the rungs themselves into
``RUN_DIR/tb/<pattern>_b<budget>_<id>``, without HParams sessions of their own.

No run writes an HParams *experiment summary*: TensorBoard takes the experiment from
whichever run defines one, so a summary written with the first trial (or Lightning's
``hp_metric`` placeholder) would hide every metric a later trial adds. Without one,
TensorBoard builds the experiment from the trials' sessions and their scalars: every
hyperparameter and every metric any trial logged.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summaries

from composer_automl.patterns import Pattern
from composer_automl.search.results import TrialRecord

SEARCH_TB = "search"


class SearchBoard:
    """Writes search-level scalars and HParams as trials finish (master process only)."""

    def __init__(self, run_dir: str | Path):
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tb" / SEARCH_TB))
        self.trials = Counter()
        self.failures = 0
        self.spent = 0.0
        self.best: TrialRecord | None = None

    def add(self, record: TrialRecord) -> None:
        """Log one finished trial (in finishing order)."""
        self.trials[record.budget] += 1
        self.spent += record.budget
        step_t, step_b = int(round(record.elapsed_s)), int(round(self.spent))
        self.writer.add_scalar(f"trials/budget_{record.budget:g}", self.trials[record.budget], step_t)
        if record.status != "ok":
            self.failures += 1
            self.writer.add_scalar("trials/failures", self.failures, step_t)
            return
        best = self.best
        if best is None or record.budget > best.budget or (record.budget == best.budget and record.loss < best.loss):
            self.best = record
        self.writer.add_scalar("incumbent/loss_vs_wall_time_s", self.best.loss, step_t)
        self.writer.add_scalar("incumbent/loss_vs_cumulative_budget", self.best.loss, step_b)
        self.writer.add_scalar("incumbent/budget", self.best.budget, step_t)
        pattern = Pattern.parse(record.pattern)
        hparams: dict[str, str | float] = {
            "pattern": record.pattern,
            "budget": float(record.budget),
            "rung": record.rung,
            "attention_fraction": float(pattern.attention_fraction),
            "n_layers": float(len(pattern)),
        }
        hparams.update({k: (str(v) if isinstance(v, str) else float(v)) for k, v in record.config.items()})
        metrics = {"hparam/loss": float(record.loss)}
        metrics.update({f"hparam/{k}": float(v) for k, v in record.metrics.items()})
        self._session(record.trial_id.replace("@", "_b"), hparams, metrics)
        self.writer.flush()

    def _session(self, run_name: str, hparams: dict[str, str | float], metrics: dict[str, float]) -> None:
        """One HParams session (start and end info plus its metric scalars) in ``tb/search/<run_name>``;
        unlike ``SummaryWriter.add_hparams``, no experiment summary (see the module docstring)."""
        _, start, end = hparams_summaries(hparams, metrics)
        with SummaryWriter(log_dir=str(Path(self.writer.log_dir) / run_name)) as session:
            session.file_writer.add_summary(start)
            session.file_writer.add_summary(end)
            for name, value in metrics.items():
                session.add_scalar(name, value)

    def close(self) -> None:
        self.writer.close()
