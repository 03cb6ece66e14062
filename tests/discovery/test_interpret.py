"""Drift surfaces, heatmaps and closed-form fits (``discovery.interpret``)."""

import struct

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from discovery import drift as drift_lib
from discovery import (
    envs,  # noqa: F401  (sets XLA_FLAGS before any computation)
    interpret,
)

pytestmark = pytest.mark.timeout(120)

RATIOS = np.linspace(0.5, 2.0, 41)
ADVANTAGES = np.linspace(-2.0, 2.0, 41)
GRID_R, GRID_A = np.meshgrid(RATIOS, ADVANTAGES, indexing="ij")

DPO_TERMS = {
    "[A>=0] (r-1)A": 1.0,
    "[A>=0] tanh((r-1)A/2)": -2.0,  # -alpha tanh(x / alpha), alpha = 2
    "[A<0] log(r)A": 1.0,
    "[A<0] tanh(log(r)A/0.6)": -0.6,  # -beta tanh(y / beta), beta = 0.6
}
PPO_TERMS = {
    "[A>=0] (r-1)A": 1.0,
    "[A>=0] |A|": -0.2,
    "[A<0] (r-1)A": 1.0,
    "[A<0] |A|": -0.2,
}


def _params(drift, seed=0):
    return drift.init(jax.random.key(seed))


def _dpo_values():
    dpo = drift_lib.make_dpo_drift()
    return interpret.drift_surface(dpo, _params(dpo), RATIOS, ADVANTAGES)


def _png_size(path):
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def _assert_recovers(fit, expected, atol):
    assert set(fit.terms) == set(expected), fit.formula()
    for term, value in expected.items():
        np.testing.assert_allclose(fit.coefficient(term), value, atol=atol, err_msg=term)


# --- surfaces -----------------------------------------------------------------------


