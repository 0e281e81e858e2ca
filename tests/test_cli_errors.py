"""The command line tells errors the user can fix (one line, exit 1) from bugs (the traceback, exit 2)."""
from __future__ import annotations

import argparse

import numpy as np
import pytest

import ratpose.cli as cli
from ratpose.errors import ConfigurationError, DataError, InputError, NotFoundError, RatposeError


def _parser_raising(error: BaseException):
    def build():
        parser = argparse.ArgumentParser(prog="ratpose")
        sub = parser.add_subparsers(dest="command", required=True)
        sub.add_parser("boom").set_defaults(func=lambda args: (_ for _ in ()).throw(error))
        return parser
    return build


@pytest.mark.parametrize("error", [InputError("session.toml: [camera] has no 'video'"),
                                   ConfigurationError("rig.toml [trigger]: rate_hz must be > 0"),
                                   DataError("session s1: 3 frames, Pose3D needs 10"),
                                   NotFoundError("no subject 'r9' in the database")])
def test_an_error_the_user_can_fix_is_one_line(monkeypatch, capsys, error):
    monkeypatch.setattr(cli, "build_parser", _parser_raising(error))
    assert cli.main(["boom"]) == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"ERROR {error} (--debug shows the traceback)"]
    assert isinstance(error, RatposeError)


def test_a_bug_prints_the_traceback_and_asks_for_a_report(monkeypatch, capsys):
    try:  # a numpy ValueError is not the user's mistake
        np.zeros(3).reshape(2, 2)
    except ValueError as err:
        bug = err
    monkeypatch.setattr(cli, "build_parser", _parser_raising(bug))
    assert cli.main(["boom"]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "reshape" in err
    assert cli.BUG_REPORT in err


def test_debug_raises_either(monkeypatch):
    monkeypatch.setattr(cli, "build_parser", _parser_raising(InputError("x.toml: bad")))
    with pytest.raises(InputError):
        cli.main(["--debug", "boom"])


def test_user_errors_subclass_the_builtin_they_refine():
    assert issubclass(InputError, ValueError) and issubclass(NotFoundError, LookupError)
    assert not issubclass(ValueError, RatposeError)


def test_a_bad_datetime_on_the_command_line_is_one_line(clean_db, capsys):
    code = cli.main(["export", "--subject", "rat01", "--datetime", "yesterday", "--training-set", "t",
                     "--pose-params", "p", "--out", "x.nwb"])
    err = capsys.readouterr().err
    assert code == 1 and err.strip().splitlines() == [
        "ERROR session datetime 'yesterday' is not ISO 8601 (e.g. 2026-11-24T10:00:00) (--debug shows the traceback)"]


@pytest.mark.parametrize("size", ["abc", "160", "160x"])
def test_a_bad_sim_size_is_one_line(tmp_path, capsys, size):
    assert cli.main(["sim", str(tmp_path / "d"), "--size", size]) == 1
    assert capsys.readouterr().err.startswith(f"ERROR --size {size!r}: expected WIDTHxHEIGHT")
