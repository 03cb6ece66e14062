"""Interpreting learned drifts: surfaces, heatmaps and closed-form fits.

"Discovered Policy Optimisation" (Lu et al., 2022, Sec. 5 and Fig. 3) looked at the
drift LPO had learned over ``(r, A)``, saw that it treats positive and negative
advantages differently, and wrote down by hand a closed form that behaves the same way:
DPO (Eq. 9). This module does both steps for any :class:`~discovery.drift.Drift`:

- :func:`drift_surface` evaluates a drift on an ``(r, A)`` grid (jitted and vmapped);
  :func:`plot_drift_surface` draws it, one panel per training-progress value for
  temporally-aware drifts (TA-LPO, Jackson et al., 2024), beside reference drifts
  such as PPO-clip and DPO.
- :func:`fit_closed_form` automates the hand analysis with sparse regression over a
  small library of drift-like terms (:func:`candidate_terms`), per advantage branch.
  The default is best-subset (``L0``) selection (Bertsimas, King and Mazumder, 2016;
  used for SINDy by Bertsimas and Gurnee, 2023); sequentially thresholded least
  squares, STLSQ (Brunton, Proctor and Kutz, 2016, "Discovering governing equations
  from data by sparse identification of nonlinear dynamical systems", PNAS 113(15);
  the SINDy algorithm, with the ridge of Rudy et al., 2017, STRidge) is the
  alternative. Both recover DPO exactly from its noise-free values, but the library
  is nearly collinear (``x`` and ``tanh(x/4)``) and STLSQ already fails at noise
  1e-4, while the exhaustive search still finds DPO at noise 1e-3 (measured).
  Since drifts are ``ReLU``-wrapped, the fit alternates the regression with
  re-estimating the region where the ``ReLU`` is active. Fed DPO's own drift values
  it returns DPO's formula (``tests/discovery/test_interpret.py``);
  :func:`fit_learned_drift` samples a drift on a grid and fits it.

Everything after the surface is plain NumPy (float64): the fits are tiny.

One module (~670 lines): the surface, its plots and the closed-form fit share the
``(r, A)`` grid and the feature library.
"""

from __future__ import annotations

import io
import itertools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from discovery.drift import Drift, Params
from discovery.files import write_bytes_atomic
from discovery.plots import pyplot

#: A candidate term: ``term(ratio, advantage) -> values``, elementwise, same shape.
Term = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Drift names whose output depends on the training progress.
TEMPORALLY_AWARE_DRIFTS = frozenset({"ta_lpo"})

#: Name prefixes of the two advantage branches, as DPO splits them (Lu et al., 2022, Eq. 9).
BRANCHES: tuple[tuple[str, Callable[[np.ndarray], np.ndarray]], ...] = (
    ("A>=0", lambda advantage: advantage >= 0.0),
    ("A<0", lambda advantage: advantage < 0.0),
)


# --- surfaces -----------------------------------------------------------------------


@partial(jax.jit, static_argnums=0)
def _surface(
    drift: Drift, params: Params, ratios: jax.Array, advantages: jax.Array, progress: jax.Array
) -> jax.Array:
    def row(ratio: jax.Array) -> jax.Array:
        return jax.vmap(lambda advantage: drift(params, ratio, advantage, progress))(advantages)

    return jax.vmap(row)(ratios)


def is_temporally_aware(drift: Drift, params: Params | None = None) -> bool:
    """Whether ``drift`` reads the training progress.

    True for the registered temporally-aware drifts (:data:`TEMPORALLY_AWARE_DRIFTS`,
    even at an initialisation whose output ignores progress, like TA-LPO's zero output
    layer), and, when ``params`` are given, for any drift whose values on a small grid
    differ between progress 0 and 1.
    """
    if drift.name in TEMPORALLY_AWARE_DRIFTS:
        return True
    if params is None:
        return False
    ratios = jnp.geomspace(0.25, 4.0, 17, dtype=jnp.float32)
    advantages = jnp.linspace(-3.0, 3.0, 13, dtype=jnp.float32)
    early = _surface(drift, params, ratios, advantages, jnp.float32(0.0))
    late = _surface(drift, params, ratios, advantages, jnp.float32(1.0))
    return bool(jnp.any(early != late))


