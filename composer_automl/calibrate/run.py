"""One calibration run: the plan (patterns × rungs × seeds) run by the engine, the table, the report.

The plan is a proposer of the evaluation engine (the search's workers, local or remote):
the rungs being calibrated form a ladder whose budgets only select the rung, and every
job carries its own seed. Rows already in the run's table (same pattern, rung, seed and
rung config hash) are never evaluated again, which is how ``resume=`` continues a killed
run or extends it with more rungs, seeds or patterns.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from composer_automl.config import ConfigError
from composer_automl.engine.jobs import EvalJob, Evaluation, duration
from composer_automl.engine.ladder import Ladder, ladder_from_mapping
from composer_automl.engine.pool import PoolSettings, RunAborted
from composer_automl.engine.rundir import RunLock, check_new_run_dir, stopped_message
from composer_automl.engine.runner import Engine
from composer_automl.engine.spec import RunSpec
from composer_automl.files import atomic_write_text, check_writable, repair_torn_tail
from composer_automl.patterns import Pattern, PatternError
from composer_automl.provenance import machine
from composer_automl.rungs.registry import rung_name
from composer_automl.spaces import SearchSpace
from composer_automl.table import TABLE_FILE, Row, append_row, read_rows, rung_hash

log = logging.getLogger("composer_automl.calibrate")

RUN_FILE = "calibrate.json"
"""What the run directory calibrates (space, rungs and their configs, patterns, seeds, history)."""
SPEC_KEYS = ("run_id", "search_space", "reference", "rungs", "ladders", "patterns", "history")
"""What every ``calibrate.json`` holds."""
JOB_ORDER_SEED = 0
"""Seed of the pattern order in which evaluations are dispatched."""
EVALS_DIR = "evals"
"""Per-evaluation training logs (not part of the shipped table)."""


@dataclass
class CalibrateSettings(PoolSettings):
    """The ``calibrate:`` section of ``conf/calibrate.yaml`` (worker-pool fields: :class:`PoolSettings`)."""

    patterns: Any = "all"
    """``all`` (every pattern of the search space), ``sample:N`` (N distinct ones) or a list of patterns."""
    seeds: int = 3
    """Seeds per pattern at every rung except the reference."""
    reference: str | None = None
    """Rung evaluated on top of the ladder and compared against (null: the ladder's top rung)."""
    reference_seeds: int = 2
    """Seeds per pattern at the reference rung."""
    sample_seed: int = 0
    """Seed of the ``sample:N`` draw."""
    bootstrap: int = 2000
    """Bootstrap resamples of the patterns for the 95 % intervals."""
    run_dir: str | None = None
    """Where the table and report go (default: ``runs/calibrate-<time>``)."""
    report_only: bool = False
    """Write the report of the table as it stands (with ``resume=``) without evaluating anything."""
    include: list[str] = field(default_factory=list)
    """Patterns evaluated besides the selection (``sample:N`` draws the others); first in the plan's order."""
    patterns_per_rung: Any = None
    """Rung name → N (a mapping): that rung evaluates only the first N patterns of the plan's order (null: every
    rung all). Untyped so that ``calibrate.patterns_per_rung={rung: N}`` replaces the null on the command line."""
    extra_seed_patterns: int | None = None
    """How many patterns (the first of the plan's order) get the seeds after the first; null: all of them."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("seeds", "reference_seeds", "bootstrap"):
            if getattr(self, name) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, name)}", key=name)
        if isinstance(self.patterns, str):
            if self.patterns != "all" and not _sample_size(self.patterns):
                raise ConfigError(f"={self.patterns!r} is not allowed; give 'all', 'sample:N' (N >= 1) or a list "
                                  "of patterns", key="patterns")
        elif not isinstance(self.patterns, (list, tuple)) or not self.patterns:
            raise ConfigError("must be 'all', 'sample:N' or a non-empty list of patterns", key="patterns")
        if self.patterns_per_rung is not None and not isinstance(self.patterns_per_rung, dict):
            raise ConfigError(f"={self.patterns_per_rung!r} must be a mapping rung -> N", key="patterns_per_rung")
        for name, n in (self.patterns_per_rung or {}).items():
            if not isinstance(n, int) or n < 1:
                raise ConfigError(f"must be an integer >= 1, got {n!r}", key=f"patterns_per_rung.{name}")
        if self.extra_seed_patterns is not None and self.extra_seed_patterns < 1:
            raise ConfigError(f"must be >= 1 or null, got {self.extra_seed_patterns}", key="extra_seed_patterns")


def _sample_size(text: str) -> int:
    """N of ``sample:N`` (0 when the text is not of that form)."""
    head, _, n = text.partition(":")
    return int(n) if head == "sample" and n.isdigit() and int(n) >= 1 else 0


def select_patterns(space: SearchSpace, patterns: Any, sample_seed: int = 0) -> list[str]:
    """The patterns a calibration evaluates, validated against the space (compact spellings)."""
    if patterns == "all":
        return [str(p) for p in space.patterns()]
    if isinstance(patterns, str):
        valid = [str(p) for p in space.patterns()]
        n = _sample_size(patterns)
        if n > len(valid):
            raise ConfigError(f"={patterns}: the space has only {len(valid)} valid patterns", key="calibrate.patterns")
        picked = np.random.default_rng(sample_seed).choice(len(valid), size=n, replace=False)
        return [valid[i] for i in sorted(picked)]
    return _listed_patterns(space, patterns, "calibrate.patterns")


def _listed_patterns(space: SearchSpace, patterns: Any, key: str) -> list[str]:
    """Patterns given by name, each validated against the space (compact spellings, no repeats)."""
    out: list[str] = []
    for text in patterns:
        try:
            pattern = Pattern.parse(str(text))
            space.to_config(pattern)
        except PatternError as err:
            raise ConfigError(f"{key}: {err}") from None
        why = space.violation(pattern)
        if why:
            raise ConfigError(f"{key}: {pattern} is outside the search space ({why})")
        if str(pattern) in out:
            raise ConfigError(f"{key}: {pattern} is listed twice")
        out.append(str(pattern))
    return out


@dataclass(frozen=True)
class CalibrationPlan:
    """What a calibration evaluates: patterns × rungs (cheapest first, reference last) × seeds."""

    space: SearchSpace
    base: Ladder
    """The fidelity ladder being calibrated."""
    ladder: Ladder
    """The calibrated rungs as a ladder: the base's rungs, then the reference one budget up."""
    patterns: tuple[str, ...]
    seeds: dict[str, int] = field(default_factory=dict)
    """Rung name → number of seeds."""
    n_first: int = 0
    """The first ``n_first`` patterns lead the evaluation order (the ``include`` list)."""
    per_rung: dict[str, int] = field(default_factory=dict)
    """Rung name → how many patterns of the order it evaluates (absent: all)."""
    extra_seed_patterns: int | None = None
    """How many patterns of the order get the seeds after the first (None: all)."""

    @property
    def reference(self) -> str:
        return self.ladder.rungs[-1].name

    @property
    def rung_configs(self) -> dict[str, dict[str, Any]]:
        """Rung name → resolved rung mapping (``kind`` included)."""
        return {r["rung"]: r["rung_config"] for r in self.ladder.mapping["rungs"]}

    def order(self) -> list[int]:
        """Pattern indices in evaluation order: the included patterns, then the rest in a fixed shuffled order
        (so every prefix of the rest — what a capped rung evaluates, what is finished so far — is a uniform
        sample of the selection)."""
        rest = np.random.default_rng(JOB_ORDER_SEED).permutation(len(self.patterns) - self.n_first)
        return list(range(self.n_first)) + [self.n_first + int(i) for i in rest]

    def jobs(self) -> list[tuple[int, int, int]]:
        """(rung index, pattern index, seed), seed-major so a partial table covers every rung early; a rung
        capped at N patterns takes the first N of :meth:`order`, the seeds after the first go to the first
        ``extra_seed_patterns`` of them."""
        n_seeds = max(self.seeds.values())
        order = self.order()
        jobs = []
        for s in range(n_seeds):
            for r, rung in enumerate(self.ladder.rungs):
                if s >= self.seeds[rung.name]:
                    continue
                n = self.per_rung.get(rung.name, len(order))
                if s > 0 and self.extra_seed_patterns is not None:
                    n = min(n, self.extra_seed_patterns)
                jobs += [(r, p, s) for p in order[:n]]
        return jobs

    def key(self, job: tuple[int, int, int]) -> tuple[str, str, int]:
        r, p, s = job
        return (self.patterns[p], self.ladder.rungs[r].name, s)


def make_plan(space: SearchSpace, ladder: Ladder, settings: CalibrateSettings,
              reference: dict[str, Any] | None = None) -> CalibrationPlan:
    """Append the reference rung (a resolved rung mapping named ``settings.reference``) to ``ladder``."""
    names = [r.name for r in ladder.rungs]
    rungs = list(ladder.mapping["rungs"])
    ref_name = rung_name(settings.reference) if settings.reference else names[-1]
    if ref_name != names[-1]:
        if ref_name in names:
            raise ConfigError(f"={settings.reference!r} is a lower rung of the ladder {ladder.name} {names}; the "
                              "reference must be its top rung or a rung outside it", key="calibrate.reference")
        rungs.append({"budget": ladder.max_budget * ladder.eta, "rung": ref_name, "rung_config": reference})
    extended = ladder_from_mapping(ladder.name, {"kind": "ladder", "eta": ladder.eta, "rungs": rungs})
    duplicates = sorted({r.name for r in extended.rungs if [x.name for x in extended.rungs].count(r.name) > 1})
    if duplicates:
        raise ConfigError(f"fidelity {ladder.name}: rung(s) {duplicates} appear at two budgets with the same "
                          "config; a calibration needs every rung once")
    reference_name = extended.rungs[-1].name
    seeds = {r.name: settings.reference_seeds if r.name == reference_name else settings.seeds for r in extended.rungs}
    included = _listed_patterns(space, settings.include, "calibrate.include")
    selected = select_patterns(space, settings.patterns, settings.sample_seed)
    patterns = included + [p for p in selected if p not in included]
    per_rung = dict(settings.patterns_per_rung or {})
    unknown = sorted(set(per_rung) - set(seeds))
    if unknown:
        raise ConfigError(f"names rung(s) {unknown} that this calibration does not evaluate; its rungs: "
                          f"{list(seeds)}", key="calibrate.patterns_per_rung")
    return CalibrationPlan(space, ladder, extended, tuple(patterns), seeds, n_first=len(included),
                per_rung=per_rung, extra_seed_patterns=settings.extra_seed_patterns)


def public_settings(settings: CalibrateSettings) -> dict[str, Any]:
    """Settings without the secret and the run directory (what is saved and shown)."""
    return {k: v for k, v in dataclasses.asdict(settings).items() if k not in ("secret", "run_dir")}


def saved_spec(run_dir: Path) -> dict[str, Any]:
    """The run directory's ``calibrate.json`` (a ConfigError if it is not a calibration run, or unreadable)."""
    path = run_dir / RUN_FILE
    if not path.is_file():
        raise ConfigError(f"resume={str(run_dir)!r} is not a calibration run directory (no {RUN_FILE})")
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"resume={str(run_dir)!r}: {RUN_FILE} cannot be read ({err})") from None
    missing = [k for k in SPEC_KEYS if k not in spec] if isinstance(spec, dict) else list(SPEC_KEYS)
    if missing:
        raise ConfigError(f"resume={str(run_dir)!r}: {RUN_FILE} lacks {missing}; it is not a calibration run's file")
    return spec


