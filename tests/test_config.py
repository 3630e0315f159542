"""Problem files: built-in examples, defaults, --set overrides, round trips, and every error path."""
from __future__ import annotations

import math

import numpy as np
import pytest

import hdae
import hdae.targets
from hdae import tomlio
from hdae.config import ConfigError, load_problem, parse_value

from conftest import SMALL, needs_mnist

# ----------------------------------------------------------------------------- examples
NON_DATA_EXAMPLES = [n for n in hdae.example_names() if n != "fig3"]


def test_example_names_are_the_packaged_files():
    names = hdae.example_names()
    assert names == sorted(names)
    assert {"fig1", "fig2", "fig3", "fig6", "hetero", "swiss_roll"} <= set(names)
    for n in names:
        cfg = tomlio.loads(hdae.example_text(n))
        assert cfg["name"] == n  # the name inside the file is the file's name
    with pytest.raises(ConfigError) as err:
        hdae.example_text("no_such_example")
    assert err.value.key == "example" and "\n" not in str(err.value)


@pytest.mark.parametrize("name", NON_DATA_EXAMPLES)
def test_every_example_loads(name):
    raw = tomlio.loads(hdae.example_text(name))
    p = load_problem(example=name)
    assert p.name == name
    assert p.d == raw["target"]["d"]
    assert p.seed == raw["seed"]
    assert p.model.width == raw["model"]["width"]
    assert p.train.lr == raw["train"]["lr"]
    assert p.train.tau == raw["train"]["tau"]
    # checkpoints: 0, tau, the linspace, and every sampled training time
    ck = p.train.checkpoints
    assert ck[0] == 0.0 and ck[-1] == pytest.approx(p.train.tau)
    assert np.all(np.diff(ck) > 0)
    for th in p.sample.thetas:
        assert np.min(np.abs(ck - th)) < 1e-12
    # the observation basis is orthonormal
    E = p.observation_basis
    np.testing.assert_allclose(E.T @ E, np.eye(E.shape[1]), atol=1e-12)
    assert abs(p.target.weights.sum() - 1) < 1e-12


@needs_mnist
def test_mnist_example_loads():
    p = load_problem(example="fig3")
    assert p.target.kind == "mnist" and p.d == 784
    # two spikes = the two top eigenvalues of the MNIST-7 covariance, the rest in the bulk
    lat = p.target.latent_eigenvalues[0]
    assert lat.shape == (2,) and lat[0] >= lat[1] >= p.target.bulk.values.max()
    assert p.observation_basis.shape == (2, 2)
    np.testing.assert_allclose(np.abs(p.observation_basis), np.eye(2), atol=1e-12)
    # at d = 784 every MNIST eigenvalue is one coordinate: Lambda = tr(Sigma)/784
    spectrum = hdae.targets.mnist_spectrum(hdae.targets.resolve_data_dir(p.config["target"]["data_dir"]), 7, 300.0)
    np.testing.assert_allclose(lat, spectrum[:2], rtol=1e-12)
    assert p.target.average_eigenvalue(784) == pytest.approx(spectrum.sum() / 784, rel=1e-9)


def test_default_example_is_fig1():
    assert load_problem().name == "fig1"


# ----------------------------------------------------------------------------- defaults
MINIMAL = """
[target]
centroids = [[1.0, 0.0], [0.0, 1.0]]
[init]
scale = 0.5
"""


