"""Progress of long commands: a bar with counts, rate and ETA on a terminal (a real pseudo-terminal
here), one summary line on a pipe."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import termios
import time
from collections.abc import Iterator
from io import StringIO
from pathlib import Path
from typing import IO

import pytest
from django.core.management import call_command

from core.progress import ProgressBar
from memory.services import MemoryInput, memory_create
from tests.conftest import Persona


class Terminal:
    """A pseudo-terminal: `stream` is the terminal side a command writes to, `read()` what it showed."""

    def __init__(self) -> None:
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
        self.stream: IO[str] = os.fdopen(slave, "w")
        self.shown = b""

    def read(self) -> str:
        self.stream.flush()
        while select.select([self.master], [], [], 0.2)[0]:
            self.shown += os.read(self.master, 65536)
        return self.shown.decode()

    def close(self) -> None:
        self.stream.close()
        os.close(self.master)


class Pipe:
    def __init__(self) -> None:
        self.read_end, write_end = os.pipe()
        self.stream: IO[str] = os.fdopen(write_end, "w")

    def read(self) -> str:
        self.stream.close()
        with os.fdopen(self.read_end) as reader:
            return reader.read()


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    tty = Terminal()
    try:
        yield tty
    finally:
        tty.close()


def test_on_a_terminal_it_draws_a_bar_with_counts_rate_and_eta(terminal: Terminal) -> None:
    with ProgressBar(terminal.stream, "import", total=100) as bar:
        for step in range(1, 5):
            time.sleep(0.25)  # beyond the redraw interval: every step is drawn
            bar.update(step * 10, skipped=step)
        midway = terminal.read()
    assert terminal.stream.isatty()
    assert "\r" in midway and "\n" not in midway.rstrip("\r\n")  # redrawn in place
    assert "40/100" in midway and "skipped=4" in midway
    rate_and_eta = re.search(r"\[00:0\d<00:0\d, +[\d.]+items/s", midway)  # elapsed<ETA, rate
    assert rate_and_eta, midway
    assert terminal.read().endswith("\r\n")  # closing leaves the last bar on its own line


def test_on_a_pipe_it_writes_one_summary_line() -> None:
    pipe = Pipe()
    with ProgressBar(pipe.stream, "import", total=100) as bar:
        for step in range(1, 11):
            bar.update(step * 10, done=step * 9, skipped=step)
    out = pipe.read()
    assert out.count("\n") == 1 and "\r" not in out
    assert re.fullmatch(r"import: 100 items \(done 90, skipped 10\) in [\d.]+ s, [\d.]+ items/s\n", out), out


def test_an_unfinished_run_says_how_far_it_got() -> None:
    pipe = Pipe()
    with pytest.raises(RuntimeError), ProgressBar(pipe.stream, "restore", total=30) as bar:
        bar.update(3)
        raise RuntimeError("pg_restore failed")
    assert pipe.read().startswith("restore: 3/30 items in ")


@pytest.mark.django_db
def test_export_draws_its_bar_on_the_terminal_and_leaves_stdout_clean(writer: Persona, terminal: Terminal) -> None:
    for n in range(3):
        memory_create(principal=writer.principal, data=MemoryInput(content=f"note number {n}"))
    out = StringIO()
    call_command("export", "--tenant", "acme", stdout=out, stderr=terminal.stream)
    assert "3/3" in terminal.read() and "memories/s" in terminal.read()
    records = [json.loads(line)["type"] for line in out.getvalue().splitlines()]
    assert records == ["header", "memory", "memory", "memory"]


@pytest.mark.django_db
def test_an_import_shows_its_job_counts_on_a_terminal_and_sums_up_on_a_pipe(
    writer: Persona, tmp_path: Path, terminal: Terminal
) -> None:
    source = tmp_path / "mem0.json"
    source.write_text(json.dumps([{"memory": f"fact {n}"} for n in range(5)] + ["not an object"]), encoding="utf-8")
    call_command("import", "json", str(source), "--tenant", "acme", stdout=StringIO(), stderr=terminal.stream)
    shown = terminal.read()
    assert "json:" in shown and "6/6" in shown and "done=5" in shown and "failed=1" in shown
    pipe = Pipe()
    call_command("import", "json", str(source), "--tenant", "acme", stdout=StringIO(), stderr=pipe.stream)
    summary = pipe.read()
    assert re.fullmatch(r"json: 6 items \(done 0, skipped 5, failed 1\) in [\d.]+ s, [\d.]+ items/s\n", summary)


@pytest.mark.django_db
def test_reconcile_sums_up_its_passes_on_a_pipe() -> None:
    pipe = Pipe()
    call_command("reconcile", stdout=StringIO(), stderr=pipe.stream)
    summary = pipe.read()
    assert summary.startswith("reconcile: 3 passes (embeddings 0, graph 0, term_statistics 0) in "), summary
