"""hdae.plotting: figures are written, and the densities they draw are the right numbers."""
from __future__ import annotations

import math

import numpy as np
import pytest

import hdae
from hdae import plotting
from hdae.simulation import simulate
from hdae.theory import solve
from hdae.theory.transport import projected_law

_CACHE: dict = {}


@pytest.fixture
def pair(small_problem):
    """(theory, simulation) of the small problem, 2 replicas, with samples at theta 0 and 0.5."""
    key = ("pair", small_problem.config_text)
    if key not in _CACHE:
        sim = simulate(small_problem, replicas=2, device="cpu")
        _CACHE[key] = (solve(init_from=sim), sim)
    return _CACHE[key]


@pytest.fixture
def no_samples(small_problem):
    key = ("bare", small_problem.config_text)
    if key not in _CACHE:
        sim = simulate(small_problem, device="cpu", sample=False)
        _CACHE[key] = (solve(init_from=sim, sample=False), sim)
    return _CACHE[key]


def _png_pixels(path):
    from matplotlib import image

    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    return image.imread(path)


def _check_png(path, min_bytes=20_000):
    assert path.is_file() and path.stat().st_size > min_bytes
    px = _png_pixels(path)
    assert px.shape[0] > 300 and px.shape[1] > 500
    rgb = px[..., :3]
    assert rgb.std() > 0.05  # not a blank canvas
    return rgb


# ----------------------------------------------------------------------------- files
@pytest.mark.parametrize("what", ["density", "training"])
def test_plot_file_two_files_in_either_order(pair, tmp_path, what):
    theory, sim = pair
    a = plotting.plot_file(theory, sim, tmp_path / "a.png", what)
    b = plotting.plot_file(sim, theory, tmp_path / "b.png", what)
    assert a == tmp_path / "a.png"
    ra, rb = _check_png(a), _check_png(b)
    assert ra.shape == rb.shape and np.allclose(ra, rb)  # the order of the files does not matter


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("what", ["density", "training"])
def test_plot_file_one_file(pair, tmp_path, which, what):
    out = plotting.plot_file(pair[which], None, tmp_path / "sub" / "one.png", what)
    _check_png(out, min_bytes=10_000)


def test_density_needs_samples(no_samples, pair, tmp_path):
    theory, sim = no_samples
    for main, other in ((theory, sim), (sim, None), (theory, None)):
        with pytest.raises(ValueError, match="no generated samples"):
            plotting.plot_file(main, other, tmp_path / "x.png", "density")
    assert not (tmp_path / "x.png").exists()
    # 'auto' falls back to the training curves without samples and picks densities with them
    _check_png(plotting.plot_file(theory, sim, tmp_path / "auto.png", "auto"))
    drawn = []
    orig = plotting.plot_densities
    try:
        plotting.plot_densities = lambda *a, **k: drawn.append("density") or orig(*a, **k)
        plotting.plot_file(pair[0], pair[1], tmp_path / "auto2.png", "auto")
    finally:
        plotting.plot_densities = orig
    assert drawn == ["density"]


def test_bad_arguments(pair, tmp_path):
    theory, sim = pair
    with pytest.raises(ValueError, match="two theory files"):
        plotting.plot_file(theory, theory, tmp_path / "x.png", "training")
    with pytest.raises(ValueError, match="what must be"):
        plotting.plot_file(theory, sim, tmp_path / "x.png", "contours")
    with pytest.raises(ValueError, match="replica 5 out of range"):
        plotting.plot_densities(theory, sim, replica=5)


# ----------------------------------------------------------------------------- figure content
def test_density_panels(pair):
    theory, sim = pair
    fig = plotting.plot_densities(theory, sim, grid=60)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title() for ax in panels] == [r"$\theta$ = 0", r"$\theta$ = 0.5"]
    assert np.allclose(sim.sample.theta, [0.0, 0.5])
    # common limits, covering the target means +- 3 std
    lims = {(ax.get_xlim(), ax.get_ylim()) for ax in panels}
    assert len(lims) == 1
    (x0, x1), (y0, y1) = lims.pop()
    means = theory.target["means"]
    assert x0 < means[:, 0].min() - 3 and x1 > means[:, 0].max() + 3 and y0 < means[:, 1].min() - 3
    for ax in panels:  # histogram + theory contours + target contours in every panel
        assert ax.collections, "nothing drawn"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(s.startswith("simulation") for s in labels) and any(s.startswith("theory") for s in labels)
    assert any(s.startswith("target") for s in labels)