def test_defaults_filled_in():
    p = load_problem(MINIMAL)
    c = p.config
    assert {"name", "description", "seed", "target", "model", "init", "train", "sample", "observation", "theory",
            "simulation"} <= set(c)
    assert c["seed"] == 0 and c["name"] == "" and c["description"] == ""
    assert c["target"] == {"kind": "mixture", "d": 1000, "centroids": [[1.0, 0.0], [0.0, 1.0]],
                           "covariance": {"isotropic": 1.0}}
    expected = {
        "model": {"width": 2, "activation": "tanh", "skip": 0.0},
        "init": {"scale": 0.5, "warm_norm": 0.0, "warm_directions": "centroids"},
        "train": {"lr": 0.2, "weight_decay": 0.0, "times": [0.5], "schedule": "linear", "tau": 3.0, "checkpoints": 31},
        "sample": {"n": 4000, "steps": 49, "t_end": 0.98, "eps": 0.0, "eps_schedule": "constant", "thetas": [3.0]},
        "observation": {"kind": "centroids", "dim": 2},
        "theory": {"integrator": "rk4", "dt": 0.05, "init": "realised", "spectral_bins": 0},
        "simulation": {"dtype": "float64", "chunk": 256, "sample_batch": 4096},
    }
    for section, values in expected.items():  # (sections may gain new keys: check the documented ones)
        for key, value in values.items():
            assert c[section][key] == value, (section, key)
    assert "time_weights" not in c["train"] and "basis" not in c["observation"]  # optional, absent unless given
    # the typed objects
    assert p.d == 1000 and p.seed == 0
    np.testing.assert_array_equal(p.target.weights, [0.5, 0.5])
    np.testing.assert_array_equal(p.train.times, [0.5])
    np.testing.assert_array_equal(p.train.time_weights, [1.0])
    np.testing.assert_allclose(p.train.checkpoints, np.linspace(0, 3.0, 31), atol=1e-15)
    np.testing.assert_allclose(p.sample.grid, 0.98 * np.arange(50) / 49, atol=1e-15)
    np.testing.assert_array_equal(p.sample.thetas, [3.0])
    assert p.train.interpolant.name == "linear"
    assert p.sample.noise.eps == 0.0
    # default covariance: isotropic 1, latent directions take the bulk mean
    np.testing.assert_array_equal(p.target.latent_eigenvalues, np.ones((2, 2)))
    np.testing.assert_array_equal(p.target.bulk.values, np.ones((2, 1)))
    np.testing.assert_array_equal(p.observation_basis, np.eye(2))


def test_default_observation_depends_on_kind():
    g = load_problem("""
[target]
kind = "gaussian"
d = 50
covariance = { eigenvalues = [1.0, 0.5], latent = [4.0, 3.0] }
[init]
scale = 1.0
""")
    assert g.config["observation"]["kind"] == "principal"
    # principal directions of diag(4, 3) in latent coordinates: e1, e2
    np.testing.assert_allclose(g.observation_basis, np.eye(2), atol=1e-12)


def test_int_values_become_floats_where_numbers_are_expected():
    p = load_problem(SMALL, overrides=["train.lr=1", "train.tau=2"])
    assert isinstance(p.config["train"]["lr"], float) and p.config["train"]["lr"] == 1.0
    assert isinstance(p.train.tau, float)


# ----------------------------------------------------------------------------- overrides
def test_parse_value():
    assert parse_value("0.1") == 0.1
    assert parse_value("3") == 3
    assert parse_value('"relu"') == "relu"
    assert parse_value("relu") == "relu"  # bare string
    assert parse_value("[0.3, 0.7]") == [0.3, 0.7]
    assert parse_value("[[1.0, 2.0], [3.0, 4.0]]") == [[1.0, 2.0], [3.0, 4.0]]
    assert parse_value("true") is True
    assert math.isnan(parse_value("nan")) and parse_value("-inf") == -math.inf
    assert parse_value("{ isotropic = 2.0 }") == {"isotropic": 2.0}


def test_overrides_numbers_strings_arrays():
    p = load_problem(SMALL, overrides=["train.lr=0.1", 'model.activation="relu"'])
    assert p.train.lr == 0.1 and p.config["train"]["lr"] == 0.1
    assert p.model.activation == "relu"
    p = load_problem(SMALL, overrides=["model.activation=erf", "train.schedule=trigonometric"])  # bare strings
    assert p.model.activation == "erf" and p.train.interpolant.name == "trigonometric"
    np.testing.assert_allclose(p.train.interpolant.alpha(0.5), math.cos(math.pi / 4))
    p = load_problem(SMALL, overrides=["train.times=[0.3, 0.7]", "train.time_weights=[0.25, 0.75]"])
    np.testing.assert_array_equal(p.train.times, [0.3, 0.7])
    np.testing.assert_allclose(p.train.time_weights, [0.25, 0.75])
    p = load_problem(SMALL, overrides=["sample.thetas=[0.1, 0.25]", "train.checkpoints=[0.0, 0.2, 0.5]"])
    np.testing.assert_allclose(p.train.checkpoints, [0.0, 0.1, 0.2, 0.25, 0.5])
    np.testing.assert_array_equal(p.sample.thetas, [0.1, 0.25])
    # later overrides win
    assert load_problem(SMALL, overrides=["train.lr=0.1", "train.lr=0.3"]).train.lr == 0.3
    # spaces around '=' and in the value
    assert load_problem(SMALL, overrides=["train.lr = 0.05"]).train.lr == 0.05