def drift_surface(
    drift: Drift,
    params: Params,
    ratios: np.ndarray,
    advantages: np.ndarray,
    progress: float | None = None,
) -> np.ndarray:
    """The drift on the grid ``ratios x advantages``: ``out[i, j] = D(r_i, A_j)``.

    Args:
      drift: any :class:`~discovery.drift.Drift`.
      params: its parameters.
      ratios: ``[R]`` probability ratios ``r > 0``.
      advantages: ``[A]`` (normalised) advantages.
      progress: lifetime fraction ``n / N`` in ``[0, 1]``; required for
        temporally-aware drifts (TA-LPO), ignored by the others (``None`` is fine).

    Returns:
      ``[R, A]`` float32 array, computed by one jitted, doubly vmapped call.
    """
    ratios = jnp.asarray(ratios, jnp.float32)
    advantages = jnp.asarray(advantages, jnp.float32)
    if ratios.ndim != 1 or advantages.ndim != 1:
        raise ValueError(
            f"ratios and advantages must be 1-D, got shapes {ratios.shape}, {advantages.shape}"
        )
    if progress is None:
        if is_temporally_aware(drift, params):
            raise ValueError(
                f"drift {drift.name!r} depends on training progress: pass progress in [0, 1]"
            )
        progress = 0.0
    elif not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress={progress} must lie in [0, 1]")
    return np.asarray(_surface(drift, params, ratios, advantages, jnp.float32(progress)))


# --- heatmaps -----------------------------------------------------------------------