def test_training_colours_shared(pair):
    theory, sim = pair
    fig = plotting.plot_training(theory, sim)
    ax = next(a for a in fig.axes if a.get_title().startswith("M "))
    lines = [ln for ln in ax.get_lines() if len(ln.get_xdata())]
    r, K = sim.train.M.shape[2:]
    assert len(lines) == 2 * r * K  # simulation mean + theory, per entry
    for s_line, t_line in zip(lines[::2], lines[1::2]):
        assert s_line.get_color() == t_line.get_color()
        assert s_line.get_linestyle() == "-" and t_line.get_linestyle() != "-"
    np.testing.assert_allclose(lines[0].get_ydata(), sim.train.M[:, :, 0, 0].mean(0))
    np.testing.assert_allclose(lines[1].get_ydata(), theory.train.M[:, :, 0, 0].mean(0))
    assert len({ln.get_color() for ln in lines}) == r * K
    assert ax.get_xlabel() == r"training time $\theta$"
    # one replica: the simulation line is that replica, the theory line its own trajectory
    fig = plotting.plot_training(theory, sim, replica=1, stats=("Q",))
    lines = [ln for ln in fig.axes[0].get_lines() if len(ln.get_xdata())]
    np.testing.assert_allclose(lines[0].get_ydata(), sim.train.Q[1, :, 0, 0])
    np.testing.assert_allclose(lines[1].get_ydata(), theory.train.Q[1, :, 0, 0])


# ----------------------------------------------------------------------------- numbers
def _grid_around(theory, j, n=200):
    x = theory.sample.projected[:, j].reshape(-1, 2)
    lo, hi = x.min(0), x.max(0)
    lims = [(a - 0.6 * (b - a) - 0.1, b + 0.6 * (b - a) + 0.1) for a, b in zip(lo, hi)]
    return plotting.density_grid(lims, n)


@pytest.mark.parametrize("j", [0, 1])
@pytest.mark.parametrize("smoothing", [None, "auto"])
def test_theory_density_integrates_to_one(pair, j, smoothing):
    theory, _ = pair
    _, points, cell = _grid_around(theory, j)
    dens = plotting.theory_density(theory, j, points, smoothing=smoothing, replica=0)
    assert np.all(dens >= 0)
    assert dens.sum() * cell == pytest.approx(1.0, abs=0.03)


def test_theory_density_is_the_exact_projected_law(pair):
    """smoothing=None draws projected_law(Z, Q, G, S).density with Q, G at the sampled checkpoint."""
    theory, _ = pair
    j = 1
    i = int(np.argmin(np.abs(theory.train.theta - theory.sample.theta[j])))
    assert theory.train.theta[i] == pytest.approx(0.5)
    _, points, _ = _grid_around(theory, j, 40)
    Z = theory.sample.Z[1, j]
    law = projected_law(Z, theory.train.Q[1, i], theory.train.G[1, i], float(theory.sample.S[1, j]))
    assert not law.degenerate
    got = plotting.theory_density(theory, j, points, smoothing=None, max_components=len(Z), replica=1)
    np.testing.assert_allclose(got, law.density(points), rtol=1e-10, atol=1e-14)
    # 'pool' averages the trajectories
    both = plotting.theory_density(theory, j, points, smoothing=None, max_components=2 * len(Z), replica=None)
    zero = plotting.theory_density(theory, j, points, smoothing=None, max_components=len(Z), replica=0)
    np.testing.assert_allclose(both, 0.5 * (got + zero), rtol=1e-10, atol=1e-14)


def test_smoothing_only_widens(rng):
    means = rng.standard_normal((400, 2)) * [3.0, 0.5]
    narrow = np.diag([1e-4, 4e-4])
    C = plotting.smoothed_covariances(means, narrow)
    assert C.shape == (400, 2, 2)
    assert np.linalg.eigvalsh(C - narrow).min() > -1e-12  # never narrower than the exact kernel
    h2 = 400 ** (-1 / 3)  # Scott factor squared in 2-D
    assert np.median(C[:, 0, 0]) == pytest.approx(h2 * 9.0, rel=0.5)
    wide = np.diag([50.0, 50.0])  # already wider than any bandwidth: unchanged
    np.testing.assert_allclose(plotting.smoothed_covariances(means, wide), np.broadcast_to(wide, (400, 2, 2)),
                               atol=1e-12)


def test_target_density_on_the_plotting_grid(pair):
    theory, sim = pair
    lims = plotting.density_limits(theory, sim)
    _, points, cell = plotting.density_grid(lims, 150)
    assert plotting.target_density(sim, points).sum() * cell == pytest.approx(1.0, abs=0.02)
    # three clusters N(c, I): the density at a centroid
    c = sim.target["means"]
    expected = sum(np.exp(-0.5 * np.sum((c[0] - ck) ** 2)) for ck in c) / (3 * 2 * math.pi)
    assert plotting.target_density(sim, c[:1])[0] == pytest.approx(expected, rel=1e-12)


