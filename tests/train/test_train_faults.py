"""``train`` and ``export`` against damaged checkpoints, unusable output folders and malformed spec files: one
``error:`` line before any work, nothing written; ``resume=latest`` says where the run starts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from cli_runs import MALFORMED_SPEC_FILES, composer, error_line, read_only
from composer_automl.export.command import main as export_main
from composer_automl.train import command as train_command
from composer_automl.train.command import main as train_main
from indexed_data import make_dataset

SMALL = ["model=tiny", "trainer.accelerator=cpu", "trainer.seq_len=32", "trainer.micro_batch_size=4",
         "trainer.val_every=0", "trainer.max_steps=4"]
STEP2 = Path("checkpoints") / "step_000002.ckpt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real ``train`` run of 2 steps with a checkpoint after each: (dataset, run folder)."""
    root = tmp_path_factory.mktemp("trained")
    data = make_dataset(root / "data", n_docs=8)
    done = composer("train", [f"data={data}", f"out_dir={root / 'run'}", *SMALL, "trainer.max_steps=2",
                              "trainer.ckpt_every=1"], timeout=110)
    assert done.returncode == 0, done.stderr[-3000:]
    return data, root / "run"


def refused(main, args: list[str], capsys) -> str:
    """Run a command's ``main`` in this process; it must exit 2 with one ``error:`` line, returned."""
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("error:") == 1, err
    return err.strip().splitlines()[-1].removeprefix("error: ")


def _truncate(folder: Path) -> None:
    with (folder / "__0_0.distcp").open("r+b") as fh:
        fh.truncate(1000)


def _drop_tp(folder: Path) -> None:
    meta = json.loads((folder / "meta.json").read_text())
    del meta["tp"]
    (folder / "meta.json").write_text(json.dumps(meta))


DAMAGE = {
    "truncated shard": (_truncate, "__0_0.distcp is truncated (1000 of 1796232 bytes)"),
    "no .metadata": (lambda f: (f / ".metadata").unlink(), "its metadata (metadata.json, .metadata) cannot be read "
                     "(FileNotFoundError: [Errno 2] No such file or directory: '{ckpt}/.metadata')"),
    "empty common.pt": (lambda f: (f / "common.pt").write_bytes(b""), "common.pt cannot be read (EOFError: Ran out of "
                        "input)"),
    "meta.json not JSON": (lambda f: (f / "meta.json").write_text("{not json"), "meta.json cannot be read "
                           "(JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1))"),
    "meta.json without tp": (_drop_tp, "meta.json lacks the integer field(s) ['tp']"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_checkpoint_is_one_error_for_resume_and_export(trained, tmp_path, capsys, damage):
    """The newest checkpoint damaged as a crash or a bad disk leaves it: ``train resume=latest`` and ``export`` each
    refuse it in one line naming the folder and the damage, before any work: no new TensorBoard event file, no
    export folder."""
    data, run = trained
    out = shutil.copytree(run, tmp_path / "run")
    ckpt = out / STEP2
    corrupt, problem = DAMAGE[damage]
    corrupt(ckpt)
    events = sorted((out / "tensorboard").iterdir())
    tail = f" is a damaged checkpoint: {problem.format(ckpt=ckpt)}; use another checkpoint " \
           "(checkpoints/step_NNNNNN.ckpt) or move this one out of the way"
    assert refused(train_main, [f"data={data}", f"out_dir={out}", "resume=latest", *SMALL], capsys) == \
        f"resume={str(ckpt)!r}{tail}"
    assert sorted((out / "tensorboard").iterdir()) == events
    assert refused(export_main, [f"ckpt={ckpt}", f"out={tmp_path / 'export'}"], capsys) == f"ckpt={str(ckpt)!r}{tail}"
    assert not (tmp_path / "export").exists()


def test_resume_latest_says_where_the_run_starts(trained, tmp_path, capsys, monkeypatch):
    """``resume=latest`` names the checkpoint it continues, or says there is none and that it starts at step 0
    (it used to start afresh silently)."""
    data, run = trained
    plans = []
    monkeypatch.setattr(train_command, "train", plans.append)
    train_main([f"data={data}", f"out_dir={tmp_path / 'new'}", "resume=latest", *SMALL])
    train_main([f"data={data}", f"out_dir={run}", "resume=latest", *SMALL])
    assert [p.resume for p in plans] == [None, run / STEP2]
    assert capsys.readouterr().out.splitlines() == [
        f"resume=latest: no complete checkpoint in {tmp_path / 'new' / 'checkpoints'}; starting a new run at step 0",
        f"resuming from {run / STEP2} (step 2)",
    ]


def test_output_folders_that_cannot_be_written_are_refused_before_any_work(trained, tmp_path, capsys):
    """``train out_dir=`` a file or a read-only folder, ``export out=`` under a file or in a read-only folder: one
    line each, before a checkpoint is read."""
    data, run = trained
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    locked = read_only(tmp_path / "locked")
    assert refused(train_main, [f"data={data}", f"out_dir={a_file}", *SMALL], capsys) == \
        f"out_dir={str(a_file)!r} is a file, not a folder"
    assert refused(export_main, [f"ckpt={run / STEP2}", f"out={a_file / 'sub'}"], capsys) == \
        f"out={str(a_file / 'sub')!r}: {str(a_file)!r} is a file, not a folder"
    done = composer("train", [f"data={data}", f"out_dir={locked / 'run'}", *SMALL], as_user=True)
    assert error_line(done) == f"out_dir={str(locked / 'run')!r}: cannot write in {str(locked)!r} (permission denied)"
    done = composer("export", [f"ckpt={run / STEP2}", f"out={locked / 'model'}"], as_user=True)
    assert error_line(done) == f"out={str(locked / 'model')!r}: cannot write in {str(locked)!r} (permission denied)"
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("case", sorted(MALFORMED_SPEC_FILES))
def test_a_malformed_spec_file_is_one_error_naming_model(tmp_path, capsys, case):
    text, problem = MALFORMED_SPEC_FILES[case]
    spec = tmp_path / "spec.yaml"
    spec.write_text(text)
    data = make_dataset(tmp_path / "data", n_docs=4)
    assert refused(train_main, [f"model={spec}", f"data={data}", f"out_dir={tmp_path / 'out'}"], capsys) == \
        f"model={str(spec)!r}: {problem.format(f=spec)}"
    assert not (tmp_path / "out").exists()
