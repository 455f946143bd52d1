"""Ctrl-C in any `distiller` command: a one-paragraph message and exit 130, no traceback."""
import distiller.cli as cli


def test_interrupt_prints_what_is_safe_and_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    parser = cli.build_parser()
    real = parser.parse_args

    def parse(argv):
        args = real(argv)
        args.func = interrupted
        return args

    monkeypatch.setattr(parser, "parse_args", parse)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    code = cli.main(["cache", "info", "nowhere"])
    err = capsys.readouterr().err
    assert code == 130
    assert "distiller cache: interrupted" in err and "Run the same command again" in err
    assert "Traceback" not in err