def test_target_marginal_of_three_coordinates():
    t = {"weights": np.array([1.0, 3.0]), "means": np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 5.0]]),
         "covariances": np.array([np.diag([1.0, 2.0, 3.0]), [[2.0, 0.5, 0.3], [0.5, 1.0, 0.2], [0.3, 0.2, 4.0]]])}
    res = hdae.Result(kind="simulation", config_text="", seed=0, d=10, train=None, target=t)
    w, m, cv = plotting.target_marginal(res, 2)
    np.testing.assert_allclose(w, [0.25, 0.75])
    np.testing.assert_allclose(m, t["means"][:, :2])
    np.testing.assert_allclose(cv[1], [[2.0, 0.5], [0.5, 1.0]])
    _, points, cell = plotting.density_grid([(-9, 9), (-9, 9)], 180)
    assert plotting.target_density(res, points).sum() * cell == pytest.approx(1.0, abs=1e-3)
    # the 1-D marginal, on a fine line
    _, line, dx = plotting.density_grid([(-12, 12)], 2000)
    assert plotting.target_density(res, line).sum() * dx == pytest.approx(1.0, abs=1e-6)


def test_hdr_levels_of_a_gaussian():
    """For N(0, I_2), the region holding mass m is the disc r^2 <= -2 ln(1-m): level (1-m)/(2 pi)."""
    _, points, cell = plotting.density_grid([(-6, 6), (-6, 6)], 300)
    dens = np.exp(-0.5 * (points ** 2).sum(1)) / (2 * math.pi)
    levels = plotting.hdr_levels(dens, cell, (0.25, 0.5, 0.9))
    np.testing.assert_allclose(levels, [(1 - m) / (2 * math.pi) for m in (0.9, 0.5, 0.25)], rtol=0.02)


# ----------------------------------------------------------------------------- formats and the command line
@pytest.mark.parametrize("ext, magic", [("pdf", b"%PDF-"), ("svg", b"<?xml"), ("png", b"\x89PNG"), ("PDF", b"%PDF-")])
def test_extension_picks_the_format(pair, tmp_path, ext, magic):
    out = plotting.plot_file(pair[0], pair[1], tmp_path / f"f.{ext}", "training")
    data = out.read_bytes()
    assert data.startswith(magic)
    if ext == "svg":
        assert b"<svg" in data[:2000]


@pytest.mark.parametrize("name", ["f.xyz", "f"])
def test_unsupported_extension_writes_nothing(pair, tmp_path, name):
    with pytest.raises(ValueError, match="cannot write a 'xyz' image" if "." in name else "has no extension"):
        plotting.plot_file(pair[0], None, tmp_path / name, "training")
    assert list(tmp_path.iterdir()) == []


def test_cli_plot_formats_and_options(pair, tmp_path):
    from click.testing import CliRunner

    from cli.main import cli

    theory, sim = pair
    tf, sf = tmp_path / "t.h5", tmp_path / "s.h5"
    theory.write(tf)
    sim.write(sf)
    run = lambda *a: CliRunner().invoke(cli, ["plot", *map(str, a)])  # noqa: E731
    for ext, magic in (("pdf", b"%PDF-"), ("svg", b"<?xml")):
        res = run(tf, "--against", sf, "-o", tmp_path / f"d.{ext}")
        assert res.exit_code == 0, res.output
        assert (tmp_path / f"d.{ext}").read_bytes().startswith(magic)
    res = run(tf, "-o", tmp_path / "d.xyz")
    assert res.exit_code == 1 and res.output.count("\n") == 1 and "cannot write a 'xyz' image" in res.output
    assert not (tmp_path / "d.xyz").exists()
    # sweep-only options are refused for a single run, not ignored
    for extra in (["--summary", "distance"], ["--axes", "train.lr"], ["--at", "train.lr=0.1"], ["--run", "theory"]):
        res = run(tf, "-o", tmp_path / "x.png", *extra)
        assert res.exit_code == 2 and f"{extra[0]} applies only to sweep files" in res.output, res.output
    assert not (tmp_path / "x.png").exists()
    help_text = " ".join(run("--help").output.split())
    assert "The image file to write; its extension (.png, .pdf, .svg) picks the format" in help_text
    assert "HDF5" not in help_text.split("--output FILE")[1].split("--what")[0]