@pytest.mark.cross_program
def test_drift_surface_matches_direct_calls_and_vanishes_at_ratio_one():
    dpo = drift_lib.make_dpo_drift()
    ratios = np.array([0.5, 0.8, 1.0, 1.3, 2.0, 3.0, 1.1])
    advantages = np.array([-2.0, -0.5, 0.0, 0.7, 2.0])
    surface = interpret.drift_surface(dpo, _params(dpo), ratios, advantages)
    assert surface.shape == (7, 5)
    grid_r, grid_a = np.meshgrid(ratios, advantages, indexing="ij")
    direct = drift_lib.dpo_drift(jnp.asarray(grid_r, jnp.float32), jnp.asarray(grid_a, jnp.float32))
    # One jitted, vmapped program against op-by-op calls: equal to float rounding.
    np.testing.assert_allclose(surface, direct, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(surface[2], 0.0)  # r = 1
    assert surface.max() > 0.3


@pytest.mark.cross_program
def test_drift_surface_progress_for_temporally_aware_drifts():
    ta_lpo = drift_lib.make_drift("ta_lpo", hidden=16, output_scale=1.0)
    params = _params(ta_lpo, seed=3)
    with pytest.raises(ValueError, match="progress"):
        interpret.drift_surface(ta_lpo, params, RATIOS, ADVANTAGES)
    early = interpret.drift_surface(ta_lpo, params, RATIOS, ADVANTAGES, progress=0.0)
    late = interpret.drift_surface(ta_lpo, params, RATIOS, ADVANTAGES, progress=1.0)
    assert np.max(np.abs(early - late)) > 1e-3
    direct = ta_lpo(params, jnp.asarray(GRID_R, jnp.float32), jnp.asarray(GRID_A, jnp.float32), 1.0)
    # Jitted and vmapped against op by op (another program): equal to float rounding.
    np.testing.assert_allclose(late, direct, rtol=1e-5, atol=1e-6)
    # DPO ignores progress: None is accepted and equals any progress.
    dpo = drift_lib.make_dpo_drift()
    np.testing.assert_array_equal(
        interpret.drift_surface(dpo, _params(dpo), RATIOS, ADVANTAGES),
        interpret.drift_surface(dpo, _params(dpo), RATIOS, ADVANTAGES, progress=0.9),
    )
    assert interpret.is_temporally_aware(drift_lib.make_drift("ta_lpo"))
    assert not interpret.is_temporally_aware(dpo, _params(dpo))


# --- plots --------------------------------------------------------------------------


def test_plot_dpo_with_references(tmp_path):
    dpo, ppo = drift_lib.make_dpo_drift(), drift_lib.make_ppo_drift()
    path = interpret.plot_drift_surface(
        dpo,
        _params(dpo),
        tmp_path / "figs" / "dpo.png",
        title="DPO",
        reference={"PPO-clip": (ppo, _params(ppo))},
        num=41,
    )
    assert path == tmp_path / "figs" / "dpo.png"
    assert path.stat().st_size > 5_000
    width, _ = _png_size(path)
    assert width == round(3.8 * 2 * 110)  # DPO and PPO: two panels, no progress panels
    assert sorted(p.name for p in path.parent.iterdir()) == ["dpo.png"]  # no temp file left


def test_plot_ta_lpo_one_panel_per_progress(tmp_path):
    ta_lpo = drift_lib.make_drift("ta_lpo")
    dpo = drift_lib.make_dpo_drift()
    path = interpret.plot_drift_surface(
        ta_lpo,
        _params(ta_lpo),
        tmp_path / "ta_lpo.png",
        progress_values=(0.0, 0.5, 1.0),
        reference={"DPO": (dpo, _params(dpo))},
        num=41,
    )
    width, _ = _png_size(path)
    assert width == round(3.8 * 4 * 110)  # three progress panels and DPO


# --- closed-form fits ---------------------------------------------------------------


def test_fit_recovers_dpo_formula():
    fit = interpret.fit_closed_form(GRID_R, GRID_A, _dpo_values())
    _assert_recovers(fit, DPO_TERMS, atol=1e-4)
    assert fit.relu
    assert fit.max_abs_error < 1e-3
    assert fit.r2 > 0.999999


def test_stlsq_recovers_dpo_formula_without_noise():
    fit = interpret.fit_closed_form(GRID_R, GRID_A, _dpo_values(), method="stlsq")
    _assert_recovers(fit, DPO_TERMS, atol=1e-3)
    assert fit.max_abs_error < 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_dpo_is_robust_to_noise(seed):
    values = _dpo_values()
    noisy = values + np.random.default_rng(seed).normal(0.0, 1e-3, values.shape)
    fit = interpret.fit_closed_form(GRID_R, GRID_A, noisy)
    _assert_recovers(fit, DPO_TERMS, atol=2e-2)
    assert fit.rmse < 2e-3


def test_fit_ppo_clip_is_exact_with_the_offset_term():
    ppo = drift_lib.make_ppo_drift(clip_eps=0.2)
    values = interpret.drift_surface(ppo, _params(ppo), RATIOS, ADVANTAGES)
    fit = interpret.fit_closed_form(GRID_R, GRID_A, values)
    _assert_recovers(fit, PPO_TERMS, atol=1e-4)
    assert fit.max_abs_error < 1e-5


def test_error_fields_are_honest_when_the_basis_cannot_fit():
    ppo = drift_lib.make_ppo_drift(clip_eps=0.2)
    values = interpret.drift_surface(ppo, _params(ppo), RATIOS, ADVANTAGES)
    terms = {k: v for k, v in interpret.candidate_terms().items() if not k.endswith("|A|")}
    fit = interpret.fit_closed_form(GRID_R, GRID_A, values, terms=terms)
    residual = fit.predict(GRID_R, GRID_A) - values
    assert fit.max_abs_error > 1e-2  # no hinge without |A|: a visibly worse fit
    np.testing.assert_allclose(fit.max_abs_error, np.max(np.abs(residual)), rtol=1e-9)
    np.testing.assert_allclose(fit.rmse, np.sqrt(np.mean(residual**2)), rtol=1e-9)
    assert fit.r2 < 1.0


def test_predict_reproduces_data_and_formula_names_terms():
    values = _dpo_values()
    fit = interpret.fit_closed_form(GRID_R, GRID_A, values)
    prediction = fit.predict(GRID_R, GRID_A)
    assert prediction.shape == GRID_R.shape
    assert np.all(prediction >= 0.0)
    np.testing.assert_allclose(prediction, values, atol=1e-3)
    formula = fit.formula()
    assert formula.startswith("A>=0: ReLU(1.000 (r-1)A - 2.000 tanh((r-1)A/2)); A<0: ReLU(")
    for term in fit.terms:
        assert term.split("] ", 1)[1] in formula
    assert "0.600 tanh(log(r)A/0.6)" in formula
    saved = fit.to_dict()
    assert saved["formula"] == formula
    rebuilt = interpret.ClosedForm(
        terms=tuple(saved["terms"]),
        coefficients=saved["coefficients"],
        rmse=saved["rmse"],
        r2=saved["r2"],
        max_abs_error=saved["max_abs_error"],
        relu=saved["relu"],
    )
    np.testing.assert_array_equal(rebuilt.predict(GRID_R, GRID_A), prediction)


def test_fit_without_relu_recovers_a_plain_sum():
    terms = interpret.candidate_terms()
    truth = 0.5 * terms["[A>=0] (r-1)^2"](GRID_R, GRID_A) - 0.3 * terms["[A<0] log(r)A"](
        GRID_R, GRID_A
    )
    fit = interpret.fit_closed_form(GRID_R, GRID_A, truth, relu=False)
    _assert_recovers(fit, {"[A>=0] (r-1)^2": 0.5, "[A<0] log(r)A": -0.3}, atol=1e-8)
    assert not fit.relu and "ReLU" not in fit.formula()


def test_fit_learned_drift_on_ta_lpo_at_init_finds_ppo():
    ta_lpo = drift_lib.make_drift("ta_lpo")
    with pytest.raises(ValueError, match="progress"):
        interpret.fit_learned_drift(ta_lpo, _params(ta_lpo))
    fit = interpret.fit_learned_drift(ta_lpo, _params(ta_lpo), progress=0.5)
    # TA-LPO starts as ReLU(PPO-clip - 1e-4): PPO's formula up to the margin.
    _assert_recovers(fit, PPO_TERMS, atol=1e-3)
    assert fit.max_abs_error < 2e-4


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="equal sizes"):
        interpret.fit_closed_form(RATIOS, ADVANTAGES[:-1], RATIOS)
    with pytest.raises(ValueError, match="method"):
        interpret.fit_closed_form(GRID_R, GRID_A, _dpo_values(), method="lasso")