def test_overrides_nested_keys():
    p = load_problem(SMALL, overrides=["target.covariance.isotropic=2.0"])
    assert p.config["target"]["covariance"] == {"isotropic": 2.0}
    np.testing.assert_array_equal(p.target.bulk.values, np.full((3, 1), 2.0))
    np.testing.assert_array_equal(p.target.latent_eigenvalues, np.full((3, 2), 2.0))
    assert p.target.average_eigenvalue(200) == pytest.approx(2.0)
    p = load_problem(SMALL, overrides=["target.covariance.latent=[0.5, 3.0]"])
    np.testing.assert_array_equal(p.target.latent_eigenvalues, np.tile([0.5, 3.0], (3, 1)))
    # a section that the file does not have
    p = load_problem(SMALL, overrides=["theory.dt=0.01", "simulation.dtype=float32"])
    assert p.theory.dt == 0.01 and p.simulation.dtype == "float32"
    # a whole inline table
    p = load_problem(SMALL, overrides=["target.covariance={ blocks = [[0.25, 4.0], [0.75, 0.5]] }"])
    np.testing.assert_allclose(p.target.bulk.values, np.tile([4.0, 0.5], (3, 1)))
    np.testing.assert_allclose(p.target.bulk.fractions, [0.25, 0.75])


def test_shortcuts_and_with_overrides(small_problem):
    p = load_problem(SMALL, d=321, seed=9, overrides=["seed=4"])
    assert p.d == 321 and p.seed == 9 and p.config["target"]["d"] == 321  # the shortcut wins
    q = small_problem.with_overrides("train.lr=0.1", **{"target.d": 250}, model__activation="relu")
    assert (q.train.lr, q.d, q.model.activation) == (0.1, 250, "relu")
    assert small_problem.train.lr == 0.2 and small_problem.d == 200  # the original is untouched
    assert small_problem.config["train"]["lr"] == 0.2


def test_override_syntax_errors():
    for bad, key in [("train.lr", "train.lr"), ("train..lr=1", "train..lr"), ("=1", ""), ("seed.x=1", "seed.x")]:
        with pytest.raises(ConfigError) as err:
            load_problem(SMALL, overrides=[bad])
        assert "\n" not in str(err.value)
        assert err.value.key == key


# ----------------------------------------------------------------------------- round trips
ROUND_TRIP_SOURCES = [pytest.param(SMALL, id="small")] + [
    pytest.param(hdae.example_text(n), id=n) for n in NON_DATA_EXAMPLES]


@pytest.mark.parametrize("text", ROUND_TRIP_SOURCES)
def test_resolved_config_round_trips(text):
    p = load_problem(text)
    assert tomlio.loads(p.config_text) == p.config
    q = load_problem(p.config_text)
    assert q.config == p.config
    # the text is a fixed point from the first reload on (key order may differ from the first writing:
    # a defaulted observation.kind is appended after the other observation keys)
    assert load_problem(q.config_text).config_text == q.config_text
    # and rebuilds the same physics
    np.testing.assert_array_equal(q.target.centroids, p.target.centroids)
    np.testing.assert_array_equal(q.target.latent_eigenvalues, p.target.latent_eigenvalues)
    np.testing.assert_array_equal(q.target.bulk.values, p.target.bulk.values)
    np.testing.assert_array_equal(q.target.bulk.breaks, p.target.bulk.breaks)
    np.testing.assert_array_equal(q.observation_basis, p.observation_basis)
    np.testing.assert_array_equal(q.train.checkpoints, p.train.checkpoints)
    np.testing.assert_array_equal(q.init.warm_directions, p.init.warm_directions)


@needs_mnist
def test_mnist_config_round_trips():
    p = load_problem(example="fig3")
    assert load_problem(p.config_text).config == p.config


