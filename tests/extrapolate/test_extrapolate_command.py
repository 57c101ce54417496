"""The ``composer-automl extrapolate`` CLI end to end (real Hydra app)."""

from __future__ import annotations

import pytest

from cli_runs import composer, error_line, read_only
from composer_automl.cli import main
from composer_automl.spec import ModelSpec


def run_cli(args, tmp_path):
    main(["extrapolate", *args, f"hydra.run.dir={tmp_path / 'hydra'}"])


def test_writes_spec_into_hydra_run_dir(tmp_path, capsys):
    """Without out=, the spec goes to <hydra run dir>/model_<target>.yaml and the figures are printed."""
    run_cli(["pattern=2A+4M", "target=1B", "method=stack"], tmp_path)
    spec = ModelSpec.load_yaml(tmp_path / "hydra" / "model_1B.yaml")
    assert spec.pattern.run_length() == "2A+4M+2A+4M+2A+4M+2A+4M+1A+1M"
    out = capsys.readouterr().out
    assert "params          1,212,733,440 vs baseline 1,235,814,400 (-1.87%)" in out
    assert "1.78x smaller" in out


def test_explicit_out_path(tmp_path):
    """out= sends the spec where the user asks, stretched 16-layer pattern at 3B width."""
    target = tmp_path / "specs" / "hybrid3b.yaml"
    run_cli(["pattern=2A+5M+2A+3M+1A+3M", "target=3B", "method=stretch", f"out={target}"], tmp_path)
    spec = ModelSpec.load_yaml(target)
    assert spec.d_model == 3072 and spec.n_layers == 47


@pytest.mark.parametrize(
    "args, message",
    [
        (["pattern=2A+4X"], "error: pattern='2A+4X': unknown layer kind(s) ['X']"),
        (["pattern=2A+4M", "target=7B"], "error: target='7B' is not allowed; choose one of ['1B', '350M', '3B']"),
        (["pattern=2A+4M", "method=tile"], "error: method='tile' is not allowed; choose one of ['stack', 'stretch']"),
        (["target=1B"], "error: pattern is required"),
        (["pattern=40A+40M", "target=350M"], "error: target=350M is smaller than the pattern 40A+40M"),
        (["pattern=2A+4M", "tolerance=1.5"], "error: tolerance=1.5 must be in (0, 1)"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, args, message):
    """Bad input exits 2 with one error line and writes no spec."""
    with pytest.raises(SystemExit) as exc:
        run_cli(args, tmp_path)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and len(err.splitlines()) == 1
    assert not list((tmp_path / "hydra").glob("model_*.yaml"))


def test_shipped_yaml_composes_into_the_schema():
    """conf/extrapolate.yaml composes with Hydra and validates into ExtrapolateConfig."""
    from hydra import compose, initialize_config_module

    from composer_automl.config import to_dataclass
    from composer_automl.extrapolate.command import ExtrapolateConfig

    with initialize_config_module("composer_automl.conf", version_base="1.3"):
        cfg = compose("extrapolate", overrides=["pattern=2A+4M"])
    config = to_dataclass(ExtrapolateConfig, cfg, "extrapolate")
    assert (config.target, config.method, config.tolerance, config.seq_len) == ("1B", "stack", 0.02, 2048)


@pytest.mark.parametrize("pattern, kv_text", [("MMMMMM", "no KV cache: attention-free, reduction ∞"),
                                              ("AAAAAA", "x larger")])
def test_single_kind_patterns_get_their_cost_report(tmp_path, capsys, pattern, kv_text):
    """An attention-free pattern keeps no KV cache (0 B, reduction ∞, null in the spec's info) and an
    MLP-free one a larger cache: both get a report, no ZeroDivisionError."""
    import yaml

    run_cli([f"pattern={pattern}", "target=350M"], tmp_path)
    out = capsys.readouterr().out
    assert kv_text in out
    info = yaml.safe_load((tmp_path / "hydra" / "model_350M.yaml").read_text())["info"]
    if pattern == "MMMMMM":
        assert info["kv_cache_bytes"] == 0 and info["kv_cache_reduction"] is None
    else:
        assert info["kv_cache_reduction"] < 1


def test_an_out_that_cannot_be_written_is_one_line_before_any_work(tmp_path, capsys):
    """out= under a file, out= an existing folder, out= in a read-only folder, and a read-only working directory
    (where Hydra's run folder would go): one `error:` line each, nothing written."""
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out, message in ((a_file / "x.yaml", f"out='{a_file / 'x.yaml'}': '{a_file}' is a file, not a folder"),
                         (tmp_path, f"out='{tmp_path}' is a folder, not a file")):
        with pytest.raises(SystemExit) as exc:
            run_cli(["pattern=2A+4M", f"out={out}"], tmp_path)
        assert exc.value.code == 2 and capsys.readouterr().err.strip().splitlines() == [f"error: {message}"]
    locked = read_only(tmp_path / "locked")
    done = composer("extrapolate", ["pattern=2A+4M", f"out={locked / 'x.yaml'}", "hydra.run.dir=h"], cwd=tmp_path,
                    as_user=True)
    assert error_line(done) == f"out='{locked / 'x.yaml'}': cannot write in '{locked}' (permission denied)"
    done = composer("extrapolate", ["pattern=2A+4M", "hydra.run.dir=outputs/run"], cwd=locked, as_user=True)
    assert error_line(done) == "hydra.run.dir='outputs/run': cannot write in '.' (permission denied)"
    assert list(locked.iterdir()) == [] and not (tmp_path / "h").exists()
