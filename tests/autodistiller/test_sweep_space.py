"""Search-space files: what a valid file becomes, and clear messages for bad ones."""
import pytest

from distiller.autodistiller.space import SearchSpace, SpaceError, load_space

GOOD = """
name: demo
params:
  augmentation: [none, "corpus:rte-train+eda"]
  mixup: false
  mapping: [skip, "pairs:0-0,2-6,4-12"]
  inter_loss: [mse, mi]
  mi_alpha: [0.0, 0.9]
  pred_loss: kl
  temperature: {low: 1.0, high: 4.0}
  w_inter: {choices: [0.5, 1.0]}
  lr: {low: 1.0e-5, high: 1.0e-4, log: true}
  student: [tiny-bert]
fixed: {epochs: 2, batch_size: 8}
grid_points: 2
"""


def _write(tmp_path, text):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


def test_good_space_candidates_and_train_config(tmp_path):
    space = load_space(_write(tmp_path, GOOD))
    assert space.names[:3] == ["augmentation", "mixup", "mapping"]
    cands = list(space.candidates())
    # 2 aug x 2 mapping x (mse + mi x 2 alphas = 3) x 2 temps x 2 w_inter x 2 lrs
    assert len(cands) == 2 * 2 * 3 * 2 * 2 * 2
    assert all(("mi_alpha" in c) == (c["inter_loss"] == "mi") for c in cands)
    none = SearchSpace.from_dict({"params": {"mapping": ["skip", "last"],
                                             "inter_loss": ["none", "mse"], "w_inter": [0.1, 1]}})
    # the mapping and the weight of an intermediate loss are not drawn without one
    assert list(none.candidates()) == [
        {"inter_loss": "none"}] + [{"inter_loss": "mse", "mapping": m, "w_inter": w}
                                   for m in ("skip", "last") for w in (0.1, 1)]
    optuna = pytest.importorskip("optuna")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = [none.suggest(study.ask()) for _ in range(20)]
    assert {d["inter_loss"] for d in drawn} == {"none", "mse"}
    assert all(sorted(d) == (["inter_loss"] if d["inter_loss"] == "none"
                             else ["inter_loss", "mapping", "w_inter"]) for d in drawn)
    assert [list(d) for d in drawn if len(d) > 1][0] == ["mapping", "inter_loss", "w_inter"]
    assert sorted({c["lr"] for c in cands}) == pytest.approx([1e-5, 1e-4])
    values = {"augmentation": "corpus:rte-train+eda", "mixup": False,
              "mapping": "pairs:0-0,2-6,4-12", "inter_loss": "mse", "mi_alpha": 0.0,
              "pred_loss": "kl", "temperature": 2.0, "w_inter": 1.0, "lr": 3e-5,
              "student": "tiny-bert"}
    config = space.to_train_config(values, task="rte", cache="/c", run_dir="/r")
    assert config["train_corpus"] == "rte-train+eda"
    assert config["mapping"] == "explicit" and config["mapping_pairs"] == [[0, 0], [2, 6], [4, 12]]
    assert "mi_alpha" not in config and "mixup" not in config
    assert config["epochs"] == 2 and config["task"] == "rte" and config["dev_corpus"] == "rte-dev"
    none = space.to_train_config({**values, "augmentation": "none"}, task="rte", cache="/c",
                                 run_dir="/r")
    assert none["train_corpus"] == "rte-train"
    plain = space.to_train_config({**values, "inter_loss": "none"}, task="rte", cache="/c",
                                  run_dir="/r")
    assert "w_inter" not in plain and config["w_inter"] == 1.0  # no intermediate loss, no weight
    assert "mapping" not in plain and "mapping_pairs" not in plain  # and no layer pairs
    mixed = space.to_train_config({**values, "mixup": True}, task="rte", cache="/c", run_dir="/r")
    assert mixed["train_corpus"] == "rte-train+eda+mixup-n1-a0.4" and "mixup" not in mixed


