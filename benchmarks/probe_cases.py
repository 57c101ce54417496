"""The catalogue of ``probe_bad_inputs.py``: bad inputs and faults for every command, and the fixtures they use.

A case is a command line (with ``{w.…}`` fixtures and ``{d}``, the case's own empty folder, filled in), what
should happen (``error``: one ``error:`` line, exit 2, nothing written in ``{d}``; ``ok``: exit 0 and the case's
check passes), an optional set-up (files to corrupt, copies to make) and check. A few cases drive processes
themselves (``kill -9`` mid-run, two resumes at once). Fixtures are real runs of the CLI, built once, when a
case first needs them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from probe_bad_inputs import Run, classify, finish, run, start

SMALL_TRAIN = ["model=tiny", "trainer.accelerator=cpu", "trainer.seq_len=32", "trainer.micro_batch_size=4",
               "trainer.log_every=1", "trainer.val_every=0", "optim.warmup_steps=1"]
SLOW_LADDER = ["fidelity=simulated-ladder", *(f"+fidelity.rungs.{i}.overrides.sleep_s=0.2" for i in range(3))]
"""The simulated ladder at 0.2 s a trial: a search that runs long enough to be killed."""
STEP = "checkpoints/step_{:06d}.ckpt"


def fixture(make: Callable[["World"], Path]) -> property:
    """A World attribute made once, on first use, even when cases running in parallel ask for it together
    (not functools.cached_property: before Python 3.12 its class-wide lock deadlocks against ours)."""
    def get(world: "World") -> Path:
        with world.lock:  # re-entrant: a fixture may use another (export → trained → data)
            if make.__name__ not in world.made:
                world.made[make.__name__] = make(world)
            return world.made[make.__name__]
    return property(get, doc=make.__doc__)


class World:
    """The probe's scratch folder and its fixtures (each a real CLI run, made on first use)."""

    def __init__(self, root: Path):
        self.root = root
        self.lock = threading.RLock()
        self.made: dict[str, Path] = {}

    def case_dir(self, name: str) -> Path:
        folder = self.root / "cases" / name
        folder.mkdir(parents=True)
        return folder

    def close(self, keep: bool = False) -> None:
        for path in self.root.rglob("*"):  # read-only folders made by cases
            if path.is_dir() and not path.is_symlink():
                path.chmod(path.stat().st_mode | stat.S_IWUSR | stat.S_IRUSR | stat.S_IXUSR)
        if not keep:
            shutil.rmtree(self.root, ignore_errors=True)

    def cli(self, argv: list[str], timeout: float = 600) -> str:
        """A fixture's command; it must succeed."""
        done = run(argv, self.root, timeout=timeout)
        if done.returncode != 0:
            raise RuntimeError(f"fixture `{' '.join(argv[:2])}` failed: {done.output[-1500:]}")
        return done.output

    @fixture
    def file(self) -> Path:
        """A plain file, for places where a folder belongs."""
        path = self.root / "a_file"
        path.write_text("not a folder\n")
        return path

    @fixture
    def texts(self) -> Path:
        """A folder of 40 small text documents."""
        folder = self.root / "texts"
        folder.mkdir()
        for i in range(40):
            body = "".join(f"def f{i}_{j}(x):\n    return x * {j} + {i}\n" for j in range(12))
            (folder / f"doc{i:02d}.txt").write_text(body)
        return folder

    @fixture
    def data(self) -> Path:
        """A dataset prepared by ``data prepare`` (byte tokens, vocab 257)."""
        out = self.cli(["data", "prepare", f"data.source={self.texts}", f"data.cache_dir={self.root / 'cache'}",
                        "data.progress=false", "data.valid_fraction=0.3"])
        return Path(out.split("dataset: ", 1)[1].split(" (", 1)[0])

    @fixture
    def trained(self) -> Path:
        """A ``train`` run of 2 steps with a checkpoint after each."""
        self.cli(["train", f"data={self.data}", f"out_dir={self.root / 'trained'}", *SMALL_TRAIN,
                  "trainer.max_steps=2", "trainer.ckpt_every=1"])
        return self.root / "trained"

    @fixture
    def export(self) -> Path:
        """A native export of the trained run's last checkpoint."""
        self.cli(["export", f"ckpt={self.trained / STEP.format(2)}", f"out={self.root / 'export'}"])
        return self.root / "export"

    @fixture
    def search(self) -> Path:
        """A finished search on the tabulated HybridBench-6 rungs."""
        self.cli(["search", "fidelity=hybridbench6", "search.n_iterations=2", f"search.run_dir={self.root / 'search'}"])
        return self.root / "search"

    @fixture
    def calibration(self) -> Path:
        """A finished calibration of three patterns on HybridBench-6."""
        self.cli(["calibrate", "fidelity=hybridbench6", "calibrate.patterns=sample:3", "calibrate.seeds=1",
                  "calibrate.bootstrap=10", f"calibrate.run_dir={self.root / 'calibration'}"])
        return self.root / "calibration"

    @fixture
    def tokenizer(self) -> Path:
        """A byte-level BPE ``tokenizer.json`` of 300 ids, trained here on the texts (no download)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"], show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator([p.read_text() for p in sorted(self.texts.iterdir())], trainer)
        tok.save(str(self.root / "tokenizer.json"))
        return self.root / "tokenizer.json"


def files_under(folder: Path) -> set[Path]:
    return {p.relative_to(folder) for p in folder.rglob("*")}


@dataclass
class Case:
    """One probe: a command line (or a ``drive`` function for cases that manage processes) and what should happen."""

    name: str
    argv: list[str] = field(default_factory=list)
    expect: str = "error"
    setup: Callable[[World, Path], None] | None = None
    check: Callable[[World, Path, Run], str | None] | None = None
    as_user: bool = False
    """Run without root's powers (read-only folders must be read-only to it)."""
    timeout: float = 180
    drive: Callable[[World, Path], tuple[Run, str | None]] | None = None

    def probe(self, world: World) -> tuple[str, str]:
        """Run the case in its own folder; (category, reason) as :func:`probe_bad_inputs.classify` gives them."""
        folder = world.case_dir(self.name)
        try:
            if self.drive is not None:
                result, problem = self.drive(world, folder)
            else:
                if self.setup is not None:
                    self.setup(world, folder)
                before = files_under(folder)
                argv = [arg.format(w=world, d=folder) for arg in self.argv]
                result = run(argv, folder, self.as_user, self.timeout)
                problem = self.check(world, folder, result) if self.check else None
                left = sorted(files_under(folder) - before)
                if self.expect == "error" and left and not problem:
                    problem = f"left {left[0]} behind"
        except Exception as err:  # a fixture or set-up that failed is the probe's problem, reported as such
            return "other", f"probe set-up failed: {type(err).__name__}: {err}"
        return classify(self.expect, result, problem)


