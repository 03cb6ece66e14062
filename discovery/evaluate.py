"""`discover evaluate`: fresh agents trained with a discovered component, beside the
hand-designed baselines, on (held-out) environments, with confidence intervals.

A discovered drift (LPO / TA-LPO) trains PPO agents next to PPO-clip and DPO (Lu et al.,
2022); a discovered objective (LPG / TA-LPG) trains LPG agents next to A2C on gridworld
layouts (GROOVE, Jackson et al., 2023). Each method's seeds on one env are one vmapped
program, and every method gets the same per-env keys, so seed ``i`` of the learned
component is paired with seed ``i`` of each baseline.

Each agent gets two scores, both reported: a training score (the mean over the last
``final_fraction`` of its updates) and an evaluation score (its final policy played on
for ``eval_episodes`` more episodes or rollouts); the component's meta-training decides
which one is primary. Reported per horizon and environment: each method's mean with a
95% bootstrap CI over seeds, the random policy's score and the baselines' means, and
the learned component minus each baseline, seed by seed, with a t interval and a
sign-flip p. Across environments, on normalised scores (drifts: random play 0, PPO-clip
1; objectives: A2C's reward rate 1): the IQM and mean with stratified bootstrap CIs,
the mean paired difference, the probability of improvement and performance profiles
(Agarwal et al., 2021; :mod:`discovery.stats`), each naming the envs it covers.

``horizons`` asks the temporally-aware paper's question (Jackson et al., 2024): how a
component discovered for one training horizon does at others. Each horizon multiplies
a base training length: the one the component was meta-trained at (PPO's total steps,
or the LPG agents' lifetime), or an env's own ``budgets`` entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from discovery import stats
from discovery.components import COMPONENTS
from discovery.config import ConfigError
from discovery.progress import Report, no_report

#: The largest per-env budget ``--budget`` accepts (as ``discover train --total-steps``).
MAX_BUDGET = 1e10
BUDGET_FLAG = "--budget"
PROFILE_POINTS = 101


@dataclass(frozen=True)
class EvaluateConfig:
    """What to evaluate a discovered component on.

    Attributes:
      envs: environments (drifts: ``envs.make`` names; objectives: gridworld layouts,
        ``"dense"`` or ``"gridworld/dense"``); empty means the component's own
        meta-training envs (drifts) or held-out layouts (objectives).
      seeds: fresh agents per method and environment.
      horizons: training horizons as multiples of each env's base training length.
      budgets: per env, its base training length in the component's horizon unit (drifts:
        env steps per agent; objectives: agent updates), instead of the meta-training one.
      final_fraction: training score = mean over this last fraction of updates.
      eval_episodes: evaluation of each trained agent's final policy: drifts, whole
        episodes in each of PPO's ``num_envs`` envs; objectives, rollouts of the agents'
        ``rollout_len`` steps in each of their ``num_envs`` envs.
      confidence: coverage of the intervals.
      bootstrap_samples: bootstrap resamples.
      sign_flip_samples: random sign flips of a Monte-Carlo sign-flip p (beyond
        :data:`discovery.stats.EXACT_SIGN_FLIP_UNITS` pairs; fewer are enumerated).
      seed: the evaluation's seed (every method shares the per-env keys).
    """

    envs: tuple[str, ...] = ()
    seeds: int = field(default=8, metadata={"min": 2, "max": 65536})
    horizons: tuple[float, ...] = (1.0,)
    budgets: dict[str, float] = field(default_factory=dict)
    final_fraction: float = field(default=0.1, metadata={"min": 0.0, "max": 1.0})
    eval_episodes: int = field(default=1, metadata={"min": 1, "max": 1000})
    confidence: float = field(default=0.95, metadata={"min": 0.5, "max": 0.999})
    bootstrap_samples: int = field(default=2000, metadata={"min": 100})
    sign_flip_samples: int = field(default=10000, metadata={"min": 100, "max": 10**7})
    seed: int = 0

    def __post_init__(self) -> None:
        for horizon in self.horizons:
            if not (isinstance(horizon, (int, float)) and math.isfinite(horizon) and horizon > 0):
                raise ValueError(f"horizons: got {horizon!r}; allowed: positive numbers")
        if not self.horizons:
            raise ValueError("horizons=() must give at least one horizon (1.0 = as trained)")
        for name, value in self.budgets.items():
            if not (isinstance(value, (int, float)) and math.isfinite(value)
                    and 1 <= value <= MAX_BUDGET and float(value).is_integer()):
                raise ValueError(f"budgets: got {name}={value!r}; allowed: a whole number "
                                 f"from 1 to {MAX_BUDGET:g} per env")
        if not 1 <= self.eval_episodes <= 1000:
            raise ValueError(f"eval_episodes: got {self.eval_episodes}; allowed: 1 to 1000")


def parse_budgets(items: Sequence[str], flag: str = BUDGET_FLAG) -> dict[str, float]:
    """``--budget ENV=N`` values (repeatable) as ``{env: N}``; a malformed item, a number
    that is not a whole positive count up to :data:`MAX_BUDGET`, or an env given twice is
    a ``ConfigError`` naming ``flag``, the value and what is allowed."""
    allowed = (f"ENV=N, N a whole number from 1 to {MAX_BUDGET:g} (env steps per agent for "
               "drifts, agent updates for objectives), each env once")
    budgets: dict[str, float] = {}
    for item in items:
        name, sign, text = item.partition("=")
        name = name.strip()
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (sign and name and math.isfinite(value) and 1 <= value <= MAX_BUDGET
                and value.is_integer()):
            raise ConfigError(f"{flag}: got {item!r}; allowed: {allowed}", field=flag)
        if name in budgets:
            raise ConfigError(f"{flag}: got {name!r} twice; allowed: {allowed}", field=flag)
        budgets[name] = value
    return budgets


def base_lengths(config: EvaluateConfig, env_names: Sequence[str], default: float,
                 unit: str, minimum: int = 1,
                 canonical: Callable[[str], str] = lambda name: name) -> dict[str, float]:
    """Each env's base training length (what ``horizons`` multiply): its ``budgets``
    entry, else ``default``. A budget for an env not evaluated, or below ``minimum``, is a
    ``ConfigError`` naming ``--budget``; ``canonical`` maps a budget's name to an env's
    (e.g. ``gridworld/dense`` to ``dense``)."""
    budgets = {canonical(name): value for name, value in config.budgets.items()}
    for name, value in budgets.items():
        if name not in env_names:
            raise ConfigError(
                f"{BUDGET_FLAG}: got {name}={value:g}, but {name!r} is not evaluated; allowed: "
                f"one of the evaluated envs ({', '.join(env_names)})", field=BUDGET_FLAG)
        if value < minimum:
            raise ConfigError(
                f"{BUDGET_FLAG}: got {name}={value:g}; allowed: at least {minimum} {unit} "
                "(one update)", field=BUDGET_FLAG)
    return {name: float(budgets.get(name, default)) for name in env_names}


@dataclass(frozen=True)
class MethodCurves:
    """One method on one env at one horizon: per-update training scores ``curves [S, U]``,
    the primary score ``final [S]`` and every score by name, ``scores`` (``[S]`` each,
    the primary among them); NaN where a seed diverged or has no score."""

    curves: np.ndarray
    final: np.ndarray
    steps_per_update: int
    scores: Mapping[str, np.ndarray] = field(default_factory=dict)


def final_mean(curves: np.ndarray, fraction: float) -> np.ndarray:
    """Per seed, the mean of the finite values over the last ``fraction`` of ``[S, U]``."""
    last = max(1, int(round(curves.shape[-1] * fraction)))
    window = curves[:, -last:]
    with np.errstate(invalid="ignore"):
        counts = np.sum(np.isfinite(window), axis=-1)
        total = np.nansum(window, axis=-1)
    return np.where(counts > 0, total / np.maximum(counts, 1), np.nan)


def normaliser(offset: float, reference: float) -> tuple[float, float]:
    """``(offset, scale)`` mapping ``offset`` to 0 and ``reference`` to 1; the scale is NaN
    when the two coincide (no ordering can be read off a zero gap)."""
    scale = reference - offset
    return offset, scale if abs(scale) > 1e-9 else float("nan")


def recorded_config(entry: Any) -> dict[str, Any]:
    """The meta-training config recorded with a zoo entry (or run), as a dict."""
    return dict(entry.manifest.get("provenance", {}).get("config") or {})


@dataclass(frozen=True)
class HeldOut:
    """A component's held-out runs, as its evaluator (the registry's) returns them.

    Attributes:
      results: ``{horizon: {env: {method: MethodCurves}}}``, the learned component's
        method first, then its hand-designed baselines.
      env_names: the envs (or layouts) in order.
      training_length: the meta-training horizon that ``horizons`` multiply (for envs
        without a budget of their own).
      horizon_unit: what ``training_length`` counts (``"env steps"``, ...).
      metric: what the primary score is, for the report.
      normalisation: how scores are normalised, for the report.
      normalisers: ``{horizon: {env: (offset, scale)}}``, normalised = (x - offset) / scale.
      scores: ``{name: label}`` of every score a method has, the primary first.
      curve_label: what the learning curves plot.
      training_lengths: ``{horizon: {env: length}}`` each env actually trained for.
      random: ``{env: score}`` of a uniformly random policy (NaN where not measured).
      cached: ``"x1 CartPole-v1 ppo_clip"`` for each baseline run read from the cache.
    """

    results: dict[float, dict[str, dict[str, MethodCurves]]]
    env_names: list[str]
    training_length: float
    horizon_unit: str
    metric: str
    normalisation: str
    normalisers: dict[float, dict[str, tuple[float, float]]]
    scores: dict[str, str] = field(default_factory=dict)
    curve_label: str = "training return"
    training_lengths: dict[float, dict[str, float]] = field(default_factory=dict)
    random: dict[str, float] = field(default_factory=dict)
    cached: tuple[str, ...] = ()


class Progress:
    """Counts finished ``(horizon, env, method)`` trainings for a :data:`Report`."""

    def __init__(self, report: Report, total: int) -> None:
        self.report, self.total, self.done = report, total, 0

    def finished(self, horizon: float, env: str, method: str, run: MethodCurves,
                 cached: bool = False) -> None:
        """Report one training as done, with its mean primary score over finite seeds."""
        self.done += 1
        finite = run.final[np.isfinite(run.final)]
        mean = f"{finite.mean():.4g}" if finite.size else "n/a"
        where = ", cached" if cached else ""
        self.report(self.done, self.total, f"x{horizon:g} {env} {method}: {mean} "
                    f"({finite.size} of {run.final.size} seeds{where})")


def evaluate_component(
    entry: Any, config: EvaluateConfig, overrides: Sequence[str] = (), *,
    cache: Any = None, report: Report = no_report,
) -> dict[str, Any]:
    """Train and score every method; returns the report that
    :func:`discovery.evaluate_report.write_report` saves.

    ``entry`` is a loaded zoo entry (:func:`discovery.zoo.load`); ``overrides`` adjust
    the inner loop (``ppo.FIELD=VALUE`` for drifts, ``agent.FIELD=VALUE`` for objectives);
    ``cache`` (a :class:`discovery.baseline_cache.BaselineCache`) reuses baseline runs;
    ``report(done, total, line)`` hears of every finished training.
    """
    held = COMPONENTS[entry.kind].held_out(entry, config, overrides, report=report,
                                             cache=cache)
    return summarise(held, entry, config)


def summarise(held: HeldOut, entry: Any, config: EvaluateConfig) -> dict[str, Any]:
    """The report of ``held``'s runs: per horizon, per env and across envs."""
    methods = list(next(iter(next(iter(held.results.values())).values())))
    return {
        "component": entry.name,
        "kind": entry.kind,
        "metric": held.metric,
        "primary": next(iter(held.scores), "final"),
        "scores": dict(held.scores) or {"final": held.metric},
        "curve_label": held.curve_label,
        "normalisation": held.normalisation,
        "horizon_unit": held.horizon_unit,
        "seeds": config.seeds,
        "confidence": config.confidence,
        "final_fraction": config.final_fraction,
        "eval_episodes": config.eval_episodes,
        "budgets": dict(config.budgets),
        "envs": held.env_names,
        "methods": methods,
        "baselines": methods[1:],
        "random": {name: json_float(held.random.get(name, math.nan))
                   for name in held.env_names},
        "cached_baselines": list(held.cached),
        "horizons": [_horizon_table(held, horizon, methods, config) for horizon in held.results],
        "curves": held.results,
    }


