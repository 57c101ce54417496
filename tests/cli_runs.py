"""Running ``composer-automl`` as a user would (in a subprocess, or in-process for errors found before any work),
and reading its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DROP_ROOTS_POWERS = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all"]
"""A command prefix that runs without root's permission override, so a read-only folder is read-only to it."""


def composer(command: str, args: list[str], *, as_user: bool = False, cwd: Path | None = None,
             timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m composer_automl COMMAND ARGS`` (``as_user``: without root's powers when root)."""
    prefix = DROP_ROOTS_POWERS if as_user and os.geteuid() == 0 else []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([*prefix, sys.executable, "-m", "composer_automl", command, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def error_line(done: subprocess.CompletedProcess) -> str:
    """The one ``error:`` line of a refused command (exit 2, no traceback), without its ``error: `` prefix."""
    output = done.stdout + done.stderr
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert done.returncode == 2 and len(errors) == 1 and "Traceback" not in output, output[-3000:]
    return errors[0].removeprefix("error: ")


def read_only(folder: Path) -> Path:
    """``folder`` (created) made read-only; the test runs the command ``as_user`` to feel it."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o555)
    return folder


MALFORMED_SPEC_FILES = {
    "a YAML list": ("- a\n- b\n", "{f}: expected a model spec mapping, got a YAML list"),
    "model: 5": ("model: 5\n", "a model spec is a mapping of ['pattern', 'd_model', 'n_heads', 'n_kv_heads', "
                 "'ffn_hidden', 'vocab_size', 'max_seq_len', 'tie_embeddings', 'rope_theta', 'norm_eps'], got int 5"),
    "a syntax error": ("model: {pattern: [\n", "{f}: not valid YAML (line 2, column 1): expected the node content, "
                       "but found '<stream end>'"),
}
"""Spec files ``train model=`` and ``generate spec=`` must refuse: name → (file text, the error's problem part)."""


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    """The console script's ``main(argv)`` in this process → (exit code, stdout, stderr)."""
    from composer_automl import cli

    with pytest.raises(SystemExit) as exit_info:
        cli.main(list(argv))
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err
