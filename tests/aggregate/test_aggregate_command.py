"""``composer-automl aggregate`` end to end on hand-made run directories (real Hydra, real TensorBoard)."""

from __future__ import annotations

import json

import pytest

from cli_runs import composer, error_line, read_only
from composer_automl.aggregate.command import AggregateConfig, run
from composer_automl.aggregate.report import heatmap_size_px
from composer_automl.cli import main
from composer_automl.spec import ModelSpec

# Six-layer one-shot results at two budgets; at budget 3 the best cluster is the first four.
ROWS = [(p, 1.0, 1.0 + 0.01 * i) for i, p in enumerate(["AAMMMM", "AMAMMM", "MMMMAA", "AMMAMM", "MAMAMA"])] + [
    ("AAMMMM", 3.0, 0.300), ("AAMMMA", 3.0, 0.305), ("AMAMMM", 3.0, 0.310), ("AAMAMM", 3.0, 0.312),
    ("MMAAMM", 3.0, 0.700), ("MAMAMA", 3.0, 0.720), ("MMMMMM", 3.0, 1.200),
]


def cli(run_dir, *args):
    main(["aggregate", f"run_dir={run_dir}", *args])


def test_cli_topk_writes_report(make_run_dir, capsys):
    """top=4 at the highest budget: consensus AAMMMM, JSON/markdown/PNG written, figures printed."""
    run_dir = make_run_dir(ROWS, failed=2)
    cli(run_dir, "method=n0", "top=4")
    out = capsys.readouterr().out
    assert "consensus (n0): 2A+4M  [AAMMMM]" in out
    doc = json.loads((run_dir / "aggregate.json").read_text())
    assert doc["budget"] == 3.0 and doc["n_candidates"] == 7
    assert [m["pattern"] for m in doc["members"]] == ["AAMMMM", "AAMMMA", "AMAMMM", "AAMAMM"]
    assert doc["best"]["pattern"] == "AAMMMM"
    assert doc["layers"][1] == {"layer": 2, "chosen": "A", "shares": {"A": 0.75, "M": 0.25}, "voters": 4, "context": 0}
    md = (run_dir / "aggregate.md").read_text()
    assert "**consensus: `2A+4M`**" in md and "![top set](aggregate.png)" in md
    assert not list(run_dir.glob(".*.tmp"))


def test_heatmap_pixel_size(make_run_dir):
    """The PNG is exactly heatmap_size_px(members + consensus, layers): 4+1 rows × 6 layers here."""
    from PIL import Image

    run_dir = make_run_dir(ROWS)
    run(AggregateConfig(run_dir=str(run_dir), top=4, tensorboard=False))
    with Image.open(run_dir / "aggregate.png") as img:
        assert img.size == heatmap_size_px(5, 6) == (120 + 6 * 28 + 110, 50 + 5 * 28 + 40)
    # max_rows caps the members drawn: 2 members + consensus
    run(AggregateConfig(run_dir=str(run_dir), top=4, max_rows=2, tensorboard=False))
    with Image.open(run_dir / "aggregate.png") as img:
        assert img.size == heatmap_size_px(3, 6)