def _boot(config: EvaluateConfig) -> dict[str, Any]:
    return {"confidence": config.confidence, "samples": config.bootstrap_samples}


def _method_cell(run: MethodCurves, offset: float, scale: float,
                 config: EvaluateConfig) -> dict[str, Any]:
    """One method on one env: primary score, normalised score and every score by name."""
    boot = _boot(config)
    return {
        "final": stats.bootstrap_mean_ci(run.final, **boot).as_dict(),
        "normalised": stats.bootstrap_mean_ci((run.final - offset) / scale, **boot).as_dict(),
        "per_seed": [json_float(x) for x in run.final],
        "seeds_finite": int(np.sum(np.isfinite(run.final))),
        "scores": {name: {"mean": stats.bootstrap_mean_ci(values, **boot).as_dict(),
                          "per_seed": [json_float(x) for x in values]}
                   for name, values in (run.scores or {"final": run.final}).items()},
    }


def _paired_cell(learned: np.ndarray, baseline: np.ndarray, scale: float,
                 config: EvaluateConfig) -> dict[str, Any]:
    """Learned minus baseline, seed by seed: t interval, sign-flip p, normalised too."""
    difference = learned - baseline
    p, how = stats.stratified_sign_flip_p([difference], config.sign_flip_samples)
    return {
        "difference": stats.paired_interval(learned, baseline, config.confidence).as_dict(),
        "normalised_difference": stats.t_interval(difference / scale, config.confidence).as_dict(),
        "p": json_float(p),
        "p_method": how,
        "pairs": int(np.sum(np.isfinite(difference))),
    }


