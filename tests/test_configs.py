"""Every shipped study config parses, validates its method configs and expands to a plan."""

from pathlib import Path

import pytest

from ecomlm.study.config import load_study
from ecomlm.study.grid import expand

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_study_config_expands(path):
    runs = expand(load_study(path))
    assert runs, f"{path.name} expands to no runs"
    assert len({r.id for r in runs}) == len(runs)


def test_quickstart_covers_every_method_family_and_task():
    runs = expand(load_study(Path(CONFIGS[0]).with_name("quickstart.yaml")))
    assert {r.spec.method for r in runs} == {"classical", "bert", "seq2seq", "lora", "icl", "merge"}
    assert {r.spec.task for r in runs} == {"esci", "queryner", "review_summ", "desc_gen"}
