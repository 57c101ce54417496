"""The search's HParams rows, read back through TensorBoard's own hparams plugin (its data provider)."""

from __future__ import annotations

from pathlib import Path

import pytest

from composer_automl.search.results import TrialRecord
from composer_automl.search.tensorboard import SearchBoard


def _record(i: int, pattern: str, budget: float, rung: str, loss: float | None, metrics=None) -> TrialRecord:
    return TrialRecord(trial_id=f"0-0-{i}@{budget:g}", pattern=pattern, budget=budget, rung=rung,
                       status="ok" if loss is not None else "failed", loss=loss,
                       config={f"layer_{j:02d}": k for j, k in enumerate(pattern)}, metrics=metrics or {},
                       elapsed_s=float(i), error=None if loss is not None else "boom")


def _hparams_view(logdir: Path):
    """What the HParams dashboard shows: the experiment and its session groups, as TensorBoard computes them."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    tb = base_plugin.TBContext(logdir=str(logdir), multiplexer=mux,
                               data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir)))
    backend = backend_context.Context(tb)
    ctx = context.RequestContext()
    experiment = get_experiment.Handler(ctx, backend, "", api_pb2.GetExperimentRequest()).run()
    statuses = [api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING]
    request = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=100, allowed_statuses=statuses)  # as the UI
    groups = list_session_groups.Handler(ctx, backend, "", request).run().session_groups
    return experiment, groups


def test_hparams_dashboard_has_one_row_per_trial_with_every_metric(tmp_path):
    """Trials on two rungs with different per-task metrics (a later trial adds metrics): the dashboard lists
    exactly one session per successful trial, with pattern, budget and rung, and the loss and every per-task
    metric as columns. Lightning's per-run ``hp_metric`` sessions are gone, so nothing competes for the
    experiment summary (the per-trial training logs beside tb/search have none)."""
    from lightning.pytorch.loggers import TensorBoardLogger

    board = SearchBoard(tmp_path)
    board.add(_record(0, "AMMAMM", 1.0, "mad-quick", 0.6, {"mad/recall": 0.4}))
    board.add(_record(1, "AAMMMM", 1.0, "mad-quick", None))
    board.add(_record(2, "AAMMMM", 3.0, "pretrain-tiny", 2.5, {"tokens_per_s": 900.0}))
    board.close()
    # what the pretraining rung writes for each trial (see composer_automl/pretrain/run.py)
    trial_log = TensorBoardLogger(save_dir=str(tmp_path / "tb" / "AAMMMM_b3_0-0-2"), name="tensorboard", version="",
                                  default_hp_metric=False)
    trial_log.log_hyperparams({"lr": 1e-3})
    trial_log.log_metrics({"val/loss": 2.5}, step=1)
    trial_log.finalize("success")

    experiment, groups = _hparams_view(tmp_path / "tb")
    hparams = {h.name for h in experiment.hparam_infos}
    metrics = {m.name.tag for m in experiment.metric_infos}
    assert {"pattern", "budget", "rung"} <= hparams and "lr" not in hparams
    assert metrics == {"hparam/loss", "hparam/mad/recall", "hparam/tokens_per_s"}
    assert len(groups) == 2  # the failed trial has no row; no hp_metric placeholder rows
    rows = {(g.hparams["pattern"].string_value, g.hparams["budget"].number_value, g.hparams["rung"].string_value):
            {v.name.tag: v.value for v in g.metric_values} for g in groups}
    assert rows[("AMMAMM", 1.0, "mad-quick")]["hparam/loss"] == pytest.approx(0.6)
    assert rows[("AMMAMM", 1.0, "mad-quick")]["hparam/mad/recall"] == pytest.approx(0.4)
    assert rows[("AAMMMM", 3.0, "pretrain-tiny")]["hparam/tokens_per_s"] == pytest.approx(900.0)