def _horizon_table(held: HeldOut, horizon: float, methods: list[str],
                   config: EvaluateConfig) -> dict[str, Any]:
    """Everything reported at one horizon (see :func:`summarise`)."""
    per_env, norms = held.results[horizon], held.normalisers[horizon]
    lengths = held.training_lengths.get(horizon) or {
        name: held.training_length * horizon for name in held.env_names}
    uniform = set(lengths.values())
    table: dict[str, Any] = {
        "horizon": horizon,
        "training_length": uniform.pop() if len(uniform) == 1 else None,
        "training_lengths": dict(lengths),
        "envs": {}, "references": {}, "paired": {},
    }
    for name in held.env_names:
        offset, scale = norms[name]
        runs = per_env[name]
        table["envs"][name] = {m: _method_cell(runs[m], offset, scale, config) for m in methods}
        table["references"][name] = {
            "random": json_float(held.random.get(name, math.nan)),
            "baselines": {m: json_float(_finite_mean(runs[m].final)) for m in methods[1:]},
            "normaliser": {"offset": json_float(offset), "scale": json_float(scale)},
        }
        table["paired"][name] = {m: _paired_cell(runs["learned"].final, runs[m].final, scale,
                                                 config) for m in methods[1:]}
    table.update(_aggregates(held, horizon, methods, config))
    return table


