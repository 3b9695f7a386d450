"""What the portal shows: the workbook's last run, read once, swapped whole on a change.

The bills come from the same place `costloop bills` takes them
(`load_billed_year` and `build_statements`): the workbook's last successful run,
tied to its Run Log and its written Bills sheet. A `Snapshot` is built completely
before it is published, and requests read whichever snapshot is current when they
start, so a reload never leaves a request half on the old run and half on the new.

When the file changes (its size, modification time or inode), a background thread
builds the next snapshot while requests go on being answered from the current one.
If the changed workbook cannot be billed (inputs edited after the run, a failed run,
a file caught half-written), the last good run keeps being shown — it is still what
was billed — and the problem is kept beside it for finance to see.

A reload must not stall the pages being answered meanwhile. The year is re-run in a
worker process, and what crosses back to the server is each statement pickled on its
own (`Statements`): taking the new snapshot in is then one dict of byte strings, a
few milliseconds, where unpickling 2,000 statements' frames held the server's
interpreter for seconds. A statement is unpickled the first time a page asks for it,
once per snapshot, and what its pages show is worked out once too (`Snapshot.page`).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from costloop.bills.source import RunStamp, load_billed_year
from costloop.bills.statement import Statement, build_year_statements
from costloop.portal.groups import portal_groups
from costloop.portal.resolutions import SheetAnswer, sheet_answers
from costloop.problems import Problem, Reason, Severity
from costloop.rules.ast import Statement as Rule
from costloop.rules.ast import name_key

Signature = tuple[int, int, int]
"""(size, modification time in ns, inode) of the workbook file."""

Key = tuple[str, str]
"""(department name key, period)."""


class Statements(Mapping[Key, Statement]):
    """One run's statements by (department key, period), each unpickled when first asked for.

    Built from live statements (the first load, in the server) or, on the server's side
    of a reload, from each statement's pickle as the worker made it: unpickling one
    statement costs a page a millisecond or two, once; unpickling all of them on arrival
    cost the server seconds of its interpreter. Never changed once built, apart from
    turning a pickle into its statement (under a lock, so two requests make one).
    """

    def __init__(self, statements: Mapping[Key, Statement] | None = None):
        self._live: dict[Key, Statement] = dict(statements or {})
        self._packed: dict[Key, bytes] = {}
        self._order: list[Key] = list(self._live)
        self._lock = threading.Lock()

    def __getitem__(self, key: Key) -> Statement:
        found = self._live.get(key)
        if found is not None:
            return found
        packed = self._packed.get(key)
        if packed is None:
            raise KeyError(key)
        with self._lock:
            found = self._live.get(key)
            if found is None:
                found = self._live[key] = pickle.loads(packed)
                # The pickle is not needed again: its statement stays for this snapshot.
                del self._packed[key]
        return found

    def __iter__(self) -> Iterator[Key]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._live or key in self._packed

    def __getstate__(self) -> dict:
        # Sent from the worker: each statement as its own pickle, made in the worker.
        with self._lock:
            packed = dict(self._packed)
            for key, statement in self._live.items():
                packed[key] = pickle.dumps(statement, pickle.HIGHEST_PROTOCOL)
        return {"order": self._order, "packed": packed}

    def __setstate__(self, state: dict) -> None:
        self._live = {}
        self._packed = state["packed"]
        self._order = state["order"]
        self._lock = threading.Lock()


@dataclass(frozen=True)
class Snapshot:
    """One run's bills, by department key and period; never changed once published."""

    signature: Signature | None
    loaded_at: dt.datetime
    stamp: RunStamp | None
    statements: Mapping[Key, Statement] = field(default_factory=Statements)
    rules: dict[str, Rule] = field(default_factory=dict)
    problems: tuple[Problem, ...] = ()
    """Why the workbook cannot be billed now (empty when this snapshot is current)."""
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    """Single sign-on group -> the department keys it sees (the run's Portal Group column)."""
    answers: dict[str, SheetAnswer] = field(default_factory=dict)
    """The Disputes sheet's rows by dispute id key, with their credit memos
    (`costloop.portal.resolutions`): finance's answers to the portal's disputes."""

    @property
    def ok(self) -> bool:
        return self.stamp is not None

    def statement(self, department_key: str, period: str) -> Statement | None:
        return self.statements.get((department_key, period))

    def page(self, s: Statement, build: Callable[..., object], *of: object):
        """``build(s, *of)`` — what a page shows of a statement (its formatted lines, the
        usage rows behind a line's rule) — worked out once for this snapshot and shared
        by every request after. ``of`` are this snapshot's own objects (a rule of its
        `rules`), told apart by identity: they live as long as the snapshot does.

        A snapshot never changes, so neither does what is made from it; a reload makes
        a new snapshot with nothing worked out yet. Two requests that ask at once may
        both build it (the same value; the first one kept) rather than wait on a lock.
        """
        key = (name_key(s.department), s.period, build, *map(id, of))
        try:
            return self._pages[key]
        except KeyError:
            return self._pages.setdefault(key, build(s, *of))

    def __post_init__(self) -> None:
        if not isinstance(self.statements, Statements):
            object.__setattr__(self, "statements", Statements(self.statements))
        # Department key -> its periods, built once: a page must not scan every bill.
        periods: dict[str, list[str]] = {}
        for key, period in sorted(self.statements):
            periods.setdefault(key, []).append(period)
        object.__setattr__(self, "_periods", periods)
        object.__setattr__(self, "_pages", {})

    def __getstate__(self) -> dict:
        # What pages worked out stays behind: it is cheap to make again, costly to send.
        state = dict(self.__dict__)
        state["_pages"] = {}
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)

    def periods_of(self, department_key: str) -> list[str]:
        return list(self._periods.get(department_key, ()))

    def department_keys(self) -> list[str]:
        """Every billed department's key, in key order."""
        return list(self._periods)