def plot_drift_surface(
    drift: Drift,
    params: Params,
    path: str | os.PathLike[str],
    title: str = "",
    progress_values: Sequence[float] | None = (0.0, 0.5, 1.0),
    ratio_range: tuple[float, float] = (0.5, 2.0),
    advantage_range: tuple[float, float] = (-2.0, 2.0),
    reference: Mapping[str, tuple[Drift, Params]] | None = None,
    num: int = 121,
) -> Path:
    """Heatmaps of ``D(r, A)`` (Lu et al., 2022, Fig. 3), written to ``path`` as a PNG.

    A temporally-aware drift (TA-LPO) gets one panel per value in ``progress_values``,
    showing how it changes over the agent's lifetime (Jackson et al., 2024); any other
    drift gets one panel (``progress_values`` is then unused). Each ``reference``
    drift (label -> ``(drift, params)``, e.g. PPO-clip and DPO) is drawn beside it on
    the same colour scale, with one colour bar. ``r`` is on a log axis (base 2), so
    ``r`` and ``1 / r`` lie symmetrically about the white line at ``r = 1``.

    The figure is written to a temporary file in the same folder and renamed into
    place, so a reader never sees half a PNG. Returns ``path``.
    """
    path = Path(path)
    ratios = np.geomspace(ratio_range[0], ratio_range[1], num)
    advantages = np.linspace(advantage_range[0], advantage_range[1], num)

    def panels(label: str, component: Drift, component_params: Params):
        if is_temporally_aware(component, component_params):
            if not progress_values:
                raise ValueError(f"{label!r} is temporally aware: give progress_values")
            progress_labels = [(float(p), f"{label}, progress {p:g}") for p in progress_values]
        else:
            progress_labels = [(0.0, label)]
        return [
            (text, drift_surface(component, component_params, ratios, advantages, progress))
            for progress, text in progress_labels
        ]

    named = panels(drift.name, drift, params)
    for label, (ref_drift, ref_params) in (reference or {}).items():
        named += panels(label, ref_drift, ref_params)

    vmax = max(float(np.percentile(values, 99)) for _, values in named)
    vmax = vmax if vmax > 0.0 else 1.0
    ticks = [
        t
        for t in (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
        if ratio_range[0] <= t <= ratio_range[1]
    ]
    plt = pyplot()
    fig, axes = plt.subplots(
        1, len(named), figsize=(3.8 * len(named), 3.6), squeeze=False, constrained_layout=True
    )
    for ax, (label, values) in zip(axes[0], named):
        image = ax.pcolormesh(
            ratios, advantages, values.T, vmin=0.0, vmax=vmax, shading="auto", cmap="viridis"
        )
        ax.set_xscale("log", base=2)
        if len(ticks) >= 2:
            ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
            ax.minorticks_off()
        ax.axvline(1.0, color="w", lw=0.6)
        ax.axhline(0.0, color="w", lw=0.4, ls=":")
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("ratio r (log scale)")
    axes[0][0].set_ylabel("advantage A")
    fig.colorbar(image, ax=axes[0].tolist(), label="drift D(r, A)")
    if title:
        fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = io.BytesIO()
    try:
        fig.savefig(image, dpi=110, format="png")
    finally:
        plt.close(fig)
    return write_bytes_atomic(path, image.getvalue())


# --- candidate terms ----------------------------------------------------------------


def candidate_terms(scales: Sequence[float] = (0.3, 0.6, 1.0, 2.0, 4.0)) -> dict[str, Term]:
    """The library of drift-like terms that :func:`fit_closed_form` selects from.

    Every term is restricted to one advantage branch, ``[A>=0]`` or ``[A<0]`` (the
    split that LPO learned and DPO keeps, Lu et al., 2022, Eq. 9); per branch, with
    ``x = (r-1)A`` and ``y = log(r)A``:

    - ``x``, ``y``: the surrogate's own first-order terms;
    - ``tanh(x/c)``, ``tanh(y/c)`` for ``c`` in ``scales``: saturating terms; DPO is
      ``x - alpha tanh(x/alpha)`` and ``y - beta tanh(y/beta)``, so ``scales`` should
      contain the scales one hopes to find (the default holds DPO's 2 and 0.6);
    - ``(r-1)^2``, ``log(r)^2``, ``(r-1)^2|A|``, ``log(r)^2|A|``: quadratic
      trust-region penalties (KL-like near ``r = 1``);
    - ``|A|``: an offset, the only term not zero at ``r = 1``; inside a ``ReLU`` it
      makes hinges, e.g. PPO-clip is exactly ``ReLU((r-1)A - eps|A|)`` on both branches.

    Names look like ``"[A>=0] tanh((r-1)A/2)"``; values are NumPy arrays shaped like
    the (broadcast) inputs. ``r`` must be positive.
    """

    def on(branch: Callable[[np.ndarray], np.ndarray], term: Term) -> Term:
        return lambda r, a: np.where(branch(np.asarray(a)), term(np.asarray(r), np.asarray(a)), 0.0)

    base: dict[str, Term] = {
        "(r-1)A": lambda r, a: (r - 1.0) * a,
        "log(r)A": lambda r, a: np.log(r) * a,
    }
    for c in scales:
        base[f"tanh((r-1)A/{c:g})"] = lambda r, a, c=c: np.tanh((r - 1.0) * a / c)
        base[f"tanh(log(r)A/{c:g})"] = lambda r, a, c=c: np.tanh(np.log(r) * a / c)
    base["(r-1)^2"] = lambda r, a: (r - 1.0) ** 2 + 0.0 * a
    base["log(r)^2"] = lambda r, a: np.log(r) ** 2 + 0.0 * a
    base["(r-1)^2|A|"] = lambda r, a: (r - 1.0) ** 2 * np.abs(a)
    base["log(r)^2|A|"] = lambda r, a: np.log(r) ** 2 * np.abs(a)
    base["|A|"] = lambda r, a: np.abs(a) + 0.0 * r
    return {
        f"[{prefix}] {name}": on(branch, term)
        for prefix, branch in BRANCHES
        for name, term in base.items()
    }


# --- closed forms -------------------------------------------------------------------


def _split_branch(name: str) -> tuple[str | None, str]:
    if name.startswith("[") and "] " in name:
        prefix, rest = name[1:].split("] ", 1)
        return prefix, rest
    return None, name


def _expression(coefficients: Sequence[float], names: Sequence[str]) -> str:
    parts = []
    for coefficient, name in zip(coefficients, names):
        sign = "-" if coefficient < 0 else "+"
        parts.append(f"{sign} {abs(coefficient):.3f} {name}")
    if not parts:
        return "0"
    text = " ".join(parts)
    return text[2:] if text.startswith("+ ") else "-" + text[2:]


@dataclass(frozen=True, eq=False)
class ClosedForm:
    """A drift written as a sparse sum of named terms: ``[ReLU](sum_k c_k term_k(r, A))``.

    Attributes:
      terms: names of the selected terms (keys of :func:`candidate_terms`).
      coefficients: ``[len(terms)]`` their coefficients.
      rmse, r2, max_abs_error: error of :meth:`predict` on all the points it was
        fitted to (``ReLU`` applied when ``relu``), not only the active region.
      relu: whether the sum is wrapped in ``ReLU`` (so the formula is ``>= 0``).
      functions: the term callables, aligned with ``terms``; when left empty they are
        looked up in the default :func:`candidate_terms` (e.g. rebuilding a saved fit).
    """

    terms: tuple[str, ...]
    coefficients: np.ndarray
    rmse: float
    r2: float
    max_abs_error: float
    relu: bool
    functions: tuple[Term, ...] = field(repr=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "coefficients", np.asarray(self.coefficients, np.float64))
        if not self.functions and self.terms:
            library = candidate_terms()
            unknown = [name for name in self.terms if name not in library]
            if unknown:
                raise ValueError(f"terms {unknown} are not default candidate terms: pass functions")
            object.__setattr__(self, "functions", tuple(library[name] for name in self.terms))
        if not len(self.terms) == len(self.coefficients) == len(self.functions):
            raise ValueError("terms, coefficients and functions must have equal lengths")

    def predict(self, ratio: np.ndarray, advantage: np.ndarray) -> np.ndarray:
        """The formula's value at ``(ratio, advantage)`` (broadcast shapes, ``r > 0``)."""
        ratio = np.asarray(ratio, np.float64)
        advantage = np.asarray(advantage, np.float64)
        value = np.zeros(np.broadcast_shapes(ratio.shape, advantage.shape))
        for coefficient, term in zip(self.coefficients, self.functions):
            value = value + coefficient * term(ratio, advantage)
        return np.maximum(value, 0.0) if self.relu else value

    def coefficient(self, term: str) -> float:
        """The coefficient of ``term``; 0 when it was not selected."""
        return float(self.coefficients[self.terms.index(term)]) if term in self.terms else 0.0

    def formula(self) -> str:
        """Readable formula, one clause per advantage branch, e.g.
        ``"A>=0: ReLU(1.000 (r-1)A - 2.000 tanh((r-1)A/2)); A<0: ReLU(...)"``."""
        wrap = (lambda text: f"ReLU({text})") if self.relu else (lambda text: text)
        common: list[tuple[float, str]] = []
        branches: dict[str, list[tuple[float, str]]] = {prefix: [] for prefix, _ in BRANCHES}
        for coefficient, name in zip(self.coefficients, self.terms):
            prefix, rest = _split_branch(name)
            if prefix is None:
                common.append((float(coefficient), rest))
            else:
                branches.setdefault(prefix, []).append((float(coefficient), rest))
        if not any(branches.values()):
            return wrap(_expression([c for c, _ in common], [n for _, n in common]))
        clauses = []
        for prefix, items in branches.items():
            items = common + items
            body = _expression([c for c, _ in items], [n for _, n in items])
            clauses.append(f"{prefix}: {wrap(body)}")
        return "; ".join(clauses)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (terms, coefficients, errors, formula)."""
        return {
            "formula": self.formula(),
            "terms": list(self.terms),
            "coefficients": [float(c) for c in self.coefficients],
            "relu": self.relu,
            "rmse": self.rmse,
            "r2": self.r2,
            "max_abs_error": self.max_abs_error,
        }


def _ridge_lstsq(design: np.ndarray, target: np.ndarray, ridge: float) -> np.ndarray:
    """``argmin |X w - y|^2 / n + ridge |w|^2`` via an augmented least-squares solve."""
    n, k = design.shape
    augmented = np.vstack([design / np.sqrt(n), np.sqrt(ridge) * np.eye(k)])
    rhs = np.concatenate([target / np.sqrt(n), np.zeros(k)])
    return np.linalg.lstsq(augmented, rhs, rcond=None)[0]


def _unit_rms_columns(design: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(design / scale, scale, usable)``; all-zero columns are unusable (scale 1)."""
    scale = np.sqrt(np.mean(design**2, axis=0)) if len(design) else np.zeros(design.shape[1])
    usable = scale > 1e-12
    scale = np.where(usable, scale, 1.0)
    return design / scale, scale, usable


def stlsq(
    design: np.ndarray,
    target: np.ndarray,
    threshold: float = 1e-2,
    max_terms: int | None = None,
    ridge: float = 1e-12,
    max_iter: int = 25,
) -> np.ndarray:
    """Sequentially thresholded least squares (Brunton et al., 2016, SINDy).

    Columns are scaled to unit RMS; each pass solves (ridge-regularised, Rudy et al.,
    2017) least squares on the surviving columns and drops every column whose
    contribution ``|w_k| rms(X_k) / rms(y)`` is below ``threshold``, until none is
    dropped. Then, while more than ``max_terms`` survive, the smallest contributor is
    dropped and the rest refitted. All-zero columns are never selected.

    Fast, and exact on noise-free data, but fragile when candidates are nearly
    collinear (``x`` and ``tanh(x/4)``): there, noise of 1e-4 already makes the first,
    full least-squares solve put large cancelling weights on spurious terms that no
    threshold removes (measured on DPO; see :func:`best_subset`).

    Args:
      design: ``[N, K]`` candidate-term values.
      target: ``[N]`` values to fit.

    Returns:
      ``[K]`` coefficients in the units of ``design`` (zeros for dropped columns).
    """
    num_terms = design.shape[1]
    normalised, scale, active = _unit_rms_columns(design)
    target_rms = float(np.sqrt(np.mean(target**2))) if len(target) else 0.0
    if target_rms == 0.0 or not active.any():
        return np.zeros(num_terms)

    def solve(mask: np.ndarray) -> np.ndarray:
        weights = np.zeros(num_terms)
        if mask.any():
            weights[mask] = _ridge_lstsq(normalised[:, mask], target, ridge)
        return weights

    weights = solve(active)
    for _ in range(max_iter):
        keep = active & (np.abs(weights) >= threshold * target_rms)
        if (keep == active).all():
            break
        active = keep
        weights = solve(active)
    while max_terms is not None and active.sum() > max_terms:
        smallest = np.flatnonzero(active)[np.argmin(np.abs(weights[active]))]
        active[smallest] = False
        weights = solve(active)
    return weights / scale


def _subsets_of_size(
    usable: np.ndarray, size: int, previous: np.ndarray | None, max_subsets: int, beam: int
) -> np.ndarray:
    """All ``size``-subsets of the usable columns, or, when there are more than
    ``max_subsets``, the one-column extensions of the ``beam`` best smaller ones."""
    columns = np.flatnonzero(usable)
    if math.comb(len(columns), size) <= max_subsets or previous is None:
        return np.array(list(itertools.combinations(columns, size)), dtype=int).reshape(-1, size)
    grown = {
        tuple(sorted((*subset, column)))
        for subset in previous[:beam]
        for column in columns
        if column not in subset
    }
    return np.array(sorted(grown), dtype=int).reshape(-1, size)


def best_subset(
    design: np.ndarray,
    target: np.ndarray,
    threshold: float = 1e-2,
    max_terms: int = 4,
    ridge: float = 1e-12,
    max_subsets: int = 50_000,
    beam: int = 200,
) -> np.ndarray:
    """Sparsest least-squares fit within ``threshold`` of the whole library's fit.

    Best-subset selection (Bertsimas, King and Mazumder, 2016, Ann. Statist. 44(2)),
    the ``L0`` sparse regression that Bertsimas and Gurnee (2023, "Learning sparse
    nonlinear dynamics via mixed-integer optimization", Nonlinear Dyn. 111) use in
    place of SINDy's STLSQ: for every size ``k <= max_terms`` every ``k``-subset of
    columns is least-squares fitted (batched normal equations on unit-RMS columns;
    errors are recomputed from the weights, so an ill-conditioned subset can only look
    worse than it is), and the answer is the smallest ``k`` whose best RMS error is at
    most the full library's plus ``threshold * rms(target)``, refitted with
    ``lstsq``. If no ``k <= max_terms`` gets there, the best ``max_terms``-subset
    is returned and its error says so. Libraries too large to enumerate fall back to a
    beam search over subsets (width ``beam``).

    Exhaustive search is affordable here because the library is per advantage branch
    and small (17 terms: 3,213 subsets of up to 4), and it is what makes the fit
    robust: on DPO plus Gaussian noise it keeps finding DPO's terms where STLSQ
    does not (``tests/discovery/test_interpret.py``).

    Args:
      design: ``[N, K]`` candidate-term values.
      target: ``[N]`` values to fit.

    Returns:
      ``[K]`` coefficients in the units of ``design`` (zeros for unselected columns).
    """
    num_points, num_terms = design.shape
    coefficients = np.zeros(num_terms)
    normalised, scale, usable = _unit_rms_columns(design)
    if num_points == 0 or not usable.any():
        return coefficients
    target_rms = float(np.sqrt(np.mean(target**2)))
    full = _ridge_lstsq(normalised[:, usable], target, ridge)
    full_rmse = float(np.sqrt(np.mean((normalised[:, usable] @ full - target) ** 2)))
    if target_rms <= full_rmse + threshold * target_rms:
        return coefficients
    gram = normalised.T @ normalised / num_points
    moment = normalised.T @ target / num_points
    energy = float(target @ target) / num_points
    previous = None
    best = np.zeros(0, dtype=int)
    for size in range(1, min(max_terms, int(usable.sum())) + 1):
        subsets = _subsets_of_size(usable, size, previous, max_subsets, beam)
        gram_sub = gram[subsets[:, :, None], subsets[:, None, :]] + ridge * np.eye(size)
        moment_sub = moment[subsets]
        weights = np.linalg.solve(gram_sub, moment_sub[..., None])[..., 0]
        quadratic = np.einsum("si,sij,sj->s", weights, gram_sub - ridge * np.eye(size), weights)
        mse = np.maximum(energy - 2.0 * np.sum(weights * moment_sub, axis=1) + quadratic, 0.0)
        order = np.argsort(mse, kind="stable")
        previous, best = subsets[order], subsets[order[0]]
        if np.sqrt(mse[order[0]]) <= full_rmse + threshold * target_rms:
            break
    coefficients[best] = np.linalg.lstsq(normalised[:, best], target, rcond=None)[0]
    return coefficients / scale


def _errors(prediction: np.ndarray, target: np.ndarray) -> tuple[float, float, float]:
    residual = prediction - target
    rmse = float(np.sqrt(np.mean(residual**2)))
    total = float(np.sum((target - target.mean()) ** 2))
    r2 = 1.0 - float(np.sum(residual**2)) / total if total > 0.0 else float(rmse == 0.0)
    return rmse, r2, float(np.max(np.abs(residual)))


def _branch_groups(
    names: Sequence[str], advantage: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(term indices, point mask)`` per advantage branch, when every term is tied to
    one (``"[A>=0] ..."``); otherwise a single group of everything."""
    predicates = dict(BRANCHES)
    prefixes = [_split_branch(name)[0] for name in names]
    if not all(prefix in predicates for prefix in prefixes):
        return [(np.arange(len(names)), np.ones(advantage.shape, bool))]
    return [
        (np.array([i for i, p in enumerate(prefixes) if p == prefix]), predicate(advantage))
        for prefix, predicate in BRANCHES
        if prefix in prefixes
    ]


def fit_closed_form(
    ratio: np.ndarray,
    advantage: np.ndarray,
    drift_values: np.ndarray,
    terms: Mapping[str, Term] | None = None,
    threshold: float = 1e-2,
    max_terms: int | None = None,
    relu: bool = True,
    method: str = "best_subset",
    active_threshold: float = 1e-2,
    ridge: float = 1e-12,
    max_rounds: int = 10,
) -> ClosedForm:
    """Sparse closed form of a drift from samples, automating Lu et al. (2022, Sec. 5).

    Each advantage branch (``[A>=0]``, ``[A<0]`` terms; the whole library at once if
    some term has no branch) is fitted separately by sparse regression over the
    ``terms`` library: :func:`best_subset` (default; ``L0``, robust to noise) or
    :func:`stlsq` (SINDy, Brunton et al., 2016; fast, fragile under noise here).

    With ``relu=True`` the model is ``ReLU(sum_k c_k term_k)``, as drifts are: a
    linear fit only makes sense where the ``ReLU`` is active, so the fit starts on
    the points where the drift is clearly positive (``> active_threshold * max``)
    and then alternates sparse regression with re-estimating the active region as
    those points plus wherever the current formula is positive (where the ``ReLU``
    passes the residual through), keeping the round with the smallest error on all
    points. Errors are always reported on all points, ``ReLU`` applied, so a
    formula that is wrong outside its active region shows it.

    Args:
      ratio, advantage, drift_values: samples of equal size (flattened), ``r > 0``.
      terms: name -> term library; default :func:`candidate_terms`.
      threshold: ``best_subset``: extra RMS error, relative to the branch's RMS
        drift, allowed over the whole library's fit; ``stlsq``: the smallest
        relative contribution a kept term may make.
      max_terms: most terms per branch (default 4 for ``best_subset``, no cap for
        ``stlsq``).
      relu: fit ``ReLU(.)`` (drifts are ``>= 0``) rather than a plain sum.
      method: ``"best_subset"`` or ``"stlsq"``.
      active_threshold: "clearly positive", relative to ``max(drift_values)``; keep
        it above the noise level of the samples.
      ridge: ridge penalty on unit-RMS columns (guards exactly collinear candidates).
      max_rounds: cap on active-region re-estimations.
    """
    if method not in ("best_subset", "stlsq"):
        raise ValueError(f"method={method!r}; allowed: 'best_subset', 'stlsq'")
    ratio = np.asarray(ratio, np.float64).ravel()
    advantage = np.asarray(advantage, np.float64).ravel()
    target = np.asarray(drift_values, np.float64).ravel()
    if not ratio.shape == advantage.shape == target.shape:
        raise ValueError(
            f"ratio, advantage and drift_values must have equal sizes, got "
            f"{ratio.size}, {advantage.size}, {target.size}"
        )
    if not np.all(np.isfinite(target)):
        raise ValueError("drift_values contain NaN or inf")
    if np.any(ratio <= 0.0):
        raise ValueError("ratios must be positive")
    library = dict(candidate_terms() if terms is None else terms)
    if not library:
        raise ValueError("terms is empty")
    names = tuple(library)
    design = np.stack(
        [np.broadcast_to(library[name](ratio, advantage), ratio.shape) for name in names], axis=1
    ).astype(np.float64)
    groups = _branch_groups(names, advantage)
    if method == "best_subset":
        sparse_fit = partial(
            best_subset,
            threshold=threshold,
            max_terms=4 if max_terms is None else max_terms,
            ridge=ridge,
        )
    else:
        sparse_fit = partial(stlsq, threshold=threshold, max_terms=max_terms, ridge=ridge)

    def fit(region: np.ndarray) -> np.ndarray:
        weights = np.zeros(len(names))
        for columns, points in groups:
            rows = region & points
            weights[columns] = sparse_fit(design[np.ix_(rows, columns)], target[rows])
        return weights

    def finish(weights: np.ndarray) -> ClosedForm:
        selected = np.flatnonzero(weights)
        prediction = design[:, selected] @ weights[selected]
        if relu:
            prediction = np.maximum(prediction, 0.0)
        rmse, r2, max_abs = _errors(prediction, target)
        return ClosedForm(
            terms=tuple(names[i] for i in selected),
            coefficients=weights[selected].copy(),
            rmse=rmse,
            r2=r2,
            max_abs_error=max_abs,
            relu=relu,
            functions=tuple(library[names[i]] for i in selected),
        )

    if not relu:
        return finish(fit(np.ones(target.shape, bool)))
    clearly_positive = target > active_threshold * max(float(target.max()), 0.0)
    region = clearly_positive
    best: ClosedForm | None = None
    seen: list[np.ndarray] = []
    for _ in range(max_rounds):
        weights = fit(region)
        candidate = finish(weights)
        if best is None or candidate.rmse < best.rmse:
            best = candidate
        seen.append(region)
        region = clearly_positive | (design @ weights > 0.0)
        if any((region == previous).all() for previous in seen):
            break
    assert best is not None
    return best


def fit_learned_drift(
    drift: Drift,
    params: Params,
    progress: float | None = None,
    ratio_range: tuple[float, float] = (0.5, 2.0),
    advantage_range: tuple[float, float] = (-2.0, 2.0),
    num: int = 41,
    **fit_kwargs: Any,
) -> ClosedForm:
    """Closed form of ``drift`` sampled on a ``num x num`` grid of ``(r, A)``.

    ``r`` and ``A`` are evenly spaced over the ranges; ``progress`` is required for
    temporally-aware drifts (see :func:`drift_surface`). ``fit_kwargs`` go to
    :func:`fit_closed_form`.
    """
    ratios = np.linspace(ratio_range[0], ratio_range[1], num)
    advantages = np.linspace(advantage_range[0], advantage_range[1], num)
    values = drift_surface(drift, params, ratios, advantages, progress)
    grid_r, grid_a = np.meshgrid(ratios, advantages, indexing="ij")
    return fit_closed_form(grid_r, grid_a, values, **fit_kwargs)
