"""hdae.sweep_plot and `hdae plot` on sweep files: what the phase diagrams draw for successful,
diverged, failed and sample-less points, and the options refused where they do not apply."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import cli
from hdae import sweep, sweep_plot

from conftest import SMALL

FAST = ["theory.dt=0.1", "sample.n=200", "sample.steps=8", "sample.thetas=[0.5]"]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """init.scale = 0, 0.3 x theory.divergence = 1e6, 0.2 at init.warm_norm = 0, with a simulation
    of 2 replicas: scale 0 fails (w_0 = 0) at both, (0.3, 1e6) succeeds, (0.3, 0.2) diverges."""
    tmp = tmp_path_factory.mktemp("mixed")
    problem = tmp / "small.toml"
    problem.write_text(SMALL)
    out = tmp / "mixed.h5"
    spec = sweep.make_spec(problem, overrides=FAST + ["init.warm_norm=0.0"],
                           grid=["init.scale=0,0.3", "theory.divergence=1e6,0.2"], simulate=True, replicas=2)
    sweep.run_sweep(spec, out, serial=True)
    s = sweep.SweepFile(out)
    st = s.status_grid()
    assert (st[0] == sweep.FAILED).all() and st[1, 0] == sweep.SUCCESS and st[1, 1] == sweep.DIVERGED
    return out


@pytest.fixture(scope="module")
def bare(tmp_path_factory):
    """model.activation = relu, tanh without sampling (`hdae sweep --no-sample`)."""
    tmp = tmp_path_factory.mktemp("bare")
    problem = tmp / "small.toml"
    problem.write_text(SMALL)
    out = tmp / "bare.h5"
    spec = sweep.make_spec(problem, overrides=FAST, grid=["model.activation=relu,tanh"], sample=False)
    sweep.run_sweep(spec, out, serial=True)
    return out


def _close(fig):
    import matplotlib.pyplot as plt

    plt.close(fig)


def _crosses(ax):
    return [ln for ln in ax.get_lines() if ln.get_marker() == "x"]


# ----------------------------------------------------------------------------- line plots
def test_diverged_point_without_a_value_is_not_drawn_as_a_value(mixed):
    fig = sweep_plot.figure(mixed, "distance", ["theory.divergence"], {"init.scale": "0.3"})
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert lo < 0.2 and hi > 1e6  # every swept value on the axis
    (cross,) = _crosses(ax)
    np.testing.assert_allclose(cross.get_xdata(), [0.2])
    assert cross.get_label() == "diverged (no value)"
    # drawn on the axis frame (y in axes coordinates), not at a data value
    assert list(cross.get_ydata()) == [0.0]
    assert cross.get_transform().contains_branch_seperately(ax.transAxes)[1]
    assert not cross.get_transform().contains_branch_seperately(ax.transData)[1]
    assert "diverged (no value)" in [t.get_text() for t in ax.get_legend().get_texts()]
    line = ax.get_lines()[0]  # the values: none at the diverged point
    assert np.isnan(line.get_ydata()[list(line.get_xdata()).index(0.2)])
    # ticks at the swept values
    assert sorted(t.get_text() for t in ax.get_xticklabels()) == ["0.2", "1e+06"]
    _close(fig)


def test_diverged_point_with_a_value_is_crossed_at_it(mixed):
    s = sweep.SweepFile(mixed)
    reached = s.grid("theta_reached")[1, 1]
    assert 0 <= reached < 0.5
    fig = sweep_plot.figure(mixed, "theta_reached", ["theory.divergence"], {"init.scale": "0.3"})
    ax = fig.axes[0]
    (cross,) = _crosses(ax)
    np.testing.assert_allclose(cross.get_xdata(), [0.2])
    np.testing.assert_allclose(cross.get_ydata(), [reached])
    assert cross.get_transform().contains_branch_seperately(ax.transData) == (True, True)
    assert ax.get_ylim()[0] <= reached
    _close(fig)


def test_failed_point_is_hatched_and_on_the_axis(mixed):
    fig = sweep_plot.figure(mixed, "theta_reached", ["init.scale"], {"theory.divergence": "1e6"})
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert lo < 0 and hi > 0.3
    bands = [p for p in ax.patches if p.get_hatch()]
    assert len(bands) == 1
    xy = bands[0].get_patch_transform().transform(bands[0].get_path().vertices)
    x0, x1 = xy[:, 0].min(), xy[:, 0].max()
    assert x0 < 0 < x1 and x1 - x0 < 0.1  # a narrow band around scale = 0
    assert "invalid / failed" in [t.get_text() for t in ax.get_legend().get_texts()]
    assert sorted(t.get_text() for t in ax.get_xticklabels()) == ["0", "0.3"]
    _close(fig)


def test_simulation_run_averages_replicas_without_warnings(mixed):
    s = sweep.SweepFile(mixed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, status, _ = sweep_plot.select(s, "modes", ["init.scale", "theory.divergence"], run="simulation")
        fig = sweep_plot.figure(mixed, "modes", None, None, "simulation")
    modes = s.grid("modes", "simulation")  # (scale, divergence, replicas)
    assert np.isnan(v[0]).all() and status["failed"][0].tolist() == [1.0, 1.0]
    assert v[1, 0] == pytest.approx(modes[1, 0].mean())
    _close(fig)


def test_nan_mean():
    a = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = sweep_plot.nan_mean(a, axis=1)
    assert m[0] == 2.0 and np.isnan(m[1])
    assert sweep_plot.nan_mean(a, axis=(0, 1)) == 2.0


# ----------------------------------------------------------------------------- heat maps
def test_heat_map_cells_on_the_swept_values(mixed):
    fig = sweep_plot.figure(mixed, "theta_reached", ["init.scale", "theory.divergence"])
    ax = fig.axes[0]
    # one cell per swept pair, nothing outside: no axis position implies an unswept value
    assert ax.get_xlim() == (-0.5, 1.5) and ax.get_ylim() == (-0.5, 1.5)
    assert list(ax.get_xticks()) == [0, 1] and [t.get_text() for t in ax.get_xticklabels()] == ["0", "0.3"]
    assert list(ax.get_yticks()) == [0, 1] and [t.get_text() for t in ax.get_yticklabels()] == ["1e+06", "0.2"]
    mesh = ax.collections[0]
    assert mesh.get_array().shape == (2, 2)
    # failed column (scale 0) hatched grey; the diverged cell (0.3, 0.2) crossed at its centre
    hatched = [p for p in ax.patches if p.get_hatch() and np.isfinite(p.get_x())]
    assert sorted((p.get_x(), p.get_y(), p.get_width()) for p in hatched) == [(-0.5, -0.5, 1), (-0.5, 0.5, 1)]
    crosses = [c for c in ax.collections[1:] if len(c.get_offsets())]
    assert len(crosses) == 1 and crosses[0].get_offsets().tolist() == [[1.0, 1.0]]
    _close(fig)


# ----------------------------------------------------------------------------- nothing to draw
@pytest.mark.parametrize("summary", ["modes", "distance"])
def test_no_sample_sweep_refuses_sample_summaries(bare, tmp_path, summary):
    png = tmp_path / "x.png"
    args = ["plot", str(bare), "-o", str(png)] + ([] if summary == "modes" else ["--summary", summary])
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output
    assert res.output.count("\n") == 1 and res.output.startswith("Error:")
    assert f"no values of '{summary}'" in res.output and "--no-sample" in res.output
    assert "theta_reached" in res.output and "b_final" in res.output  # what can be drawn instead
    assert not png.exists()


def test_string_axis_labels_unquoted(bare):
    fig = sweep_plot.figure(bare, "theta_reached")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["relu", "tanh"]
    assert ax.get_xlim() == (-0.5, 1.5)
    _close(fig)


# ----------------------------------------------------------------------------- command line
def test_cli_sweep_formats_and_refused_options(mixed, tmp_path):
    pdf = tmp_path / "p.pdf"
    res = CliRunner().invoke(cli, ["plot", str(mixed), "--summary", "theta_reached", "-o", str(pdf)])
    assert res.exit_code == 0, res.output
    assert pdf.read_bytes()[:5] == b"%PDF-"
    for extra in (["--what", "training"], ["--generation", "1"]):
        out = tmp_path / "w.png"
        res = CliRunner().invoke(cli, ["plot", str(mixed), "-o", str(out), *extra])
        assert res.exit_code == 2 and f"{extra[0]} does not apply to a sweep file" in res.output
        assert not out.exists()
    res = CliRunner().invoke(cli, ["plot", str(mixed), "-o", str(tmp_path / "x.bmpx")])
    assert res.exit_code == 1 and "cannot write a 'bmpx' image" in res.output
    assert not (tmp_path / "x.bmpx").exists()