def signature(path: Path) -> Signature | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def load_snapshot(path: Path) -> Snapshot:
    """Read the workbook's last run into a snapshot (problems, and no bills, if it cannot)."""
    sig = signature(path)
    loaded = dt.datetime.now(dt.UTC)
    if sig is None:
        problem = Problem(Reason.NO_DATA, Severity.ERROR, str(path), "the workbook is not there")
        return Snapshot(sig, loaded, None, problems=(problem,))
    try:
        year, problems = load_billed_year(path)
    except Exception as exc:  # a file caught half-written by Excel, for one
        problem = Problem(
            Reason.NO_DATA,
            Severity.ERROR,
            str(path),
            f"the workbook could not be read ({type(exc).__name__}: {exc}); "
            "the portal tries again when the file changes",
        )
        return Snapshot(sig, loaded, None, problems=(problem,))
    if year is None:
        return Snapshot(sig, loaded, None, problems=tuple(problems))
    statements = {(name_key(s.department), s.period): s for s in build_year_statements(year)}
    groups = portal_groups(year.book.departments)
    return Snapshot(
        sig,
        loaded,
        year.stamp,
        statements,
        dict(year.rules),
        groups=groups,
        answers=sheet_answers(year),
    )


_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _in_background() -> None:
    # The reload is background work: where it shares cores with the server, the pages
    # being answered meanwhile come first (it then takes longer, and nobody waits on it).
    with contextlib.suppress(OSError):
        os.nice(10)


def load_elsewhere(path: Path) -> Snapshot:
    """`load_snapshot` in a worker process, so re-running a big year while serving holds
    that process's interpreter, not the server's: pages keep being answered meanwhile.

    The worker is spawned (never forked from a threaded server) for each reload and
    ends after it: re-running a million-row year leaves its process holding most of a
    gigabyte it no longer needs, which a kept worker would hold between reloads; a
    new one costs a second or two of start-up per reload. If it dies the snapshot is
    built here instead.
    """
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(
                1,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_in_background,
                max_tasks_per_child=1,
            )
        pool = _pool
    try:
        return pool.submit(load_snapshot, path).result()
    except BrokenProcessPool:
        with _pool_lock:
            _pool = None
        return load_snapshot(path)


class Bills:
    """The current snapshot of one workbook, rebuilt in the background when the file changes."""

    def __init__(
        self,
        path: Path,
        loader: Callable[[Path], Snapshot] = load_snapshot,
        check_every: float = 1.0,
        reloader: Callable[[Path], Snapshot] = load_elsewhere,
    ):
        self.path = path
        self._loader = reloader
        self._check_every = check_every
        self._lock = threading.Lock()
        self._checked = 0.0
        self._reloading: threading.Thread | None = None
        self.current: Snapshot = loader(path)  # nothing to serve yet: read it here
        """The snapshot requests read; replaced whole, never changed in place."""
        self.problems: tuple[Problem, ...] = self.current.problems
        """Why the newest file could not be billed; empty when `current` is the newest."""
        self._last_signature = self.current.signature
        """The file last read, good or not: a bad file is not re-read until it changes."""

    def get(self) -> Snapshot:
        """The current snapshot; starts a reload if the file changed (never waits for it)."""
        now = time.monotonic()
        if now - self._checked >= self._check_every:
            self._checked = now
            if signature(self.path) != self._last_signature:
                self._start_reload()
        return self.current

    def _start_reload(self) -> None:
        with self._lock:
            if self._reloading is not None and self._reloading.is_alive():
                return
            self._reloading = threading.Thread(target=self.reload, daemon=True)
            self._reloading.start()

    def reload(self) -> Snapshot:
        """Build the next snapshot from the file now, and publish it (or keep the good one)."""
        fresh = self._loader(self.path)
        self._last_signature = fresh.signature
        if fresh.ok or not self.current.ok:
            self.current = fresh  # one reference assignment: a request sees old or new
        self.problems = fresh.problems
        return self.current

    def wait(self, timeout: float = 60.0) -> None:
        """Block until a reload under way has finished (for tests and benchmarks)."""
        thread = self._reloading
        if thread is not None:
            thread.join(timeout)