def test_round_trip_with_overrides_and_dict_source(small_problem):
    p = load_problem(SMALL, overrides=["target.covariance=[{ isotropic = 1.0 }, { eigenvalues = [2.0, 1.0], latent = 0.5 },"
                                       " { blocks = [[0.5, 3.0], [0.5, 0.1]], latent = [1.0, 2.0] }]",
                                       "target.weights=[0.2, 0.3, 0.5]", "train.times=[0.2, 0.9]",
                                       "train.time_weights=[0.4, 0.6]", 'description="a \\"quoted\\" text\\nline 2"'])
    assert load_problem(p.config_text).config == p.config
    assert load_problem(p.config).config == p.config  # a dict source
    assert p.description == 'a "quoted" text\nline 2'


def test_tomlio_round_trip():
    cfg = {
        "name": "x", "seed": 3, "flag": True, "off": False, "f": 0.1, "big": 1e300, "tiny": 5e-324, "neg": -2.5e-9,
        "inf": math.inf, "minf": -math.inf,
        "s": 'quote " backslash \\ newline \n tab \t unicode é',
        "empty_list": [], "nested": [[1.0, 2.0], [3.0, 4.0]], "mixed_rows": [[1, 2], [3]],
        "inline": [{"isotropic": 1.0}, {"blocks": [[0.5, 2.0], [0.5, 1.0]], "latent": [1.0, 2.0]}],
        "table": {"a": 1, "sub": {"b": [0.5], "deeper": {"c": "d"}}, "after": 2.0},
        "empty_table": {},
        "spaced key": 1, "dotted.key": 2,
    }
    back = tomlio.loads(tomlio.dumps(cfg))
    assert back == cfg
    nan_back = tomlio.loads(tomlio.dumps({"v": math.nan}))["v"]
    assert math.isnan(nan_back)
    # numpy arrays and numpy integer scalars are written as plain TOML
    assert tomlio.loads(tomlio.dumps({"a": np.arange(3), "m": np.eye(2), "i": np.int64(7)})) == {
        "a": [0, 1, 2], "m": [[1.0, 0.0], [0.0, 1.0]], "i": 7}


def test_tomlio_numpy_float_scalar():
    assert tomlio.loads(tomlio.dumps({"a": np.float64(0.5), "b": [np.float64(1.5)]})) == {"a": 0.5, "b": [1.5]}


def test_dict_config_with_numpy_centroids_round_trips():
    cfg = tomlio.loads(SMALL)
    cfg["target"]["centroids"] = [[float(v) for v in row] for row in cfg["target"]["centroids"]]
    cfg["target"]["centroids"][0][0] = np.float64(2.0)
    p = load_problem(cfg)
    assert load_problem(p.config_text).config == load_problem(SMALL).config


def test_tomlio_control_characters():
    cfg = {"s": "windows\r\nline", "c": "bell\x07"}
    assert tomlio.loads(tomlio.dumps(cfg)) == cfg


# ----------------------------------------------------------------------------- error paths
def _config_error(source=SMALL, overrides=(), **kw) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_problem(source, overrides=overrides, **kw)
    err = info.value
    msg = str(err)
    assert "\n" not in msg and "\r" not in msg, msg
    assert msg.strip() == msg and msg
    return err