def test_tensorboard_image_and_text(make_run_dir):
    """The heatmap and summary are readable back from the TensorBoard event file."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = make_run_dir(ROWS)
    run(AggregateConfig(run_dir=str(run_dir), top=4))
    acc = EventAccumulator(str(run_dir / "tensorboard" / "aggregate"), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    assert acc.Tags()["images"] == ["aggregate/top_set"]
    image = acc.Images("aggregate/top_set")[0]
    assert (image.width, image.height) == heatmap_size_px(5, 6)
    assert "aggregate/summary/text_summary" in acc.Tags()["tensors"]


def test_cluster_selection_and_nc(make_run_dir):
    """select=cluster keeps the low-loss K-means group (4 of 7); nc voting runs on it."""
    run_dir = make_run_dir(ROWS)
    result, _ = run(AggregateConfig(run_dir=str(run_dir), select="cluster", clusters=3, method="nc", c=2,
                                    tensorboard=False))
    assert [str(m.pattern) for m in result.members] == ["AAMMMM", "AAMMMA", "AMAMMM", "AAMAMM"]
    assert str(result.vote.pattern) == "AAMMMM"
    assert result.vote.context == (0, 1, 2, 2, 2, 2)


def test_chains_into_extrapolation(make_run_dir, capsys):
    """extrapolate.target=1B writes model_1B.yaml into the run dir, loadable as a 1B-width ModelSpec."""
    run_dir = make_run_dir(ROWS)
    cli(run_dir, "top=4", "extrapolate.target=1B", "extrapolate.method=stack", "tensorboard=false")
    spec = ModelSpec.load_yaml(run_dir / "model_1B.yaml")
    assert spec.pattern.run_length() == "2A+4M+2A+4M+2A+4M+2A+4M+1A+1M" and spec.d_model == 2048
    assert "wrote " + str(run_dir / "model_1B.yaml") in capsys.readouterr().out


@pytest.mark.parametrize(
    "rows, finished, args, message",
    [
        ([], True, [], "has no trials.jsonl"),  # an empty run directory
        (ROWS, False, [], "is an unfinished search (no summary.json)"),
        (ROWS, True, ["method=n3"], "method='n3' is not allowed; choose one of ['n0', 'nc']"),
        (ROWS, True, ["select=best"], "select='best' is not allowed; choose one of ['cluster', 'knee', 'pareto', 'topk']"),
        (ROWS, True, ["top=9"], "no budget has 9 distinct patterns (needed by min_trials / top); the most is 7"),
        (ROWS + [("AMAM", 3.0, 0.2)], True, [], "the results mix pattern lengths {4: 1, 6: 12}"),
        (ROWS, True, ["extrapolate.target=350M", "extrapolate.tolerance=0.0001"], "no depth of stack(2A+4M)"),
    ],
)
def test_bad_input_one_line_and_nothing_written(make_run_dir, capsys, rows, finished, args, message):
    """Each bad input exits 2 with one error line and leaves no output in the run directory."""
    run_dir = make_run_dir(rows, finished=finished)
    before = sorted(p.name for p in run_dir.iterdir())
    with pytest.raises(SystemExit) as exc:
        cli(run_dir, *args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_missing_or_empty_run_dir(tmp_path, capsys):
    """A run_dir without trials.jsonl, or no run_dir at all, is one clear error."""
    for args, message in [([f"run_dir={tmp_path}"], "has no trials.jsonl"), ([], "run_dir is required")]:
        with pytest.raises(SystemExit):
            main(["aggregate", *args])
        assert message in capsys.readouterr().err


def test_only_failed_trials(make_run_dir, capsys):
    """A finished run whose trials all failed is one clear error."""
    run_dir = make_run_dir([], failed=3)
    with pytest.raises(SystemExit):
        cli(run_dir)
    assert "has no successful trials" in capsys.readouterr().err


def test_allow_unfinished(make_run_dir):
    """allow_unfinished=true aggregates a run without summary.json."""
    run_dir = make_run_dir(ROWS, finished=False)
    result, _ = run(AggregateConfig(run_dir=str(run_dir), top=4, allow_unfinished=True, tensorboard=False))
    assert str(result.vote.pattern) == "AAMMMM"


def test_shipped_yaml_composes_into_the_schema():
    """conf/aggregate.yaml composes with Hydra and validates into AggregateConfig with its documented defaults."""
    from hydra import compose, initialize_config_module

    from composer_automl.config import to_dataclass

    with initialize_config_module("composer_automl.conf", version_base="1.3"):
        cfg = compose("aggregate", overrides=["run_dir=somewhere"])
    config = to_dataclass(AggregateConfig, cfg, "aggregate")
    assert (config.method, config.select, config.top, config.clusters) == ("n0", "topk", 5, 5)
    assert config.extrapolate.target is None and config.extrapolate.method == "stack"


def test_report_does_not_import_the_command():
    """The dependency runs one way (command → report → result): report.py and result.py never import
    command.py (they once imported each other)."""
    import ast
    from pathlib import Path

    import composer_automl.aggregate as package

    for name in ("report.py", "result.py"):
        tree = ast.parse((Path(package.__file__).parent / name).read_text())
        imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "composer_automl.aggregate.command" not in imported, name


@pytest.mark.parametrize("line, message", [
    ("not json at all", "{log}:3: not a JSON line (Expecting value); the log is corrupt there (move that line out of "
                        "the file to use the rest)"),
    ('{"a": 1}', "{log}: record 3 is not a trial record (TrialRecord.__init__() got an unexpected keyword argument "
                 "'a'); the log is corrupt there"),
])
def test_a_corrupt_line_in_trials_jsonl_is_one_error_line(make_run_dir, capsys, line, message):
    """A garbage line, or a JSON object that is no trial record, in the middle of trials.jsonl: one line naming the
    file (and the line), nothing written."""
    run_dir = make_run_dir(ROWS)
    log = run_dir / "trials.jsonl"
    rows = log.read_text().splitlines()
    log.write_text("\n".join([*rows[:2], line, *rows[2:]]) + "\n")
    before = sorted(p.name for p in run_dir.iterdir())
    with pytest.raises(SystemExit) as exc:
        cli(run_dir)
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"error: {message.format(log=log)}"]
    assert sorted(p.name for p in run_dir.iterdir()) == before


def test_unreadable_log_and_read_only_run_are_one_error_line(make_run_dir):
    """An unreadable trials.jsonl, a read-only run directory and a read-only extrapolate.out folder: one line each
    from the real command, before anything is written."""
    run_dir = make_run_dir(ROWS)
    log = run_dir / "trials.jsonl"
    log.chmod(0)
    done = composer("aggregate", [f"run_dir={run_dir}"], as_user=True)
    assert error_line(done).startswith(f"{log}: cannot be read ([Errno 13] Permission denied")
    log.chmod(0o644)
    locked = read_only(run_dir.parent / "locked")
    done = composer("aggregate", [f"run_dir={run_dir}", "extrapolate.target=1B", f"extrapolate.out={locked / 'm.yaml'}"],
                    as_user=True)
    assert error_line(done) == f"extrapolate.out='{locked / 'm.yaml'}': cannot write in '{locked}' (permission denied)"
    before = sorted(p.name for p in run_dir.iterdir())
    read_only(run_dir)
    done = composer("aggregate", [f"run_dir={run_dir}"], as_user=True)
    assert error_line(done) == f"run_dir='{run_dir}': cannot write in '{run_dir}' (permission denied)"
    run_dir.chmod(0o755)
    assert sorted(p.name for p in run_dir.iterdir()) == before