# --- set-up helpers -------------------------------------------------------------------------------------


def write(name: str, text: str | bytes) -> Callable[[World, Path], None]:
    """Set-up: a file ``name`` in the case folder."""
    def setup(w: World, d: Path) -> None:
        (d / name).parent.mkdir(parents=True, exist_ok=True)
        (d / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    return setup


def read_only(name: str = "ro") -> Callable[[World, Path], None]:
    """Set-up: a read-only folder ``name`` in the case folder (the case runs ``as_user``)."""
    def setup(w: World, d: Path) -> None:
        (d / name).mkdir(parents=True, exist_ok=True)
        (d / name).chmod(0o555)
    return setup


def copy(fixture: str, name: str, then: Callable[[Path], None] | None = None) -> Callable[[World, Path], None]:
    """Set-up: a copy of a fixture as ``name``, then ``then(copy)`` (corrupt it)."""
    def setup(w: World, d: Path) -> None:
        target = d / name
        shutil.copytree(getattr(w, fixture), target)
        if then is not None:
            then(target)
    return setup


def both(*setups: Callable[[World, Path], None]) -> Callable[[World, Path], None]:
    def setup(w: World, d: Path) -> None:
        for s in setups:
            s(w, d)
    return setup


def corpus(*, broken_link: bool = False, unreadable: bool = False) -> Callable[[World, Path], None]:
    """Set-up: ``d/corpus`` with two text files, plus a broken symbolic link or an unreadable file."""
    def setup(w: World, d: Path) -> None:
        (d / "corpus").mkdir()
        (d / "corpus" / "a.txt").write_text("first document\n" * 20)
        (d / "corpus" / "b.txt").write_text("second document\n" * 20)
        if broken_link:
            (d / "corpus" / "c.txt").symlink_to(d / "gone.txt")
        if unreadable:
            (d / "corpus" / "b.txt").chmod(0)
    return setup


def jsonl(lines: list[str], name: str = "docs.jsonl") -> Callable[[World, Path], None]:
    return write(name, "".join(line + "\n" for line in lines))


DOCS = [json.dumps({"text": f"document number {i} " * 10}) for i in range(12)]


def truncate(name: str, size: int) -> Callable[[Path], None]:
    def then(folder: Path) -> None:
        with (folder / name).open("r+b") as fh:
            fh.truncate(size)
    return then


def edit_json(name: str, change: Callable[[dict], None]) -> Callable[[Path], None]:
    def then(folder: Path) -> None:
        data = json.loads((folder / name).read_text())
        change(data)
        (folder / name).write_text(json.dumps(data))
    return then


def in_step(step: int, then: Callable[[Path], None]) -> Callable[[Path], None]:
    """Apply ``then`` to checkpoint ``step`` of a copied train run."""
    return lambda run_dir: then(run_dir / STEP.format(step))


DAMAGE = {
    "truncated-shard": truncate("__0_0.distcp", 1000),
    "no-metadata": lambda f: (f / ".metadata").unlink(),
    "empty-common-pt": truncate("common.pt", 0),
    "bad-meta-json": lambda f: (f / "meta.json").write_text("{not json"),
    "meta-json-without-tp": edit_json("meta.json", lambda m: m.pop("tp")),
}
"""Damage a crash, a full disk or a bad copy leaves in a checkpoint folder."""

SPECS = {
    "list": "- a\n- b\n",
    "int": "model: 5\n",
    "syntax": "model: {pattern: [\n",
    "bad-theta": "model: {pattern: AMM, d_model: 64, n_heads: 4, n_kv_heads: 2, ffn_hidden: 128, vocab_size: 264, "
                 "max_seq_len: 256, rope_theta: abc}\n",
    "missing-fields": "model: {pattern: AMM, d_model: 64}\n",
}
"""Malformed model spec files."""


def check_no_new_event_file(w: World, d: Path, result: Run) -> str | None:
    events = sorted(p.name for p in (d / "run" / "tensorboard").iterdir())
    original = sorted(p.name for p in (w.trained / "tensorboard").iterdir())
    return None if events == original else f"a new TensorBoard event file: {sorted(set(events) - set(original))}"


def says(text: str) -> Callable[[World, Path, Run], str | None]:
    """Check: the output says ``text``."""
    return lambda w, d, result: None if text in result.output else f"does not say {text!r}"


# --- cases that drive processes -------------------------------------------------------------------------


def start_and_kill(run_dir: Path, cwd: Path, min_trials: int = 3) -> None:
    """Start a search on the slow simulated ladder and SIGKILL its process group once ``min_trials`` are logged."""
    proc = start(["search", f"search.run_dir={run_dir}", "search.n_iterations=3", *SLOW_LADDER], cwd)
    deadline = time.monotonic() + 150
    log = run_dir / "trials.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if log.is_file() and log.read_text().count("\n") >= min_trials:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        raise RuntimeError(f"the search ended before it could be killed: {proc.communicate()[0][-800:]}")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()


def trial_problems(run_dir: Path) -> str | None:
    """Lost or doubled work in a resumed search: unparsable lines, a trial recorded twice, no summary."""
    lines = (run_dir / "trials.jsonl").read_text().splitlines()
    try:
        ids = [json.loads(line)["trial_id"] for line in lines if line.strip()]
    except (ValueError, KeyError) as err:
        return f"trials.jsonl does not parse after the resume ({err})"
    doubled = sorted({i for i in ids if ids.count(i) > 1})
    if doubled:
        return f"trials recorded twice: {doubled[:3]}"
    return None if (run_dir / "summary.json").is_file() else "the resumed search did not finish"


def killed_then_torn_then_resumed(w: World, d: Path) -> tuple[Run, str | None]:
    """kill -9 mid-search, a torn last line in trials.jsonl and configs.jsonl, then resume: it must finish
    with every trial once and the torn bytes set aside."""
    run_dir = d / "run"
    start_and_kill(run_dir, d)
    for name in ("trials.jsonl", "configs.jsonl"):
        with (run_dir / name).open("ab") as fh:
            fh.write(b'{"trial_id": "0-0-9@1", "pattern": "AM')
    result = run(["search", f"resume={run_dir}"], d)
    problem = trial_problems(run_dir)
    if problem is None and not (run_dir / "trials.jsonl.torn").is_file():
        problem = "the torn line was not set aside"
    return result, problem


def two_resumes_at_once(w: World, d: Path) -> tuple[Run, str | None]:
    """kill -9 mid-search, then two resumes of it started together: one runs, the other is refused in one line."""
    run_dir = d / "run"
    start_and_kill(run_dir, d)
    procs = [start(["search", f"resume={run_dir}"], d) for _ in range(2)]
    first, second = (finish(p, 240) for p in procs)
    codes = sorted(r.returncode for r in (first, second) if r.returncode is not None)
    if codes == [0, 0]:
        return first, "both resumes ran on one run directory (work doubled)"
    refused = next((r for r in (first, second) if r.returncode != 0), first)
    went_on = first if refused is second else second
    problem = None if went_on.returncode == 0 else "neither resume finished the search"
    return refused, problem or trial_problems(run_dir)


def train_resume_logs_the_next_steps(w: World, d: Path) -> tuple[Run, str | None]:
    """Resume from the step-1 checkpoint of the 2-step run: TensorBoard gets step 1 once more in a new file, with
    the uninterrupted run's loss (not step 0 again with another value)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = shutil.copytree(w.trained, d / "run")
    shutil.rmtree(run_dir / STEP.format(2))
    before = set((run_dir / "tensorboard").glob("events.*"))
    original = {e.step: e.value for e in EventAccumulator(str(w.trained / "tensorboard")).Reload().Scalars("train/loss")}
    result = run(["train", f"data={w.data}", f"out_dir={run_dir}", "resume=latest", *SMALL_TRAIN,
                  "trainer.max_steps=2", "trainer.ckpt_every=0"], d)
    if result.returncode != 0:
        return result, None
    [new] = set((run_dir / "tensorboard").glob("events.*")) - before
    logged = {e.step: e.value for e in EventAccumulator(str(new)).Reload().Scalars("train/loss")}
    if sorted(logged) != [1] or abs(logged[1] - original[1]) > 1e-5:
        return result, f"resumed run logged {logged}; the uninterrupted run had step 1 = {original[1]:.6f}"
    return result, None


def generate_usage_example(w: World, d: Path) -> tuple[Run, str | None]:
    """The usage line of conf/generate.yaml typed into a shell (optional parts left out) must run."""
    import re
    import shlex
    import subprocess
    import sys

    from probe_bad_inputs import REPO, env

    line = (REPO / "composer_automl" / "conf" / "generate.yaml").read_text().splitlines()[0].removeprefix("# ")
    line = re.sub(r"\s*\[[^\]]*\]", "", line).replace("EXPORTED_FOLDER", str(w.export))
    line = line.replace("composer-automl", f"{shlex.quote(sys.executable)} -m composer_automl", 1) + " max_new_tokens=8"
    done = subprocess.run(["bash", "-c", line], cwd=d, env=env(), capture_output=True, text=True, timeout=180)
    result = Run(done.returncode, done.stdout + done.stderr)
    return result, None if done.stdout.startswith("def main(") else f"printed {done.stdout[:60]!r}"


# --- the catalogue --------------------------------------------------------------------------------------


def E(name: str, *argv: str, **options) -> Case:
    """A case that must be refused with one ``error:`` line, exit 2, nothing written."""
    return Case(name, list(argv), "error", **options)


def OK(name: str, *argv: str, **options) -> Case:
    """A case that must go on (exit 0) and pass its check."""
    return Case(name, list(argv), "ok", **options)


TRAIN = ["train", "data={w.data}", "out_dir={d}/out", *SMALL_TRAIN]
RESUME = ["train", "data={w.data}", "out_dir={d}/run", "resume=latest", *SMALL_TRAIN, "trainer.max_steps=3"]

CASES: list[Case] = [
    # --- the console script and Hydra's own syntax
    E("cli-no-subcommand"),
    E("cli-unknown-subcommand", "serach"),
    E("cli-config-dir-missing", "search", "--config-dir", "{d}/nope"),
    E("cli-unparsable-override", "search", "search.optimizer"),
    E("cli-unknown-key", "search", "bogus=1"),
    E("cli-unknown-nested-key", "search", "search.n_worker=2"),
    E("cli-wrong-type", "search", "search.n_workers=abc"),
    # --- search
    E("search-unknown-optimizer", "search", "search.optimizer=smac"),
    E("search-n-iterations-0", "search", "search.n_iterations=0"),
    E("search-n-workers-negative", "search", "search.n_workers=-1"),
    E("search-unknown-fidelity", "search", "fidelity=nope"),
    E("search-unknown-space", "search", "search_space=nope"),
    E("search-n-layers-1000", "search", "search_space.n_layers=1000", "fidelity=simulated-ladder"),
    E("search-seed-negative-in-a-sweep", "search", "-m", "search.seed=0,-1", "fidelity=simulated-ladder"),
    E("search-run-dir-is-a-file", "search", "search.run_dir={w.file}", "fidelity=simulated-ladder"),
    E("search-run-dir-read-only", "search", "search.run_dir={d}/ro/run", "fidelity=simulated-ladder",
      setup=read_only(), as_user=True),
    E("search-resume-missing", "search", "resume={d}/nope"),
    E("search-resume-a-file", "search", "resume={w.file}"),
    E("search-resume-corrupt-search-json", "search", "resume={d}/run",
      setup=copy("search", "run", lambda r: ((r / "summary.json").unlink(), (r / "search.json").write_text("{garbage")))),
    E("search-resume-changes-the-seed", "search", "resume={d}/run", "search.seed=5", setup=copy("search", "run")),
    E("search-unknown-target", "search", "search.target=5B"),
    E("search-unknown-objective", "search", "search.objective=speed"),
    E("search-impossible-constraint", "search", "search.constraints.kv_cache_ratio_max=0.0001",
      "fidelity=simulated-ladder"),
    E("search-port-out-of-range", "search", "search.port=99999"),
    E("search-trial-timeout-negative", "search", "search.trial_timeout_s=-1"),
    E("search-gpus-not-ids", "search", "search.gpus=abc"),
    E("search-config-dir-ladder-names-missing-rung", "search", "--config-dir", "{d}/conf", "fidelity=mine",
      setup=write("conf/fidelity/mine.yaml", "kind: ladder\neta: 2\nrungs: [{budget: 1, rung: no-such-rung}]\n")),
    E("search-config-dir-ladder-not-yaml", "search", "--config-dir", "{d}/conf", "fidelity=mine",
      setup=write("conf/fidelity/mine.yaml", "kind: ladder\nrungs: [\n")),
    Case("search-killed-torn-then-resumed", expect="ok", drive=killed_then_torn_then_resumed, timeout=400),
    Case("search-two-resumes-at-once", drive=two_resumes_at_once, timeout=400),
    # --- calibrate
    E("calibrate-sample-0", "calibrate", "fidelity=hybridbench6", "calibrate.patterns=sample:0"),
    E("calibrate-seeds-0", "calibrate", "fidelity=hybridbench6", "calibrate.seeds=0"),
    E("calibrate-unknown-reference", "calibrate", "fidelity=hybridbench6", "calibrate.reference=nope"),
    E("calibrate-bad-pattern", "calibrate", "fidelity=hybridbench6", "calibrate.patterns=[AXM]"),
    E("calibrate-bootstrap-negative", "calibrate", "fidelity=hybridbench6", "calibrate.bootstrap=-1"),
    E("calibrate-run-dir-is-a-file", "calibrate", "fidelity=hybridbench6", "calibrate.run_dir={w.file}"),
    E("calibrate-run-dir-read-only", "calibrate", "fidelity=hybridbench6", "calibrate.run_dir={d}/ro/run",
      setup=read_only(), as_user=True),
    E("calibrate-resume-corrupt-calibrate-json", "calibrate", "resume={d}/run",
      setup=copy("calibration", "run", lambda r: (r / "calibrate.json").write_text("[1, 2"))),
    E("calibrate-report-only-on-an-empty-table", "calibrate", "resume={d}/run", "calibrate.report_only=true",
      setup=copy("calibration", "run", lambda r: (r / "table.jsonl").write_text(""))),
    E("calibrate-report-only-garbage-row", "calibrate", "resume={d}/run", "calibrate.report_only=true",
      setup=copy("calibration", "run", lambda r: (r / "table.jsonl").write_text("garbage\n" + (
          r / "table.jsonl").read_text()))),
    OK("calibrate-report-only-torn-table", "calibrate", "resume={d}/run", "calibrate.report_only=true",
       setup=copy("calibration", "run", lambda r: (r / "table.jsonl").open("a").write('{"pattern": "AM')),
       check=says("report:")),
    # --- worker
    E("worker-no-nameserver", "worker"),
    E("worker-port-99999", "worker", "nameserver=127.0.0.1:99999", "run_id=x"),
    E("worker-nameserver-0.0.0.0", "worker", "nameserver=0.0.0.0:9090", "run_id=x", "wait_s=1"),
    E("worker-gpus-abc", "worker", "nameserver=127.0.0.1:9090", "run_id=x", "gpus=abc"),
    E("worker-wait-negative", "worker", "nameserver=127.0.0.1:9090", "run_id=x", "wait_s=-1"),
    E("worker-threads-0", "worker", "nameserver=127.0.0.1:9090", "run_id=x", "threads=0"),
    E("worker-no-master-there", "worker", "nameserver=127.0.0.1:9", "run_id=x", "wait_s=1"),
    # --- mad
    E("mad-bad-pattern", "mad", "pattern=AXM"),
    E("mad-empty-pattern", "mad", "pattern="),
    E("mad-unknown-fidelity", "mad", "pattern=AMM", "fidelity=nope"),
    E("mad-rung-of-another-kind", "mad", "pattern=AMM", "fidelity=pretrain-tiny"),
    E("mad-width-0", "mad", "pattern=AMM", "width.d_model=0"),
    E("mad-threads-negative", "mad", "pattern=AMM", "threads=-1"),
    E("mad-gpu-without-cuda", "mad", "pattern=AMM", "fidelity.accelerator=gpu"),
    E("mad-read-only-working-directory", "mad", "pattern=AMM", "hydra.run.dir=ro/mad", setup=read_only(),
      as_user=True),
    # --- data
    E("data-no-action", "data"),
    E("data-unknown-action", "data", "tokenize"),
    E("data-missing-source", "data", "prepare", "data.source={d}/nope", "data.cache_dir={d}/cache"),
    E("data-empty-file", "data", "prepare", "data.source={d}/empty.txt", "data.cache_dir={d}/cache",
      setup=write("empty.txt", "")),
    E("data-glob-matches-nothing", "data", "prepare", "data.source={d}/*.md", "data.cache_dir={d}/cache"),
    E("data-broken-symlink", "data", "prepare", "data.source={d}/corpus", "data.cache_dir={d}/cache",
      setup=corpus(broken_link=True)),
    E("data-unreadable-file", "data", "prepare", "data.source={d}/corpus", "data.cache_dir={d}/cache",
      setup=corpus(unreadable=True), as_user=True),
    E("data-unknown-format", "data", "prepare", "data.format=csv"),
    E("data-hf-without-tokenizer-path", "data", "prepare", "data.tokenizer=hf"),
    E("data-tokenizer-file-missing", "data", "prepare", "data.tokenizer=hf", "data.tokenizer_path={d}/nope.json"),
    E("data-tokenizer-file-garbage", "data", "prepare", "data.tokenizer=hf", "data.tokenizer_path={d}/tok.json",
      setup=write("tok.json", "{not a tokenizer")),
    E("data-jsonl-missing-field", "data", "prepare", "data.source={d}/docs.jsonl", "data.jsonl_field=body",
      "data.cache_dir={d}/cache", setup=jsonl(DOCS)),
    E("data-jsonl-garbage-line", "data", "prepare", "data.source={d}/docs.jsonl", "data.cache_dir={d}/cache",
      "data.progress=false", setup=jsonl([*DOCS[:6], "garbage", *DOCS[6:]])),
    OK("data-jsonl-named-after-its-source", "data", "prepare", "data.source={d}/docs.jsonl",
       "data.cache_dir={d}/cache", "data.progress=false", setup=jsonl(DOCS),
       check=lambda w, d, r: None if list((d / "cache").glob("docs-*")) else
       f"cached as {[p.name for p in (d / 'cache').iterdir()]}"),
    E("data-cache-dir-is-a-file", "data", "prepare", "data.source={d}/corpus", "data.cache_dir={w.file}",
      setup=corpus()),
    E("data-cache-dir-read-only", "data", "prepare", "data.source={d}/corpus", "data.cache_dir={d}/ro",
      setup=both(corpus(), read_only()), as_user=True),
    E("data-valid-fraction-0.9", "data", "prepare", "data.valid_fraction=0.9"),
    E("data-max-bytes-0", "data", "prepare", "data.max_bytes=0"),
    E("data-name-with-slash", "data", "prepare", "data.name=a/b"),
    E("data-token-file-odd-size", "data", "prepare", "data.source={d}/t.bin", "data.tokens_dtype=uint16",
      "data.cache_dir={d}/cache", setup=write("t.bin", b"\x01\x02\x03")),
    E("data-token-ids-beyond-vocab", "data", "prepare", "data.source={d}/t.bin", "data.cache_dir={d}/cache",
      setup=write("t.bin", bytes([1, 0, 2, 0, 0, 1, 231, 3, 0, 1]))),
    E("data-indexed-garbage", "data", "prepare", "data.source={d}/x", "data.cache_dir={d}/cache",
      setup=both(write("x.idx", b"garbage index"), write("x.bin", b"garbage tokens"))),
    E("data-one-document", "data", "prepare", "data.source={d}/one.txt", "data.cache_dir={d}/cache",
      setup=write("one.txt", "a single document\n")),
    E("data-prepared-folder-corrupt-meta", "data", "prepare", "data.source={d}/prepared",
      setup=write("prepared/meta.json", "{garbage")),
    # --- pretrain
    E("pretrain-bad-pattern", "pretrain", "pattern=AXM"),
    E("pretrain-unknown-model", "pretrain", "pattern=AMM", "model=nope"),
    E("pretrain-seq-len-0", "pretrain", "pattern=AMM", "pretrain.seq_len=0"),
    E("pretrain-gpu-without-cuda", "pretrain", "pattern=AMM", "pretrain.accelerator=gpu"),
    E("pretrain-unknown-precision", "pretrain", "pattern=AMM", "pretrain.precision=fp8"),
    E("pretrain-missing-corpus", "pretrain", "pattern=AMM", "pretrain.data.source={d}/nope"),
    E("pretrain-read-only-working-directory", "pretrain", "pattern=AMM", "hydra.run.dir=ro/pretrain",
      setup=read_only(), as_user=True),
    # --- aggregate
    E("aggregate-no-run-dir", "aggregate"),
    E("aggregate-run-dir-missing", "aggregate", "run_dir={d}/nope"),
    E("aggregate-run-dir-is-a-file", "aggregate", "run_dir={w.file}"),
    E("aggregate-unfinished", "aggregate", "run_dir={d}/run",
      setup=copy("search", "run", lambda r: (r / "summary.json").unlink())),
    E("aggregate-garbage-line", "aggregate", "run_dir={d}/run",
      setup=copy("search", "run", lambda r: (r / "trials.jsonl").write_text("garbage\n" + (
          r / "trials.jsonl").read_text()))),
    E("aggregate-object-that-is-no-trial", "aggregate", "run_dir={d}/run",
      setup=copy("search", "run", lambda r: (r / "trials.jsonl").write_text('{"a": 1}\n' + (
          r / "trials.jsonl").read_text()))),
    E("aggregate-unreadable-trials", "aggregate", "run_dir={d}/run", as_user=True,
      setup=copy("search", "run", lambda r: (r / "trials.jsonl").chmod(0))),
    E("aggregate-read-only-run", "aggregate", "run_dir={d}/run", "top=2", "min_trials=2", as_user=True,
      setup=copy("search", "run", lambda r: r.chmod(0o555))),
    E("aggregate-extrapolate-out-read-only", "aggregate", "run_dir={d}/run", "top=2", "min_trials=2",
      "extrapolate.target=1B", "extrapolate.out={d}/ro/m.yaml", setup=both(copy("search", "run"), read_only()),
      as_user=True),
    E("aggregate-unknown-method", "aggregate", "run_dir={w.search}", "method=n3"),
    E("aggregate-top-0", "aggregate", "run_dir={w.search}", "top=0"),
    E("aggregate-unknown-target", "aggregate", "run_dir={w.search}", "extrapolate.target=5B"),
    E("aggregate-budget-not-there", "aggregate", "run_dir={w.search}", "budget=99"),
    E("aggregate-empty-trials", "aggregate", "run_dir={d}/run",
      setup=copy("search", "run", lambda r: (r / "trials.jsonl").write_text(""))),
    OK("aggregate-torn-last-line", "aggregate", "run_dir={d}/run", "top=2", "min_trials=2",
       setup=copy("search", "run", lambda r: (r / "trials.jsonl").open("a").write('{"trial_id": "0-0')),
       check=says("consensus")),
    # --- extrapolate
    E("extrapolate-bad-pattern", "extrapolate", "pattern=2A+4X"),
    E("extrapolate-no-pattern", "extrapolate"),
    E("extrapolate-unknown-target", "extrapolate", "pattern=2A+4M", "target=7B"),
    E("extrapolate-unknown-method", "extrapolate", "pattern=2A+4M", "method=tile"),
    E("extrapolate-tolerance-1.5", "extrapolate", "pattern=2A+4M", "tolerance=1.5"),
    E("extrapolate-unknown-kv-dtype", "extrapolate", "pattern=2A+4M", "kv_dtype=int3"),
    E("extrapolate-pattern-too-deep", "extrapolate", "pattern=40A+40M", "target=350M"),
    E("extrapolate-out-under-a-file", "extrapolate", "pattern=2A+4M", "out={w.file}/x.yaml"),
    E("extrapolate-out-is-a-folder", "extrapolate", "pattern=2A+4M", "out={d}"),
    E("extrapolate-out-read-only", "extrapolate", "pattern=2A+4M", "out={d}/ro/x.yaml", setup=read_only(),
      as_user=True),
    E("extrapolate-read-only-working-directory", "extrapolate", "pattern=2A+4M", "hydra.run.dir=ro/out",
      setup=read_only(), as_user=True),
    # --- train
    E("train-no-data", "train", "out_dir={d}/out"),
    E("train-missing-data", "train", "data={d}/nope", "out_dir={d}/out"),
    E("train-unknown-model", *TRAIN, "model=nope"),
    *(E(f"train-spec-{kind}", *TRAIN, "model={d}/spec.yaml", setup=write("spec.yaml", text))
      for kind, text in SPECS.items()),
    E("train-spec-missing", *TRAIN, "model={d}/nope.yaml"),
    E("train-out-dir-is-a-file", "train", "data={w.data}", "out_dir={w.file}", *SMALL_TRAIN),
    E("train-out-dir-read-only", "train", "data={w.data}", "out_dir={d}/ro/out", *SMALL_TRAIN, setup=read_only(),
      as_user=True),
    E("train-max-steps-0", *TRAIN, "trainer.max_steps=0"),
    E("train-grad-accum-0", *TRAIN, "trainer.grad_accum=0"),
    E("train-tp-3", *TRAIN, "parallel.tp=3"),
    E("train-unknown-precision", *TRAIN, "trainer.precision=fp8"),
    E("train-gpu-without-cuda", *TRAIN, "trainer.accelerator=gpu"),
    E("train-seq-len-beyond-model", *TRAIN, "trainer.seq_len=4096"),
    E("train-te-on-cpu", *TRAIN, "parallel.impl=te"),
    E("train-resume-missing", *TRAIN, "resume={d}/nope"),
    E("train-resume-a-file", *TRAIN, "resume={w.file}"),
    *(E(f"train-resume-{kind}", *RESUME, setup=copy("trained", "run", in_step(2, then)),
        check=check_no_new_event_file) for kind, then in DAMAGE.items()),
    E("train-resume-another-model", *RESUME, "model={d}/m.yaml", setup=both(
        copy("trained", "run"), write("m.yaml", "model: {pattern: AMMAMM, d_model: 128, n_heads: 4, n_kv_heads: 2, "
                                                "ffn_hidden: 128, vocab_size: 264, max_seq_len: 256}\n"))),
    E("train-resume-another-global-batch", *RESUME, "trainer.micro_batch_size=2", setup=copy("trained", "run")),
    OK("train-resume-latest-without-checkpoint", *TRAIN, "resume=latest", "trainer.max_steps=1",
       "trainer.ckpt_every=0", check=says("resume=latest: no complete checkpoint"), timeout=300),
    Case("train-resume-logs-the-next-steps", expect="ok", drive=train_resume_logs_the_next_steps, timeout=300),
    # --- export
    E("export-no-arguments", "export"),
    E("export-missing-ckpt", "export", "ckpt={d}/nope", "out={d}/out"),
    E("export-out-exists", "export", "ckpt={w.export}", "out={d}"),
    E("export-out-under-a-file", "export", "ckpt={w.export}", "out={w.file}/sub"),
    E("export-out-read-only", "export", "ckpt={w.trained}/" + STEP.format(2), "out={d}/ro/out", setup=read_only(),
      as_user=True),
    E("export-unknown-format", "export", "ckpt={w.export}", "out={d}/out", "format=onnx"),
    E("export-hf-without-tokenizer-path", "export", "ckpt={w.trained}/" + STEP.format(2), "out={d}/out",
      "tokenizer=hf"),
    E("export-tokenizer-file-missing", "export", "ckpt={w.trained}/" + STEP.format(2), "out={d}/out",
      "tokenizer=hf", "tokenizer_path={d}/nope.json"),
    E("export-tokenizer-larger-than-vocab", "export", "ckpt={w.trained}/" + STEP.format(2), "out={d}/out",
      "tokenizer=hf", "tokenizer_path={w.tokenizer}"),
    E("export-native-export-with-another-tokenizer", "export", "ckpt={w.export}", "out={d}/out", "tokenizer=byte"),
    *(E(f"export-{kind}", "export", "ckpt={d}/run/" + STEP.format(2), "out={d}/out",
        setup=copy("trained", "run", in_step(2, then))) for kind, then in DAMAGE.items()),
    E("export-damaged-native-yaml", "export", "ckpt={d}/exp", "out={d}/out",
      setup=copy("export", "exp", lambda e: (e / "model.yaml").write_text("model: [1, 2]\n"))),
    E("export-truncated-safetensors", "export", "ckpt={d}/exp", "out={d}/out", "format=hf",
      setup=copy("export", "exp", truncate("model.safetensors", 100))),
    # --- generate
    E("generate-no-model", "generate", "prompt=hi"),
    E("generate-model-and-spec", "generate", "model={w.export}", "spec=tiny", "prompt=hi"),
    *(E(f"generate-spec-{kind}", "generate", "spec={d}/spec.yaml", "prompt=hi", setup=write("spec.yaml", text))
      for kind, text in SPECS.items()),
    E("generate-spec-missing", "generate", "spec={d}/nope.yaml", "prompt=hi"),
    E("generate-unknown-preset", "generate", "spec=nope", "prompt=hi"),
    E("generate-model-missing", "generate", "model={d}/nope", "prompt=hi"),
    E("generate-hf-without-tokenizer-path", "generate", "spec=tiny", "prompt=hi", "tokenizer=hf"),
    E("generate-unknown-tokenizer", "generate", "spec=tiny", "prompt=hi", "tokenizer=sentencepiece"),
    E("generate-negative-tokens", "generate", "spec=tiny", "prompt=hi", "max_new_tokens=-1"),
    E("generate-empty-prompt", "generate", "spec=tiny", "prompt="),
    E("generate-prompt-too-long", "generate", "spec=tiny", "prompt=" + "x" * 300),
    E("generate-gpu-without-cuda", "generate", "spec=tiny", "prompt=hi", "accelerator=gpu"),
    E("generate-damaged-export", "generate", "model={d}/exp", "prompt=hi",
      setup=copy("export", "exp", lambda e: (e / "model.yaml").write_text("model: {pattern: [\n"))),
    E("generate-truncated-weights", "generate", "model={d}/exp", "prompt=hi",
      setup=copy("export", "exp", truncate("model.safetensors", 100))),
    OK("generate-350M-says-what-it-cannot-show", "generate", "spec=350M", "prompt='def main('", "max_new_tokens=16",
       check=lambda w, d, r: None if "note:" in r.output or len(r.output.split("\n")[0]) > len("def main(") else
       "printed the prompt alone and said nothing", timeout=400),
    Case("generate-usage-example-from-a-shell", expect="ok", drive=generate_usage_example),
    # --- evaluate
    E("evaluate-no-models", "evaluate", "models=[]", "tasks=[]"),
    E("evaluate-model-missing", "evaluate", "models=[{d}/nope]", "tasks=[]"),
    E("evaluate-limit-0", "evaluate", "models=[{w.export}]", "limit=0"),
    E("evaluate-out-exists", "evaluate", "models=[{w.export}]", "tasks=[]", "out={d}", "efficiency.latency=false"),
    E("evaluate-out-under-a-file", "evaluate", "models=[{w.export}]", "tasks=[]", "out={w.file}/sub",
      "efficiency.latency=false"),
    E("evaluate-out-read-only", "evaluate", "models=[{w.export}]", "tasks=[]", "out={d}/ro/out",
      "efficiency.latency=false", setup=read_only(), as_user=True),
    E("evaluate-gpu-without-cuda", "evaluate", "models=[{w.export}]", "tasks=[]", "accelerator=gpu"),
    E("evaluate-data-missing", "evaluate", "models=[{w.export}]", "tasks=[]", "data.path={d}/nope"),
]
"""Every case the probe runs, by command."""

ISSUE_21 = {
    "5": ["search-n-layers-1000"],
    "6": ["search-seed-negative-in-a-sweep"],
    "7": ["search-run-dir-is-a-file", "train-out-dir-is-a-file", "export-out-under-a-file"],
    "8": [f"{command}-spec-{kind}" for command in ("train", "generate") for kind in ("list", "int", "syntax")],
    "9": ["generate-hf-without-tokenizer-path"],
    "10": [f"{command}-{kind}" for command in ("train-resume", "export")
           for kind in ("truncated-shard", "no-metadata", "empty-common-pt", "bad-meta-json")],
    "11": ["aggregate-garbage-line", "calibrate-report-only-garbage-row", "data-unreadable-file",
           "aggregate-unreadable-trials", "search-resume-corrupt-search-json", "calibrate-resume-corrupt-calibrate-json"],
    "silent": ["calibrate-report-only-on-an-empty-table", "data-broken-symlink", "data-jsonl-named-after-its-source",
               "generate-350M-says-what-it-cannot-show", "mad-bad-pattern", "pretrain-bad-pattern",
               "extrapolate-bad-pattern", "generate-usage-example-from-a-shell"],
}
"""Issue 21's bad-input items (5-11) and its list of silent or misleading results → the cases that reproduce each:
the probe's default run (``--all`` runs the whole catalogue)."""