ERROR_CASES = [
    # unknown keys
    ("unknown-top", ["foo=1"], "foo"),
    ("unknown-section", ["train.foo=1"], "train.foo"),
    ("unknown-section-model", ["model.depth=2"], "model.depth"),
    ("unknown-target", ["target.foo=1"], "target.foo"),
    ("unknown-covariance", ["target.covariance.foo=1.0"], "target.covariance.foo"),
    ("unknown-cluster-covariance", ["target.covariance=[{isotropic=1.0},{foo=1.0},{isotropic=1.0}]"],
     "target.covariance[1].foo"),
    ("mnist-key-in-mixture", ["target.digit=3"], "target.digit"),
    # wrong types
    ("type-lr-string", ['train.lr="abc"'], "train.lr"),
    ("type-lr-bool", ["train.lr=true"], "train.lr"),
    ("type-width-float", ["model.width=2.5"], "model.width"),
    ("type-n-bool", ["sample.n=true"], "sample.n"),
    ("type-times-string", ['train.times="0.5"'], "train.times"),
    ("type-centroids", ['target.centroids="abc"'], "target.centroids"),
    ("type-centroids-ragged", ["target.centroids=[[1.0, 0.0], [1.0]]"], "target.centroids"),
    ("type-d-string", ['target.d="big"'], "target.d"),
    ("type-d-float", ["target.d=200.0"], "target.d"),
    ("type-seed-float", ["seed=1.5"], "seed"),
    ("type-name", ["name=3"], "name"),
    ("type-section", ["train=3"], "train"),
    ("type-covariance", ["target.covariance=3"], "target.covariance"),
    ("type-blocks-pair", ["target.covariance={blocks=[[0.5, 1.0, 2.0]]}"], "target.covariance.blocks"),
    ("two-spectra", ["target.covariance={isotropic=1.0, eigenvalues=[1.0]}"], "target.covariance"),
    ("covariance-list-length", ["target.covariance=[{isotropic=1.0}]"], "target.covariance"),
    ("unknown-target-kind", ['target.kind="foo"'], "target.kind"),
    ("unknown-schedule", ['train.schedule="cosine"'], "train.schedule"),
    ("unknown-dtype", ['simulation.dtype="float16"'], "simulation.dtype"),
    ("unknown-observation", ['observation.kind="foo"'], "observation.kind"),
    # weights
    ("weights-sum", ["target.weights=[0.5, 0.4, 0.2]"], "target.weights"),
    ("weights-length", ["target.weights=[0.5, 0.5]"], "target.weights"),
    ("weights-negative", ["target.weights=[1.5, -0.25, -0.25]"], "target.weights"),
    ("time-weights-sum", ["train.times=[0.3, 0.6]", "train.time_weights=[0.5, 0.6]"], "train.time_weights"),
    ("time-weights-length", ["train.time_weights=[0.5, 0.5]"], "train.time_weights"),
    ("time-weights-length2", ["train.times=[0.3, 0.6]", "train.time_weights=[1.0]"], "train.time_weights"),
    # negative eigenvalues
    ("negative-isotropic", ["target.covariance.isotropic=-1.0"], "target.covariance.isotropic"),
    ("negative-block", ["target.covariance={blocks=[[0.5, -1.0], [0.5, 1.0]]}"], "target.covariance.blocks"),
    ("negative-eigenvalue", ["target.covariance={eigenvalues=[1.0, -0.5]}"], "target.covariance.eigenvalues"),
    ("negative-latent", ["target.covariance={isotropic=1.0, latent=-1.0}"], "target.covariance.latent"),
    ("negative-latent-list", ["target.covariance={isotropic=1.0, latent=[1.0, -1.0]}"], "target.covariance.latent"),
    ("latent-length", ["target.covariance={isotropic=1.0, latent=[1.0]}"], "target.covariance.latent"),
    ("block-fractions", ["target.covariance={blocks=[[0.5, 2.0], [0.4, 1.0]]}"], "target.covariance.blocks"),
    ("block-fraction-negative", ["target.covariance={blocks=[[-0.5, 1.0], [1.5, 1.0]]}"], "target.covariance.blocks"),
    ("empty-eigenvalues", ["target.covariance={eigenvalues=[]}"], "target.covariance.eigenvalues"),
    # model
    ("width-zero", ["model.width=0"], "model.width"),
    ("activation", ['model.activation="gelu"'], "model.activation"),
    ("activation-bare", ["model.activation=gelu"], "model.activation"),
    # times
    ("times-zero", ["train.times=[0.0]"], "train.times"),
    ("times-one", ["train.times=[1.0]"], "train.times"),
    ("times-above", ["train.times=[0.5, 1.5]"], "train.times"),
    ("times-negative", ["train.times=[-0.2]"], "train.times"),
    ("times-empty", ["train.times=[]"], "train.times"),
    ("t-end-zero", ["sample.t_end=0.0"], "sample.t_end"),
    ("t-end-one", ["sample.t_end=1.0"], "sample.t_end"),
    ("t-end-above", ["sample.t_end=1.2"], "sample.t_end"),
    ("t-end-negative", ["sample.t_end=-0.5"], "sample.t_end"),
    # non-finite values
    ("lr-nan", ["train.lr=nan"], "train.lr"),
    ("lr-inf", ["train.lr=inf"], "train.lr"),
    ("eps-inf", ["sample.eps=inf"], "sample.eps"),
    ("skip-minus-inf", ["model.skip=-inf"], "model.skip"),
    ("scale-nan", ["init.scale=nan"], "init.scale"),
    ("dt-inf", ["theory.dt=inf"], "theory.dt"),
    ("centroid-nan", ["target.centroids=[[nan, 0.0], [1.0, 0.0], [0.0, 1.0]]"], "target.centroids"),
    ("isotropic-nan", ["target.covariance.isotropic=nan"], "target.covariance.isotropic"),
    ("isotropic-inf", ["target.covariance.isotropic=inf"], "target.covariance.isotropic"),
    ("eigenvalue-inf", ["target.covariance={eigenvalues=[inf]}"], "target.covariance.eigenvalues"),
    ("latent-nan", ["target.covariance={isotropic=1.0, latent=nan}"], "target.covariance.latent"),
    ("weights-nan", ["target.weights=[nan, 0.5, 0.5]"], "target.weights"),
    ("times-nan", ["train.times=[nan]"], "train.times"),
    ("time-weights-nan", ["train.time_weights=[nan]"], "train.time_weights"),
    ("checkpoints-nan", ["train.checkpoints=[0.0, nan]"], "train.checkpoints"),
    ("thetas-nan", ["sample.thetas=[nan]"], "sample.thetas"),
    ("warm-directions-nan", ["init.warm_directions=[[nan, 1.0]]"], "init.warm_directions"),
    ("basis-nan", ['observation.kind="explicit"', "observation.basis=[[nan, 1.0]]"], "observation.basis"),
    # tau, checkpoints, thetas
    ("tau-zero", ["train.tau=0.0"], "train.tau"),
    ("tau-negative", ["train.tau=-1.0"], "train.tau"),
    ("lr-zero", ["train.lr=0.0"], "train.lr"),
    ("weight-decay-negative", ["train.weight_decay=-0.1"], "train.weight_decay"),
    ("checkpoints-decreasing", ["train.checkpoints=[0.0, 0.3, 0.2]"], "train.checkpoints"),
    ("checkpoints-repeated", ["train.checkpoints=[0.1, 0.1]"], "train.checkpoints"),
    ("checkpoints-beyond-tau", ["train.checkpoints=[0.0, 0.3, 0.6]"], "train.checkpoints"),
    ("checkpoints-negative", ["train.checkpoints=[-0.1, 0.2]"], "train.checkpoints"),
    ("checkpoints-count", ["train.checkpoints=1"], "train.checkpoints"),
    ("checkpoints-empty", ["train.checkpoints=[]"], "train.checkpoints"),
    ("thetas-beyond-tau", ["sample.thetas=[0.0, 0.7]"], "sample.thetas"),
    ("thetas-just-beyond-tau", ["sample.thetas=[0.5000001]"], "sample.thetas"),
    ("thetas-decreasing", ["sample.thetas=[0.3, 0.1]"], "sample.thetas"),
    ("thetas-negative", ["sample.thetas=[-0.1]"], "sample.thetas"),
    ("sample-n-zero", ["sample.n=0"], "sample.n"),
    ("sample-steps-zero", ["sample.steps=0"], "sample.steps"),
    ("eps-negative", ["sample.eps=-1.0"], "sample.eps"),
    # initialisation
    ("init-zero", ["init.scale=0.0", "init.warm_norm=0.0"], "init"),
    ("warm-too-few-directions", ["init.scale=0.0", "model.width=4"], "init.scale"),
    ("warm-zero-centroid", ["target.centroids=[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]"], "init.warm_directions"),
    ("warm-directions-length", ["init.warm_directions=[[1.0, 0.0, 0.0]]"], "init.warm_directions"),
    # observation space
    ("principal-dim", ['observation.kind="principal"', "observation.dim=3"], "observation.dim"),
    ("observation-dim-zero", ["observation.dim=0"], "observation.dim"),
    ("explicit-length", ['observation.kind="explicit"', "observation.basis=[[1.0, 0.0, 0.0]]"], "observation.basis"),
    ("explicit-dependent", ['observation.kind="explicit"', "observation.basis=[[1.0, 0.0], [2.0, 0.0]]"],
     "observation.basis"),
    ("explicit-missing", ['observation.kind="explicit"'], "observation.basis"),
    # dimension
    ("d-equals-latent", ["target.d=2"], "target.d"),
    ("d-one", ["target.d=1"], "target.d"),
    ("seed-negative", ["seed=-1"], "seed"),
]


