"""Mixup pairs drawn deterministically in the pipeline and scored offline by the teacher."""
import apache_beam as beam
import numpy as np
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from distiller.builders.cache.store import TeacherCache
from distiller.builders.cache.keys import mixup_key
from distiller.builders.cache.reader import CacheReader
from distiller.builders.teacher.model import Teacher, TeacherConfig
from distiller.pipelines.mixup import MixupPairs, draw_pairs
from distiller.pipelines.score import ScoreWithTeacher
from .pipeline_testlib import sst2_sentences

TestPipeline.__test__ = False  # a Beam class, not a test case


@pytest.fixture(scope="module")
def teacher_and_records(tiny_teacher):
    teacher = Teacher(TeacherConfig(model=tiny_teacher, max_length=32)).load()
    records = []
    for i, text in enumerate(sst2_sentences(12)):
        rec = {"id": f"train.tsv:{i}", "text_a": text, "text_b": None, "label": i % 2}
        ids, _, truncated = teacher.tokenize([rec])[0]
        records.append(dict(rec, key=teacher.cache_key(text), n_tokens=len(ids),
                            truncated=truncated))
    return teacher, records


def test_pairs_are_deterministic_never_self_and_keyed_by_both_parents(teacher_and_records):
    _, records = teacher_and_records
    pairs = list(draw_pairs((None, records), pairs_per_example=2, alpha=0.4, seed=3))
    shuffled = list(draw_pairs((None, records[::-1]), pairs_per_example=2, alpha=0.4, seed=3))
    assert pairs == shuffled and len(pairs) == 24
    assert all(p["mix_key_a"] != p["mix_key_b"] for p in pairs)
    assert all(p["key"] == mixup_key(p["mix_key_a"], p["mix_key_b"], p["mix_lam"]) for p in pairs)
    assert all(0.0 <= p["mix_lam"] <= 1.0 and p["mix_lam"] == round(p["mix_lam"], 6)
               for p in pairs)
    other_seed = list(draw_pairs((None, records), pairs_per_example=2, alpha=0.4, seed=4))
    assert [p["key"] for p in other_seed] != [p["key"] for p in pairs]
    # Beta(0.4, 0.4) is U-shaped: most λ are near 0 or 1
    lams = np.array([p["mix_lam"] for p in draw_pairs((None, records), pairs_per_example=50,
                                                      alpha=0.4, seed=0)])
    assert np.mean((lams < 0.2) | (lams > 0.8)) > 0.5


def test_cached_mixup_outputs_equal_a_fresh_teacher_forward_on_the_interpolation(
        teacher_and_records, tiny_teacher, tmp_path):
    teacher, records = teacher_and_records
    cache_path = str(tmp_path / "cache")
    TeacherCache.create(cache_path, teacher.spec())
    expected = list(draw_pairs((None, records), pairs_per_example=1, alpha=0.4, seed=0))
    with TestPipeline() as p:
        pairs = p | beam.Create(records) | MixupPairs(pairs_per_example=1, seed=0)
        assert_that(pairs, equal_to(expected), label="pairs")
        infos = (pairs | beam.Map(lambda r: (r["key"], r))
                 | ScoreWithTeacher(TeacherConfig(model=tiny_teacher, max_length=32),
                                    cache_path=cache_path, unit_size=5, mixup=True))
        _ = infos | beam.combiners.ToList() | beam.Map(
            lambda i: TeacherCache.open(cache_path).commit(i))
    reader = CacheReader(cache_path)
    assert sorted(reader.keys()) == sorted(p["key"] for p in expected)
    fresh = teacher.score_mixed([(p["a"], p["b"], p["mix_lam"]) for p in expected])
    for pair, want in zip(expected, fresh):
        got = reader.get(pair["key"])
        assert want["key"] == pair["key"]
        assert np.allclose(got["logits"].numpy(), want["logits"], atol=1e-5)
        assert got["input_ids"].tolist() == want["input_ids"].tolist()
        last = max(want["hidden"])
        assert np.allclose(got["hidden"][last].numpy(), want["hidden"][last], atol=2e-2)