def test_train_config_is_accepted_by_trainer_config():
    config_mod = pytest.importorskip("distiller.distill_train.config")
    space = SearchSpace.from_dict({"params": {"inter_loss": ["mi"], "mi_alpha": [0.5],
                                              "mapping": ["pairs:1-2"], "student": ["s"]}})
    values = next(space.candidates())
    cfg = config_mod.TrainConfig.from_dict(
        space.to_train_config(values, task="rte", cache="/c", run_dir="/r"))
    assert cfg.mi_alpha == 0.5 and cfg.inter_loss == "mi" and cfg.mapping_pairs == ((1, 2),)


@pytest.mark.parametrize("text, message", [
    ("params: {inter_loss: [mse], colour: [red]}", "unknown factors: 'colour'; known factors: "),
    ("params: {inter_loss: []}", "params.inter_loss: got []; expected at least one value"),
    ("params: {inter_loss: {choices: []}}", "params.inter_loss.choices: got []; expected at "
                                          "least one value"),
    ("params: {inter_loss: [mse, l1]}", "params.inter_loss: got 'l1'; expected one of ['none', "),
    ("params: {temperature: {low: 4, high: 1}}", "'low' must be below 'high'"),
    ("params: {lr: {low: 0, high: 0.1, log: true}}", "expected a number in (0, 1]"),
    ("params: {temperature: {low: -1, high: 2}}", "params.temperature.low: got -1; expected a "
                                                "positive number"),
    ("params: {temperature: {low: 1}}", "needs both 'low' and 'high'"),
    ("params: {temperature: {low: 1, high: 2, lo: 3}}", "unknown keys: 'lo' (did you mean 'low'?)"),
    ("params: {mixup: [yes, 'no']}", "expected true or false"),
    ("params: {mi_alpha: [1.5]}", "expected a number in [0, 1]"),
    ("params: {w_kd: ['1.0']}", "params.w_kd: got '1.0'; expected a number >= 0"),
    ("params: {mapping: {low: 1, high: 2}}", "is categorical"),
    ("params: {mapping: [diagonal]}", "expected skip, last, emd"),
    ("params: {student: [s]}\nsteps: 3", "unknown top-level keys: 'steps'; allowed keys are "),
    ("params: {}", "'params': got {}; expected a non-empty mapping of factors"),
    ("- a\n- b", "expected a mapping"),
    ("params: {student: [s]}\nfixed: {inter_loss: mse}", "given under 'fixed'"),
    ("params: {student: [s]}\nfixed: {task: rte}", "set by the sweep"),
    ("params: {student: [s]}\ngrid_points: 1", "'grid_points': got 1; expected an integer >= 2"),
    ("params: {inter_loss: [mse, mse]}", "got ['mse', 'mse']; expected distinct values "
                                         "(duplicate choices)"),
    ("params: [oops", "not valid YAML"),
])
def test_bad_space_files_are_rejected_with_clear_messages(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError) as err:
        load_space(path)
    assert message in str(err.value)
    assert path in str(err.value)


def test_fixed_keys_checked_against_trainer_config(tmp_path):
    pytest.importorskip("distiller.distill_train.config")
    with pytest.raises(SpaceError, match=r"unknown trainer settings under 'fixed': 'epoch' "
                                         r"\(did you mean 'epochs'\?\)"):
        load_space(_write(tmp_path, "params: {student: [s]}\nfixed: {epoch: 3}"))


def test_shipped_space_offers_contextual_augmentation():
    """The shipped space names the masked LM `make mlm` builds; naming its corpus (what
    `recommend` does) needs no model, and a sweep builds that corpus like the EDA one."""
    from distiller.autodistiller.corpora import needed_corpora
    from distiller.autodistiller.cli import DEFAULT_SPACE

    space = load_space(DEFAULT_SPACE)
    augs = next(p.choices for p in space.params if p.name == "augmentation")
    ctx = [a for a in augs if a.startswith("contextual(")]
    assert ctx == ["contextual(model=runs/mlm/minilm-glue):0.3,copies=2"]
    names = {a: c for a, _, c in needed_corpora(space, "sst2")}
    assert names[ctx[0]].startswith("sst2-train+contextual-p0.3-n2-")
    config = space.to_train_config({"augmentation": ctx[0], "inter_loss": "none"}, task="sst2",
                                   cache="/c", run_dir="/r")
    assert config["train_corpus"] == names[ctx[0]]
