"""The composer-automl console script."""

import subprocess
import sys

import pytest

from composer_automl import cli
from cli_runs import run_main


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "composer_automl", *args], capture_output=True, text=True, timeout=120
    )


def test_unknown_subcommand_exits_2_with_allowed_list(capsys):
    """An unknown subcommand prints one error line naming the allowed subcommands."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["serach"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert "unknown subcommand 'serach'" in err[0] and "'search'" in err[0] and "'train'" in err[0]


def test_no_subcommand_prints_usage_and_one_error_line(capsys):
    """No arguments at all: the usage on stdout, one `error:` line naming the subcommands, exit 2."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert "  search" in captured.out
    assert captured.err.count("\n") == 1 and captured.err.startswith("error: give a subcommand; choose one of [")
    assert "'train'" in captured.err


def test_help_lists_every_subcommand(capsys):
    """--help lists all subcommands and exits 0."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("search", "worker", "mad", "pretrain", "aggregate", "extrapolate", "train", "data"):
        assert f"  {name}" in out


def test_every_subcommand_module_defines_main():
    """Each registered subcommand resolves to a module with a main(argv)."""
    import importlib

    for name, (module, _) in cli.COMMANDS.items():
        assert callable(importlib.import_module(module).main), name


def test_console_script_runs_as_module():
    """python -m composer_automl behaves like the console script."""
    result = run_cli("bogus")
    assert result.returncode == 2
    assert "unknown subcommand 'bogus'" in result.stderr


@pytest.mark.parametrize("argv", [[name] for name in cli.COMMANDS if name != "data"] + [["data", "prepare"]])
def test_every_subcommand_composes_its_shipped_config(capsys, argv):
    """`--cfg job` composes each subcommand's primary config (with its shipped group defaults)."""
    code, out, _ = run_main(capsys, *argv, "--cfg", "job")
    assert code == 0
    assert out.strip(), argv


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["search", "bogus=1"], "unknown config key 'bogus' for composer-automl search; keys at the top level: ['fidelity', 'resume', 'search', 'search_space']"),
        (["search", "search.n_worker=2"], "unknown config key 'search.n_worker' for composer-automl search; keys under 'search': ["),
        (["mad", "fidelity=mad-nope"], "'fidelity=mad-nope' for composer-automl mad: In 'mad': Could not find 'fidelity/mad-nope' Available options in 'fidelity': default gpu gpu-narrow gpu-ref gpu-search hybridbench16 hybridbench6 mad-full"),
        (["extrapolate", "pattern=AM", "targt=1B"], "unknown config key 'targt' for composer-automl extrapolate"),
        (["search", "fidelity=gpu", "fidelity.overrides.data.source=/c.jsonl"],
         "unknown config key 'fidelity.overrides.data.source' for composer-automl search; keys under "
         "'fidelity.overrides': []; a fidelity file has no schema, so add a key with +fidelity.overrides.data.source=/c.jsonl"),
        (["train", "search_space=one-shot-6"], "unknown config key 'search_space' for composer-automl train"),
        (["search", "search.optimizer"], "cannot parse override 'search.optimizer'"),
        (["search", "search.n_workers=abc"],
         "'search.n_workers=abc' for composer-automl search: Error merging override search.n_workers=abc: "
         "Value 'abc' of type 'str' could not be converted to Integer"),
    ],
)
def test_bad_overrides_give_one_error_line_before_any_work(capsys, tmp_path, monkeypatch, argv, expected):
    """A wrong key, group option or malformed override exits 2 with one line, writing nothing."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert expected in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("argv, expected", [
    (["mad", "pattern=AXM"], "pattern='AXM': unknown layer kind(s) ['X'] in pattern; allowed: ['A', 'M']"),
    (["pretrain", "pattern=AXM"], "pattern='AXM': unknown layer kind(s) ['X'] in pattern; allowed: ['A', 'M']"),
    (["extrapolate", "pattern=AXM"], "pattern='AXM': unknown layer kind(s) ['X'] in pattern; allowed: ['A', 'M']"),
])
def test_a_run_refused_on_a_value_leaves_no_hydra_folder(capsys, tmp_path, monkeypatch, argv, expected):
    """mad, pretrain and extrapolate write into a Hydra run folder (``.hydra/``, ``<job>.log``); a run refused on a
    value Hydra accepted removes that folder again: the working directory is left as it was."""
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, *argv)
    assert code == 2 and err == f"error: {expected}\n", err
    assert list(tmp_path.iterdir()) == []


def test_cli_hides_third_party_deprecations_and_keeps_real_warnings():
    """The console script filters torch's LeafSpec deprecation (raised via Lightning) and megatron's own
    deprecations; a real warning still prints, and importing the package alone changes no filter."""
    code = (
        "import warnings, sys\n"
        "import composer_automl.cli as cli\n"
        "warnings.warn('`isinstance(treespec, LeafSpec)` is deprecated, use X', FutureWarning)\n"  # not yet filtered
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
        "warnings.warn('`isinstance(treespec, LeafSpec)` is deprecated, again', FutureWarning)\n"
        "warnings.warn_explicit('x is deprecated', DeprecationWarning, 'parallel_state.py', 1,\n"
        "                       module='megatron.core.parallel_state')\n"
        "warnings.warn_explicit('Apex is not installed. Falling back to Torch Norm', UserWarning, 'backends.py', 21,\n"
        "                       module='megatron.core.models.backends')\n"
        "warnings.warn('After 0.17 or January 2028, whichever comes first, the default behavior will switch to "
        "using an entropy initialized numpy.random.Generator.', FutureWarning)\n"  # statsmodels' KDE under BOHB
        "warnings.warn('a real problem', UserWarning)\n"
    )
    proc = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("LeafSpec") == 1 and "use X" in proc.stderr  # only the one before the CLI ran
    assert "x is deprecated" not in proc.stderr and "Apex" not in proc.stderr and "a real problem" in proc.stderr
    assert "January 2028" not in proc.stderr


def test_a_config_dir_file_that_is_not_yaml_is_one_error_line_naming_it(capsys, tmp_path, monkeypatch):
    """A group option under --config-dir with a YAML syntax error: one line naming the override and the file."""
    (tmp_path / "conf" / "fidelity").mkdir(parents=True)
    (tmp_path / "conf" / "fidelity" / "mine.yaml").write_text("kind: ladder\nrungs: [\n")
    monkeypatch.chdir(tmp_path)
    code, _, err = run_main(capsys, "search", "--config-dir", str(tmp_path / "conf"), "fidelity=mine")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("error: 'fidelity=mine' for composer-automl search: a config file it selects is not valid "
                          "YAML: while parsing a flow node")
    assert f'"{tmp_path}/conf/fidelity/mine.yaml", line 3' in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf"]
