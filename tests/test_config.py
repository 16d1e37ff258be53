import pytest

from prunebench.config import QUICKSTART, load_config
from prunebench.core.errors import PrunebenchError
from prunebench.pipeline.plan import validate


def test_quickstart_is_a_valid_plan():
    cfg = load_config(None)
    assert cfg.model == QUICKSTART["model"] and cfg.prune[0].method == "l1-norm"
    assert cfg.regimes == ("finetune", "scratch-e", "scratch-b")


def test_toml_plan_and_overrides(tmp_path):
    p = tmp_path / "plan.toml"
    p.write_text('model = "resnet56"\ndata = "synthetic"\nseeds = [0, 1]\n[baseline]\nepochs = 4\nmilestones = [0.5]\n'
                 '[bench]\nbatch_sizes = [1]\n[[prune]]\nmethod = "l1-norm"\npreset = "A"\n'
                 '[[prune]]\nmethod = "l1-norm"\npreset = "B"\n')
    cfg = load_config(p, {"baseline.lr": 0.05, "train_subset": 100})
    assert cfg.seeds == (0, 1) and cfg.baseline.epochs == 4 and cfg.baseline.lr == 0.05
    assert cfg.baseline.milestones == (0.5,) and cfg.train_subset == 100
    assert [s.label for s in cfg.prune] == ["l1-norm-A", "l1-norm-B"]


@pytest.mark.parametrize("text,match", [
    ('modle = "resnet56"\n', "unknown key 'modle' in the plan; valid keys: model"),
    ('[baseline]\nepoch = 3\n', r"unknown key 'epoch' in \[baseline\].*epochs"),
    ('[baseline]\nepochs = "many"\n', "baseline.epochs must be an integer"),
    ('model = "resnet57"\n', "unknown model 'resnet57'"),
    ('[[prune]]\nmethod = "l1-norm"\n', "exactly one of preset, ratio"),
    ('[[prune]]\nmethod = "magic"\nratio = 0.5\n', "unknown pruning method 'magic'"),
    ('regimes = ["finetune", "scratch-z"]\n', "unknown regime 'scratch-z'"),
    ('model = \n', "not valid TOML"),
])
def test_bad_plans_are_one_line_errors(tmp_path, text, match):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    with pytest.raises(PrunebenchError, match=match) as e:
        validate(load_config(p))   # load_config checks the plan itself, validate() the names against the registries
    assert "\n" not in str(e.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(PrunebenchError, match="plan file not found"):
        load_config(tmp_path / "nope.toml")