def merge_spec(previous: dict[str, Any] | None, plan: CalibrationPlan, settings: CalibrateSettings, run_id: str,
               command: str) -> dict[str, Any]:
    """The run's spec after this invocation: every rung, ladder and pattern it has ever evaluated.

    A rung name keeps one config for the life of the run directory; a different search
    space or reference rung is refused.
    """
    hashes = {name: rung_hash(cfg) for name, cfg in plan.rung_configs.items()}
    spec = previous or {"run_id": run_id, "search_space": plan.space.resolved_mapping(), "reference": plan.reference,
                        "rungs": {}, "ladders": {}, "patterns": [], "history": []}
    if previous is not None:
        if previous["search_space"] != plan.space.resolved_mapping():
            raise ConfigError("resume: the search space differs from the one this run directory calibrated; "
                              "start a new calibrate.run_dir")
        if previous["reference"] != plan.reference:
            raise ConfigError(f"resume: the reference rung is {previous['reference']!r} in this run directory, "
                              f"not {plan.reference!r}")
    for name, cfg in plan.rung_configs.items():
        known = spec["rungs"].get(name)
        if known is not None and known["hash"] != hashes[name]:
            raise ConfigError(f"rung {name!r} changed since this run directory evaluated it (config hash "
                              f"{known['hash']} → {hashes[name]}); give the new version another name or start a "
                              "new calibrate.run_dir")
        spec["rungs"][name] = {"hash": hashes[name], "config": cfg, "seeds": plan.seeds[name]}
    spec["ladders"][plan.base.name] = {"rungs": [r.name for r in plan.base.rungs], "eta": plan.base.eta}
    # what resume= starts from: this invocation's settings, space and ladder
    spec["last"] = {"settings": public_settings(settings), "search_space": plan.space.resolved_mapping(),
                    "fidelity": {"name": plan.base.name, "mapping": plan.base.mapping}}
    spec["patterns"] = sorted(set(spec["patterns"]) | set(plan.patterns))
    spec["history"].append({"command": command, "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                            "machine": machine()})
    return spec


class PlanProposer:
    """The pending evaluations of a plan, proposed one after another; each result becomes a table row."""

    def __init__(self, plan: CalibrationPlan, run_dir: Path, pending: list[tuple[int, int, int]],
                 hashes: dict[str, str]):
        self.plan, self.run_dir, self.hashes = plan, run_dir, hashes
        self.todo = list(reversed(pending))
        self.n_jobs, self.n_done = len(pending), 0
        self.t0 = time.monotonic()

    def ask(self) -> EvalJob | None:
        if not self.todo:
            return None
        job = self.todo.pop()
        pattern, _, seed = self.plan.key(job)
        width = {k: int(v) for k, v in vars(self.plan.space.width(self.plan.space.to_config(pattern))).items()}
        return EvalJob(job, pattern, width, float(self.plan.ladder.budgets[job[0]]), seed)

    def record(self, result: Evaluation) -> None:
        """Append the evaluation's row and print its progress line."""
        pattern, rung, seed = self.plan.key(result.job.id)
        row = Row(pattern=pattern, rung=rung, seed=seed, rung_hash=self.hashes[rung], **result.outcome())
        append_row(self.run_dir, row)
        self.n_done += 1
        left = (time.monotonic() - self.t0) / self.n_done * (self.n_jobs - self.n_done)
        print(f"[calibrate {self.n_done}/{self.n_jobs}] {rung} seed={seed} {pattern} {result.summary()} "
              f"~{duration(left)} left", flush=True)

    def tell(self, result: Evaluation) -> None:
        """Nothing to learn: the plan is fixed."""

    @property
    def finished(self) -> bool:
        return not self.todo


def run_calibration(settings: CalibrateSettings, plan: CalibrationPlan, run_dir: Path, resume: bool = False,
                    command: str = "composer-automl calibrate") -> dict[str, Any]:
    """Evaluate every missing (pattern, rung, seed) of ``plan`` in ``run_dir``, then write the report."""
    from composer_automl.calibrate.report import write_report

    previous = saved_spec(run_dir) if resume else None
    if settings.report_only and not resume:
        raise ConfigError("calibrate.report_only needs resume=RUN_DIR (the table to report on)")
    if not resume:
        check_new_run_dir(run_dir, "calibrate.run_dir", "calibrate")
    elif not settings.report_only:
        check_writable(run_dir, "resume")
    if not settings.report_only:
        if settings.n_workers:
            plan.ladder.check_devices()  # what local workers will train on exists here
        plan.ladder.prepare_inputs()  # input errors before a new run directory exists
    with RunLock(run_dir):
        run_id = (previous or {}).get("run_id") or settings.run_id or uuid.uuid4().hex[:8]
        spec = merge_spec(previous, plan, settings, run_id, command)
        hashes = {name: entry["hash"] for name, entry in spec["rungs"].items()}
        if resume and not settings.report_only and (line := repair_torn_tail(run_dir / TABLE_FILE)):
            print(f"warning: {line}", flush=True)
        rows = read_rows(run_dir) if resume and (run_dir / TABLE_FILE).is_file() else []
        for row in rows:
            if row.rung in hashes and row.rung_hash and row.rung_hash != hashes[row.rung]:
                raise ConfigError(f"{run_dir / TABLE_FILE}: a row of rung {row.rung!r} has config hash "
                                  f"{row.rung_hash}, not {hashes[row.rung]}; the table mixes two versions of that rung")
        if settings.report_only:
            if not rows:
                raise ConfigError(f"resume={str(run_dir)!r}: the table has no rows yet; nothing to report (the "
                                  "report there is left as it was)")
            return write_report(run_dir, previous, rows, settings.bootstrap)

        done = {r.key for r in rows if r.status == "ok"}
        pending = [job for job in plan.jobs() if plan.key(job) not in done]
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)
        atomic_write_text(run_dir / RUN_FILE, json.dumps(spec, indent=2, sort_keys=True))
        n_jobs = len(plan.jobs())
        print(f"calibrate {run_id}: {len(plan.patterns)} patterns × rungs "
              f"{', '.join(f'{name} ({k} seeds)' for name, k in plan.seeds.items())} = {n_jobs} evaluations; "
              f"{n_jobs - len(pending)} already in the table, {len(pending)} to run; run dir {run_dir}", flush=True)
        for warning in plan.base.cost_warnings():
            print(f"warning (stated costs): {warning}", flush=True)
        if pending:
            proposer = PlanProposer(plan, run_dir, pending, hashes)
            run_spec = RunSpec(run_id, plan.ladder.name, plan.ladder.mapping, str((run_dir / EVALS_DIR).resolve()))
            try:
                Engine(settings, run_spec, plan.ladder, run_dir / "logs", "calibration", "calibrate").run(
                    proposer, proposer.record)
            except (KeyboardInterrupt, RunAborted) as err:
                print(stopped_message(err, run_dir, "calibrate", "finished evaluations"), flush=True)
                raise
        report = write_report(run_dir, spec, read_rows(run_dir), settings.bootstrap)
    for ladder, pairs in report["ladders"].items():
        for pair in pairs:
            if pair["cost_warning"]:
                print(f"warning (measured costs): ladder {ladder}: {pair['low']} → {pair['high']} cost "
                      f"{pair['cost_ratio']:.2g}× apart, not about eta", flush=True)
    return report
