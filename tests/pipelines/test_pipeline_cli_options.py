"""`distiller build` flags → BuildOptions and Beam pipeline options (no pipeline is run)."""
import argparse

import pytest

from distiller.pipelines.build import BuildOptions, corpus_names
from distiller.pipelines.build_cli import add_parsers, options_from_args
from distiller.pipelines.runners import pipeline_args


def parse(argv):
    parser = argparse.ArgumentParser()
    add_parsers(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_flags_become_one_options_object_and_runner_options_pass_through(tmp_path):
    data = tmp_path / "x.jsonl"
    data.write_text('{"t": "hi", "y": "1"}\n')
    args = parse(["build", "--input", str(data), "--task", "mine", "--teacher", "t", "--cache",
                  "c", "--text-a", "t", "--label", "y", "--labels", "0,1", "--max-length", "64",
                  "--reject-long", "--seed", "5", "--layers", "0,2", "--runner", "FlinkRunner",
                  "--", "--flink_master=host:8081", "--environment_type=LOOPBACK"])
    opts = options_from_args(args)
    assert isinstance(opts, BuildOptions)
    assert (opts.max_length, opts.reject_long, opts.seed, opts.layers) == (64, True, 5, (0, 2))
    assert opts.task.labels == ("0", "1") and opts.task.text_a == "t"
    assert opts.task.name == "mine" and opts.labelled
    assert opts.beam_args == ("--flink_master=host:8081", "--environment_type=LOOPBACK")
    assert pipeline_args(opts.runner, workers=2, extra=opts.beam_args) == [
        "--runner=FlinkRunner", "--flink_master=host:8081", "--environment_type=LOOPBACK"]


def test_direct_runner_is_multi_process_and_dask_needs_an_address():
    args = pipeline_args("direct", workers=3)
    assert "--direct_running_mode=multi_processing" in args
    assert "--direct_num_workers=3" in args
    assert pipeline_args("dask", workers=2, dask_address="tcp://127.0.0.1:8786")[:2] == [
        "--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
        "--dask_client_address=tcp://127.0.0.1:8786"]
    with pytest.raises(ValueError, match="scheduler address"):
        pipeline_args("dask", workers=2)
    with pytest.raises(ValueError, match="workers"):
        pipeline_args("direct", workers=0)


def test_bad_options_fail_with_the_value_and_the_fix(tmp_path):
    from distiller.pipelines.build import build_distill_set

    with pytest.raises(FileNotFoundError, match="does not exist"):
        build_distill_set(BuildOptions(input=str(tmp_path / "nope.tsv"), task="sst2",
                                       teacher="t", cache="c"))
    data = tmp_path / "a.tsv"
    data.write_text("sentence\tlabel\n")
    with pytest.raises(ValueError, match=r"^build option 'workers': got 0; expected a positive "
                                         "integer or null$"):
        BuildOptions(input=str(data), task="sst2", teacher="t", cache="c", workers=0)
    with pytest.raises(ValueError, match="unknown task 'mine'.*--text-a"):
        options_from_args(parse(["build", "--input", str(data), "--task", "mine", "--teacher",
                                 "t", "--cache", "c", "--label", "y"]))
    with pytest.raises(ValueError, match=r"label column 'y' not found \(the columns are "
                                         r"\['sentence', 'label'\]\)"):
        build_distill_set(options_from_args(parse([
            "build", "--input", str(data), "--task", "sst2", "--label", "y", "--teacher", "t",
            "--cache", str(tmp_path / "c")])))
    assert not (tmp_path / "c").exists()  # nothing was created before the check


def test_corpus_names_follow_the_contract():
    assert corpus_names("sst2", "train", None) == ["sst2-train"]
    assert corpus_names("rte", "dev", "eda_swap-p0.3-n1-ab") == [
        "rte-dev", "rte-dev+eda_swap-p0.3-n1-ab"]
    assert corpus_names("rte", "dev", None, mixup=2, mixup_alpha=0.4)[-1] == \
        "rte-dev+mixup-n2-a0.4"


def test_language_model_flags_and_their_refusals(tmp_path):
    from distiller.common.errors import UsageError

    data = tmp_path / "wiki.txt"
    data.write_text("a text\n")
    common = ["build", "--input", str(data), "--task", "wiki", "--teacher", "t", "--cache", "c",
              "--text-a", "text"]
    opts = options_from_args(parse(common + ["--kind", "masked_lm", "--tokens", "sample:12",
                                             "--mask-prob", "0.2", "--mask-seed", "3"]))
    assert (opts.tokens, opts.mask_prob, opts.mask_seed) == ("sample:12", 0.2, 3)
    assert opts.task.kind == "masked_lm" and opts.layers == ()        # none by default
    assert options_from_args(parse(common + ["--kind", "causal_lm", "--tokens", "topk:8",
                                             "--layers", "all"])).layers == "all"
    assert options_from_args(parse(common + ["--labels", "a,b"])).layers == "all"
    for extra, said in ((["--kind", "causal_lm"], "give --tokens"),
                        (["--labels", "a,b", "--tokens", "topk:8"], "for language-model tasks"),
                        (["--kind", "masked_lm", "--tokens", "topk:8", "--mixup", "1"],
                         "drop --mixup")):
        with pytest.raises(UsageError, match=said):
            options_from_args(parse(common + extra))
