"""Every command the README shows, run through the real CLI, so the manual cannot drift from the code.

Each ``composer-automl`` line of the README's ``bash`` blocks (and the overrides handed to the launch
scripts) is composed by the console script with ``--cfg job``: our pre-check and Hydra accept exactly
what the README writes, with placeholders (``RUN``, ``DATA``, ``…``, ``a|b`` alternatives, ``[optional]``
parts) filled in. The commands that train or search are run end to end in their own tests on the
simulated rung or tiny presets (tests/search/test_search_cli.py: ``--config-dir``, ``-m``, the
incremental ``*_from`` searches; tests/extrapolate: every extrapolate form).
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import yaml

from composer_automl import cli
from composer_automl.adapters.hydra import sweep_jobs

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """The README's command lines (continuations joined), as written."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    lines: list[str] = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("   #")[0].split("  #")[0].strip()
            if line:
                lines.append(line)
    return lines


def cli_argv(line: str, conf: Path, run: Path) -> list[str] | None:
    """The console-script arguments of one README line, placeholders filled; None for non-CLI lines."""
    if line.startswith(("NNODES=", "sbatch")):  # launch scripts hand their overrides to `train`
        line = "composer-automl train " + line.split(".sh ", 1)[-1].split(".sbatch ", 1)[-1]
    if not line.startswith("composer-automl "):
        return None
    line = re.sub(r"(?<!=)\[([^\]]*)\]", r"\1", line)  # optional parts: give them (a list value key=[a,b] stays)
    line = line.replace("runs/search-…", str(run)).replace("runs/calibrate-…", str(run)).replace("…", "x")
    args = []
    for arg in shlex.split(line)[1:]:
        if "=" in arg and "|" in arg.split("=", 1)[1] and not arg.startswith("data.source"):
            arg = arg.split("|")[0]  # alternatives: the first one
        arg = {"RUN": str(run), "run_dir=RUN": f"run_dir={run}", "./conf": str(conf)}.get(arg, arg)
        args.append(re.sub(r"=(RUN|DATA)$", f"={run}", arg))
    if "my-ladder" in line and "--config-dir" not in args:
        args[1:1] = ["--config-dir", str(conf)]
    return args


@pytest.fixture(scope="module")
def user_conf(tmp_path_factory) -> Path:
    conf = tmp_path_factory.mktemp("user") / "conf"
    (conf / "fidelity").mkdir(parents=True)
    (conf / "search_space").mkdir()
    (conf / "fidelity" / "my-ladder.yaml").write_text(yaml.safe_dump(
        {"kind": "ladder", "eta": 3, "rungs": [{"budget": 1, "rung": "simulated"}]}))
    (conf / "search_space" / "my-space.yaml").write_text(yaml.safe_dump({"strategy": "one-shot", "n_layers": 4}))
    return conf


def test_readme_shows_config_dir_and_multirun():
    """The README documents ``--config-dir`` and ``-m`` with one example each (for search and mad)."""
    lines = readme_commands()
    assert any("--config-dir" in c for c in lines)
    assert any(c.startswith("composer-automl search -m ") for c in lines)
    assert any(c.startswith("composer-automl mad -m ") for c in lines)


@pytest.mark.parametrize("line", [c for c in readme_commands() if c.startswith(("composer-automl", "NNODES", "sbatch"))])
def test_every_readme_command_composes(capsys, tmp_path, user_conf, line):
    """Each README command passes the pre-check and composes (``--cfg job``) through the real console script."""
    argv = cli_argv(line, user_conf, tmp_path / "run")
    jobs = [argv]
    if "-m" in argv:  # Hydra shows no config for a sweep (--cfg and -m exclude each other): compose each job
        rest = [a for a in argv[1:] if a != "-m"]
        jobs = [[argv[0], *job] for job in sweep_jobs(rest)]
        assert len(jobs) > 1
    for job in jobs:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*job, "--cfg", "job"])
            raise SystemExit(0)
        captured = capsys.readouterr()
        assert exit_info.value.code == 0, f"{line}\n{job}\n{captured.err}"
        assert captured.out.strip()
