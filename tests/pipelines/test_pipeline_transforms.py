"""KeyRecords, AugmentCorpus, MissingKeys (dedupe + cache join), scoring units: exact records."""
import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from distiller.builders.cache.store import TeacherCache
from distiller.builders.teacher.model import Teacher, TeacherConfig
from distiller.pipelines.augmentation import AugmentCorpus
from distiller.pipelines.batching import BatchRecords
from distiller.pipelines.dedupe import CachedKeys, MissingKeys
from distiller.pipelines.keying import KeyRecords
from distiller.pipelines.score import ScoreWithTeacher, cut_units

TestPipeline.__test__ = False  # a Beam class, not a test case


def _rec(i, text, label=1):
    return {"id": f"t.tsv:{i}", "text_a": text, "text_b": None, "label": label}


RECORDS = [_rec(0, "a good movie"), _rec(1, "a bad movie", 0), _rec(2, "a good movie"),
           _rec(3, "an utterly long winded and pointless film about nothing at all", 0)]


@pytest.fixture(scope="module")
def teacher(tiny_teacher):
    return Teacher(TeacherConfig(model=tiny_teacher, max_length=8)).load()


def test_key_records_truncates_and_counts_or_rejects(teacher, tiny_teacher):
    config = TeacherConfig(model=tiny_teacher, max_length=8)
    keyed = [dict(r, key=teacher.cache_key(r["text_a"]),
                  n_tokens=len(teacher.tokenize([r])[0][0]),
                  truncated=bool(teacher.tokenize([r])[0][2]),
                  token_ids=teacher.tokenize([r])[0][0].tobytes(),
                  token_types=teacher.tokenize([r])[0][1].tobytes()) for r in RECORDS]
    assert [k["truncated"] for k in keyed] == [False, False, False, True]
    assert keyed[0]["key"] == keyed[2]["key"] != keyed[1]["key"]
    with TestPipeline() as p:
        records, dead = p | beam.Create(RECORDS) | KeyRecords(config, source="t.tsv")
        assert_that(records, equal_to(keyed), label="truncated")
        assert_that(dead, equal_to([]), label="none_dead")
    with TestPipeline() as p:
        records, dead = (p | beam.Create(RECORDS)
                         | KeyRecords(config, reject_long=True, source="t.tsv"))
        assert_that(records, equal_to(keyed[:3]), label="kept")
        assert_that(dead | beam.Map(lambda d: (d.source, d.row, d.reason.split(":")[0])),
                    equal_to([("t.tsv", 3, "text over the length limit")]), label="rejected")


@pytest.mark.parametrize("by_shuffle", [False, True])
def test_augment_corpus_equals_the_policy_called_one_by_one(by_shuffle):
    from distiller.augment.policy import AugmentationPolicy

    spec = "eda_swap:0.5,copies=2"
    policy = AugmentationPolicy.from_spec(spec).load()
    records = [_rec(i, f"the {w} film was long and then it ended", i % 2)
               for i, w in enumerate(["first", "second", "third", "fourth", "fifth"])]
    expected = [c for r in records for c in policy.augment_records([r], 7)[0]]
    assert len(expected) == 10
    with TestPipeline() as p:
        copies = (p | beam.Create(records)
                  | AugmentCorpus(spec, base_seed=7, max_batch_size=3, batch_by_shuffle=by_shuffle))
        assert_that(copies, equal_to(expected))


def test_shuffle_batching_keeps_every_record_once():
    records = [_rec(i, f"text {i}") for i in range(200)]
    with TestPipeline() as p:
        batches = p | beam.Create(records) | BatchRecords(max_batch_size=7, by_shuffle=True)
        assert_that(batches | beam.Map(len) | beam.CombineGlobally(max), equal_to([7]),
                    label="size")
        assert_that(batches | beam.FlatMap(lambda b: b), equal_to(records), label="all")


def test_dedupe_and_join_against_a_real_cache_drop_exactly_the_cached_keys(teacher, tmp_path):
    cache_path = str(tmp_path / "cache")
    cache = TeacherCache.create(cache_path, teacher.spec())
    cache.add(teacher.score([RECORDS[1]]))            # "a bad movie" is already cached
    keyed = [dict(r, key=teacher.cache_key(r["text_a"]), n_tokens=5, truncated=False)
             for r in RECORDS]
    with TestPipeline() as p:
        cached = p | "cached" >> CachedKeys(cache_path)
        todo = p | beam.Create(keyed) | MissingKeys(cached)
        assert_that(cached, equal_to([(keyed[1]["key"], None)]), label="cached")
        assert_that(todo, equal_to([(keyed[0]["key"], keyed[0]), (keyed[3]["key"], keyed[3])]),
                    label="todo")


def test_units_are_sorted_by_key_balanced_and_cover_everything():
    records = [{"key": f"{i:032x}", "n_tokens": 5} for i in range(10, 0, -1)]
    units = list(cut_units(((0, 0), records), 4))
    assert [len(u) for u in units] == [3, 3, 4]
    assert [r["key"] for u in units for r in u] == sorted(r["key"] for r in records)


@pytest.mark.parametrize("write_shards,carry", [(True, False), (False, False), (True, True)])
def test_score_with_teacher_writes_shards_equal_to_a_direct_forward(teacher, tiny_teacher,
                                                                     tmp_path, write_shards,
                                                                     carry):
    import numpy as np
    from distiller.builders.cache.reader import CacheReader

    config = TeacherConfig(model=tiny_teacher, max_length=8)
    cache_path = str(tmp_path / "cache")
    TeacherCache.create(cache_path, teacher.spec())
    keyed = []
    for r in RECORDS[:2] + RECORDS[3:]:
        ids, tts, truncated = teacher.tokenize([r])[0]
        keyed.append(dict(r, key=teacher.cache_key(r["text_a"]), n_tokens=len(ids),
                          truncated=truncated))
        if carry:  # the token ids KeyRecords leaves on a record: scoring does not re-tokenize
            keyed[-1].update(token_ids=ids.tobytes(), token_types=tts.tobytes())
    with TestPipeline() as p:
        infos = (p | beam.Create([(r["key"], r) for r in keyed])
                 | ScoreWithTeacher(config, cache_path=cache_path, unit_size=2,
                                    write_shards=write_shards))
        assert_that(infos | beam.Map(lambda i: i.rows) | beam.CombineGlobally(sum),
                    equal_to([3]))
        _ = infos | beam.combiners.ToList() | beam.Map(
            lambda i: TeacherCache.open(cache_path).commit(i))
    reader = CacheReader(cache_path)
    assert sorted(reader.keys()) == sorted(r["key"] for r in keyed)
    for r in keyed:
        want = teacher.score([r])[0]
        got = reader.get(r["key"])
        assert np.allclose(got["logits"].numpy(), want["logits"], atol=1e-5)
        assert got["input_ids"].tolist() == want["input_ids"].tolist()