@pytest.mark.parametrize("overrides,key", [pytest.param(o, k, id=i) for i, o, k in ERROR_CASES])
def test_error_paths(overrides, key):
    err = _config_error(SMALL, overrides)
    assert err.key == key or err.key.startswith(key + "[") or err.key.startswith(key + "."), (err.key, key)
    assert str(err).startswith(err.key + ": ")
    assert key in str(err)


def test_error_d_shortcut_smaller_than_latent_dim():
    err = _config_error(SMALL, d=2)
    assert err.key == "target.d"
    swiss = hdae.example_text("swiss_roll")  # latent dimension 3
    assert _config_error(swiss, d=3).key == "target.d"
    assert load_problem(swiss, d=4).d == 4


def test_error_missing_target():
    err = _config_error("seed = 1\n[model]\nwidth = 2\n")
    assert err.key == "target" and "target" in str(err)


def test_error_missing_required_target_key():
    err = _config_error("[target]\nkind = \"mixture\"\n[init]\nscale = 1.0\n")
    assert err.key == "target.centroids"


def test_error_file_does_not_exist(tmp_path):
    for src in (tmp_path / "nope.toml", str(tmp_path / "nope.toml")):
        err = _config_error(src)
        assert err.key == "file" and "nope.toml" in str(err)