def _aggregates(held: HeldOut, horizon: float, methods: list[str],
                config: EvaluateConfig) -> dict[str, Any]:
    """Across envs: IQM / mean of normalised scores, paired normalised differences,
    probability of improvement and performance profiles, each with the envs it covers."""
    per_env, norms, boot = held.results[horizon], held.normalisers[horizon], _boot(config)
    covered = [n for n in held.env_names if np.isfinite(norms[n][1])]
    excluded = {n: "no normaliser: the reference's mean equals the offset (or is missing)"
                for n in held.env_names if n not in covered}

    def normalised(method: str) -> list[np.ndarray]:
        return [(per_env[n][method].final - norms[n][0]) / norms[n][1] for n in covered]

    aggregate = {}
    for method in methods:
        rows = normalised(method)
        scores = np.stack(rows) if rows else np.full((1, config.seeds), np.nan)
        aggregate[method] = {"iqm": stats.stratified_bootstrap_iqm(scores, **boot).as_dict(),
                             "mean": stats.bootstrap_mean_ci(scores, **boot).as_dict(),
                             "envs": list(covered)}
    paired, improvement = {}, {}
    learned = normalised("learned")
    for baseline in methods[1:]:
        rows = [x - y for x, y in zip(learned, normalised(baseline))]
        p, how = stats.stratified_sign_flip_p(rows, config.sign_flip_samples)
        paired[baseline] = {
            "normalised_difference": stats.stratified_paired_interval(
                rows, config.confidence).as_dict(),
            "p": json_float(p), "p_method": how,
            "envs": [n for n, row in zip(covered, rows) if np.isfinite(row).sum() >= 2],
        }
        treated = [per_env[n]["learned"].final for n in held.env_names]
        control = [per_env[n][baseline].final for n in held.env_names]
        improvement[baseline] = {
            "overall": stats.stratified_bootstrap_probability_of_improvement(
                treated, control, **boot).as_dict(),
            "per_env": {n: json_float(stats.probability_of_improvement([x], [y]))
                        for n, x, y in zip(held.env_names, treated, control)},
            "envs": [n for n, x, y in zip(held.env_names, treated, control)
                     if np.isfinite(x).any() and np.isfinite(y).any()],
        }
    return {"aggregate": aggregate, "aggregate_envs": covered, "excluded_envs": excluded,
            "paired_aggregate": paired, "probability_of_improvement": improvement,
            "profiles": _profiles({m: normalised(m) for m in methods}, covered, config)}


