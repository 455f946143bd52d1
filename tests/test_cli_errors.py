"""What a `distiller` command prints when it fails: bad input (UsageError) and the environment
(OSError) are one line and exit 2; any other exception is a defect: its traceback, a line
asking to report it, exit 1."""
import pytest

import distiller.cli as cli
from distiller.common.errors import MissingEntryError, UsageError


def _run_raising(monkeypatch, exc: BaseException, *flags: str) -> int:
    """`distiller [flags] cache info nowhere`, its command function replaced by one raising
    `exc`."""
    def failing(args):
        raise exc

    parser = cli.build_parser()
    real = parser.parse_args

    def parse(argv):
        args = real(argv)
        args.func = failing
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    return cli.main([*flags, "cache", "info", "nowhere"])


@pytest.mark.parametrize("exc, line", [
    (UsageError("--batch-size 0: give a positive number"),
     "--batch-size 0: give a positive number"),
    (MissingEntryError("key 'k' is not in cache 'c'"), "key 'k' is not in cache 'c'"),
    (FileNotFoundError(2, "No such file or directory", "in.tsv"),
     "No such file or directory: in.tsv"),
])
def test_bad_input_is_one_line_and_exit_2(monkeypatch, capsys, exc, line):
    assert _run_raising(monkeypatch, exc) == 2
    err = capsys.readouterr().err
    assert err == f"distiller cache: error: {line}\n"


def test_bad_input_shows_its_traceback_with_v(monkeypatch, capsys):
    assert _run_raising(monkeypatch, UsageError("bad value"), "-v") == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.endswith("distiller cache: error: bad value\n")


@pytest.mark.parametrize("exc", [KeyError("label"), ValueError("math domain error"),
                                 TypeError("unsupported operand"), RuntimeError("boom")])
def test_a_programming_error_prints_its_traceback_and_asks_for_a_report(monkeypatch, capsys,
                                                                        exc):
    assert _run_raising(monkeypatch, exc) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert f"{type(exc).__name__}: " in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("distiller cache: internal error: this is a bug in distiller")
    assert "please report it" in last


def test_interrupt_prints_what_is_safe_and_exits_130(monkeypatch, capsys):
    """Ctrl-C in any command: a one-paragraph message and exit 130, no traceback."""
    code = _run_raising(monkeypatch, KeyboardInterrupt())
    err = capsys.readouterr().err
    assert code == 130
    assert "distiller cache: interrupted" in err and "Run the same command again" in err
    assert "Traceback" not in err
