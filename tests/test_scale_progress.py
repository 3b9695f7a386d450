"""Progress of long runs by stage: the engine's callback, a bar on a terminal, lines in a log."""

from __future__ import annotations

import io
import re
import shutil

from costloop.cli import main
from costloop.engine.pipeline.commands import run_book
from costloop.progress import StageProgress
from costloop.workbooks import demo_path


def test_the_run_reports_each_stage_as_it_starts_and_ends(tmp_path):
    calls = []
    outcome = run_book(
        demo_path(), output=tmp_path / "out.xlsx", progress=lambda *a: calls.append(a)
    )
    assert outcome.ok
    assert calls == [
        ("read+check", 0, 4),
        ("run", 1, 4),
        ("forecast", 2, 4),
        ("write", 3, 4),
        ("", 4, 4),
    ]


def test_plain_lines_in_a_log():
    stream = io.StringIO()
    progress = StageProgress(stream, after=0)
    for call in [
        ("read+check", 0, 4),
        ("run", 1, 4),
        ("forecast", 2, 4),
        ("write", 3, 4),
        ("", 4, 4),
    ]:
        progress(*call)
    progress.close()
    lines = stream.getvalue().splitlines()
    assert [re.sub(r"\d+\.\d s", "T s", line) for line in lines] == [
        "costloop: reading and checking done in T s (1/4)",
        "costloop: allocating and charging done in T s (2/4)",
        "costloop: forecasting done in T s (3/4)",
        "costloop: writing done in T s (4/4)",
    ]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_redrawn_in_place_on_a_terminal():
    stream = _Terminal()
    progress = StageProgress(stream, after=0)
    progress("read+check", 0, 4)
    progress("run", 1, 4)
    progress.close()  # the run stopped early (errors): the line is ended
    frames = stream.getvalue().split("\r")[1:]
    assert [re.sub(r"\d+\.\d s", "T s", f).rstrip() for f in frames] == [
        "[....................] 0/4 reading and checking  T s",
        "[#####...............] 1/4 allocating and charging  T s",
    ]
    assert stream.getvalue().endswith("\n")


def test_short_runs_stay_quiet_and_always_shows_every_stage(tmp_path, capsys, monkeypatch):
    book = tmp_path / "demo.xlsx"
    shutil.copyfile(demo_path(), book)
    monkeypatch.delenv("COSTLOOP_PROGRESS", raising=False)
    assert main(["run", str(book), "--output", str(tmp_path / "a.xlsx")]) == 0
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("COSTLOOP_PROGRESS", "always")
    assert main(["run", str(book), "--output", str(tmp_path / "b.xlsx")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line.split(" done in ")[0] for line in err] == [
        "costloop: reading and checking",
        "costloop: allocating and charging",
        "costloop: forecasting",
        "costloop: writing",
    ]


def test_a_log_shows_the_stages_that_ended_before_the_run_became_long(monkeypatch):
    clock = iter([0.0, 0.0, 4.0, 12.0, 13.0, 14.0])
    monkeypatch.setattr("costloop.progress.time.perf_counter", lambda: next(clock))
    stream = io.StringIO()
    progress = StageProgress(stream, after=10)  # reads the clock: 0.0
    progress("read+check", 0, 4)  # 0.0
    progress("run", 1, 4)  # 4.0: read+check took 4 s, too soon to say
    assert stream.getvalue() == ""
    progress("forecast", 2, 4)  # 12.0: past 10 s, both finished stages are shown
    progress("write", 3, 4)  # 13.0
    progress("", 4, 4)  # 14.0
    assert stream.getvalue().splitlines() == [
        "costloop: reading and checking done in 4.0 s (1/4)",
        "costloop: allocating and charging done in 8.0 s (2/4)",
        "costloop: forecasting done in 1.0 s (3/4)",
        "costloop: writing done in 1.0 s (4/4)",
    ]