def _profiles(rows: dict[str, list[np.ndarray]], covered: list[str],
              config: EvaluateConfig) -> dict[str, Any]:
    """Performance profiles of every method over one grid of thresholds ``tau`` spanning
    all methods' finite normalised scores (Agarwal et al., 2021)."""
    finite = np.concatenate([np.ravel(r) for rs in rows.values() for r in rs] or [np.zeros(0)])
    finite = finite[np.isfinite(finite)]
    if not finite.size:
        return {"taus": [], "envs": covered, "methods": {}}
    low, high = float(finite.min()), float(finite.max())
    pad = 0.05 * (high - low) if high > low else 0.5
    taus = np.linspace(low - pad, high + pad, PROFILE_POINTS)
    methods = {}
    for method, method_rows in rows.items():
        point, lo, hi = stats.stratified_bootstrap_profile(method_rows, taus, **_boot(config))
        methods[method] = {"fraction": [json_float(x) for x in point],
                           "low": [json_float(x) for x in lo],
                           "high": [json_float(x) for x in hi]}
    return {"taus": [float(t) for t in taus], "envs": covered, "methods": methods}


def _finite_mean(values: np.ndarray) -> float:
    finite = np.asarray(values, np.float64)
    finite = finite[np.isfinite(finite)]
    return float(finite.mean()) if finite.size else math.nan


def json_float(x: float) -> float | None:
    """``x``, or ``None`` (JSON's null) where it is not finite: no NaN in a report."""
    return float(x) if np.isfinite(x) else None


def run_evaluate(
    ref: str, config: EvaluateConfig, out_dir: Path, overrides: Sequence[str] = (),
    load: Callable[[str], Any] | None = None, *, cache: Any = None,
    report: Report = no_report,
) -> dict[str, Any]:
    """Load ``ref`` (``RUN_DIR`` or ``zoo:NAME``), evaluate it, write the report files
    (``cache`` and ``report`` as in :func:`evaluate_component`)."""
    if load is None:
        from discovery.zoo import load
    from discovery.evaluate_report import write_report  # the report's writers import this

    entry = load(ref)
    result = evaluate_component(entry, config, overrides, cache=cache, report=report)
    write_report(result, out_dir)
    return result