def test_error_invalid_toml():
    for text in ("seed = = 1\n[target]\n", "[target\nd = 3\n", "seed = 1\nseed = 2\n"):
        err = _config_error(text)
        assert err.key == "file" and "TOML" in str(err)


def test_file_source(tmp_path):
    path = tmp_path / "problem.toml"
    path.write_text(SMALL)
    assert load_problem(path).config == load_problem(SMALL).config
    assert load_problem(str(path)).config == load_problem(SMALL).config


def test_file_source_with_equals_sign_in_path(tmp_path):
    folder = tmp_path / "lr=0.1"
    folder.mkdir()
    path = folder / "problem.toml"
    path.write_text(SMALL)
    assert load_problem(str(path)).config == load_problem(SMALL).config


def test_error_mnist_data_dir_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("HDAE_MNIST_DIR", raising=False)
    empty = tmp_path / "no_mnist_here"
    empty.mkdir()
    text = f"""
[target]
kind = "mnist"
data_dir = "{empty.as_posix()}"
[init]
scale = 1.0
"""
    err = _config_error(text)
    assert err.key == "target.data_dir" and "no_mnist_here" in str(err)
    err = _config_error(text.replace(empty.as_posix(), (tmp_path / "absent").as_posix()))
    assert err.key == "target.data_dir"


def test_error_mnist_bad_digit():
    err = _config_error('[target]\nkind = "mnist"\ndigit = 12\n[init]\nscale = 1.0\n')
    assert err.key == "target.digit"


def test_error_both_file_and_example():
    with pytest.raises(ConfigError) as err:
        load_problem(SMALL, example="fig1")
    assert err.value.key == "example"


def test_error_manifold_points():
    base = '[target]\nkind = "manifold"\nmanifold = "swiss_roll"\nd = 100\n[init]\nscale = 1.0\n'
    assert _config_error(base, ["target.points=7"]).key == "target.points"
    assert _config_error(base, ["target.points=[7, 0]"]).key.startswith("target.points")
    assert _config_error(base, ['target.manifold="torus"']).key == "target.manifold"
    assert _config_error(base, ["target.scale=0.0"]).key == "target.scale"


def test_mnist_dir_from_the_environment_is_never_ignored(tmp_path, monkeypatch):
    """$HDAE_MNIST_DIR comes first; set to a folder without IDX files it is an error naming it, not a
    silent fall-back to target.data_dir."""
    empty = tmp_path / "typo_mnist"
    empty.mkdir()
    monkeypatch.setenv("HDAE_MNIST_DIR", str(empty))
    with pytest.raises(ConfigError) as info:
        hdae.targets.resolve_data_dir(hdae.targets.DEFAULT_MNIST_DIR)
    assert info.value.key == "target.data_dir" and "HDAE_MNIST_DIR" in str(info.value) and "typo_mnist" in str(info.value)
    # a folder with the IDX files (two empty-but-present pairs are enough to be found) is used as given
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (empty / name).write_bytes(b"")
    assert hdae.targets.resolve_data_dir("/nonexistent/elsewhere") == empty
