"""Benchmark the department portal: bill pages under concurrent sessions, and a reload.

Run: ``python benchmarks/bench_portal.py --rows 1000000 --departments 2000 --sessions 50``
(the issue's figure; small sizes such as ``--rows 20000 --departments 200`` check it
runs). It generates a workbook (benchmarks/bench_scale.py's generator) and runs it
(once per size: the run workbook is cached in ``benchmarks/.cache`` and copied for each
measurement), adds one portal user per session, starts the real `costloop serve` in its
own process, and signs each session in. Then every
session asks for its department's bill page, a line of it and the home page over and
over for ``--seconds``; half way through the workbook is run again (a new Run ID), so
the portal reloads while serving. It prints the latency percentiles of the bill pages
(overall, and in the seconds of the reload), the requests per second, how many requests
failed (none may), the server's peak memory (every process of it) and the load average
while measuring. A script, not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import GENERATOR_VERSION, cached, generate

from costloop.bills.source import load_billed_year
from costloop.cli import main as costloop
from costloop.engine.pipeline.commands import run_book
from costloop.portal.accounts import hash_password
from costloop.portal.store import Store
from costloop.rules.ast import name_key

PASSWORD = "bench-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _add_users(book: Path, db: str, users: list[tuple[str, str]]) -> None:
    """The first account through the real `costloop portal user add`, the rest straight into
    the store: the command reads the whole workbook to check the department code (seconds
    at a million usage rows), fifty times over would be minutes of set-up, not the portal."""
    (first, code), rest = users[0], users[1:]
    old = sys.stdin
    sys.stdin = io.StringIO(PASSWORD + "\n")
    try:
        args = ["portal", "user", "add", str(book), first, "--department", code]
        assert costloop([*args, "--db", db]) == 0
    finally:
        sys.stdin = old
    store = Store(db)
    try:
        hashed = hash_password(PASSWORD)
        for user, code in rest:
            store.add_user(user, hashed, False, [name_key(code)])
    finally:
        store.close()


def _sign_in(base: str, user: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    answer = client.post(
        "/login", data={"username": user, "password": PASSWORD, "csrf_token": token}
    )
    assert answer.status_code == 303, answer.text
    return client


def _run_book(rows: int, departments: int) -> Path:
    """The generated workbook of this size, already run once (cached)."""

    def build(path: Path) -> None:
        # The generator and the run need the .xlsx suffix; rename into place after.
        work = path.with_name(path.name + ".xlsx")
        generate(work, rows, departments=departments)
        outcome = run_book(work)
        assert outcome.ok, outcome.problems[:5]
        work.rename(path)

    return cached(f"portal-book-{rows}-{departments}-v{GENERATOR_VERSION}.xlsx", build)


def _tree(pid: int) -> list[int]:
    """The server process and every process under it (the reload worker)."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return found


def _rss_mb(pids: list[int]) -> tuple[float, dict[int, float]]:
    """(Σ resident memory now, each process's own peak) in MB, from /proc."""
    total, peaks = 0.0, {}
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        if "VmRSS" not in fields:  # a process exiting as we look
            continue
        total += int(fields["VmRSS"].split()[0]) / 1024
        peaks[p] = int(fields["VmHWM"].split()[0]) / 1024
    return total, peaks


def _percentiles(times: list[float]) -> str:
    if len(times) < 2:
        return f"{len(times)} request(s)"
    times = sorted(times)
    q = statistics.quantiles(times, n=100)
    return (
        f"p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, "
        f"p99 {q[98] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms ({len(times):,} pages)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="usage rows")
    parser.add_argument("--departments", type=int, default=2000)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="seconds a session waits between its requests, on average: each wait is drawn "
        "from 0.5 to 1.5 times it, as people do not click in step (0: ask again at once, "
        "the worst case)",
    )
    parser.add_argument(
        "--lockstep",
        action="store_true",
        help="wait exactly --think seconds every time (the 50 sessions then ask in waves)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="costloop-bench-portal-") as tmp:
        folder = Path(tmp)
        book = folder / "book.xlsx"
        shutil.copyfile(_run_book(args.rows, args.departments), book)
        print(
            f"workbook: {args.rows:,} usage rows, {args.departments:,} departments "
            f"({book.stat().st_size / 1e6:.0f} MB, run)"
        )
        t0 = time.perf_counter()
        year, problems = load_billed_year(book)
        assert year is not None, problems
        print(f"portal load (re-run of the year + statements): {time.perf_counter() - t0:.1f} s")
        codes = list(dict.fromkeys(str(c) for c in year.bills["Department"]))
        period = year.period
        db = f"sqlite:///{folder / 'portal.sqlite'}"
        users = [(f"user{i}", codes[i % len(codes)]) for i in range(args.sessions)]
        _add_users(book, db, users)

        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "costloop.cli",
                "serve",
                str(book),
                "--port",
                str(port),
                "--db",
                db,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            t0 = time.perf_counter()
            deadline = time.monotonic() + 600
            while True:
                try:
                    httpx.get(f"{base}/login", timeout=1)
                    break
                except httpx.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline
                    time.sleep(0.2)
            print(f"server answering {time.perf_counter() - t0:.1f} s after it started")
            clients = [(_sign_in(base, u), code) for u, code in users]
            bill_times: list[tuple[float, float]] = []  # (when it started, how long it took)
            requests = 0
            memory = {"now": 0.0, "peak": 0.0, "own": {}}
            loads: list[float] = []
            failures: list[str] = []
            lock = threading.Lock()
            done = threading.Event()

            def session(client: httpx.Client, code: str) -> None:
                nonlocal requests
                pace = random.Random(code)  # the same waits each time the bench is run
                if args.think and not args.lockstep:
                    done.wait(pace.uniform(0.0, args.think))  # not all at the first second
                paths = [f"/d/{code}/{period}", f"/d/{code}/{period}/lines/1", "/"]
                n = 0
                while not done.is_set():
                    path = paths[n % len(paths)]
                    n += 1
                    started = time.perf_counter()
                    try:
                        answer = client.get(path)
                        ok = answer.status_code == 200
                    except httpx.HTTPError as exc:
                        ok, answer = False, exc
                    took = time.perf_counter() - started
                    with lock:
                        requests += 1
                        if not ok:
                            failures.append(f"{path}: {answer}")
                        elif path == paths[0]:
                            bill_times.append((started, took))
                    if args.think:
                        jitter = 1.0 if args.lockstep else pace.uniform(0.5, 1.5)
                        done.wait(args.think * jitter)

            def watch() -> None:
                # Memory of every server process, and the machine's load, once a second.
                while not done.wait(1.0):
                    now_mb, own = _rss_mb(_tree(server.pid))
                    memory["now"] = now_mb
                    memory["peak"] = max(memory["peak"], now_mb)
                    for p, mb in own.items():
                        memory["own"][p] = max(memory["own"].get(p, 0.0), mb)
                    loads.append(os.getloadavg()[0])

            threads = [threading.Thread(target=session, args=c) for c in clients]
            threads.append(threading.Thread(target=watch))
            for t in threads:
                t.start()
            started = time.monotonic()
            time.sleep(args.seconds / 2)
            t0 = time.perf_counter()
            assert run_book(book).ok  # a new run while serving: the portal reloads
            changed = time.perf_counter()
            print(f"re-ran the workbook while serving: {changed - t0:.1f} s")
            # The sessions go on until the portal shows the new run (and at least --seconds).
            footer = r"Bills of run (\w+ \([^)]+\))"
            watcher = httpx.Client(base_url=base, cookies=clients[0][0].cookies, timeout=30)
            while True:
                reloaded = re.search(footer, watcher.get("/").text).group(1)
                if not reloaded.startswith(year.stamp.run_id):
                    break
                assert time.perf_counter() - changed < 600, "the portal never reloaded"
                time.sleep(0.2)
            shown = time.perf_counter()
            print(f"the portal showed the new run {shown - changed:.1f} s after the file changed")
            time.sleep(max(0.0, args.seconds - (time.monotonic() - started)))
            done.set()
            for t in threads:
                t.join()
            watcher.close()
            for client, _ in clients:
                client.close()
        finally:
            server.terminate()
            server.wait(30)
        seconds = time.monotonic() - started
        print(
            f"{args.sessions} sessions, {seconds:.0f} s, think time {args.think:g} s"
            f"{' (lockstep)' if args.lockstep else ''}: {requests:,} requests, "
            f"{requests / seconds:.0f} a second"
        )
        print(f"bill page latency: {_percentiles([took for _, took in bill_times])}")
        during = [took for at, took in bill_times if changed <= at <= shown]
        print(f"  while reloading ({shown - changed:.1f} s): {_percentiles(during)}")
        print(
            f"server memory: peak {memory['peak']:.0f} MB resident over all its processes "
            f"(at the end {memory['now']:.0f} MB); each process's own peak: "
            + ", ".join(f"{mb:.0f}" for mb in sorted(memory["own"].values(), reverse=True))
            + " MB"
        )
        if loads:
            print(
                f"load average (1 min) while measuring: {statistics.mean(loads):.1f} mean, "
                f"{max(loads):.1f} max, on {os.cpu_count()} cores (the client's threads too)"
            )
        print(
            f"failed requests: {len(failures)}" + (f" (first: {failures[0]})" if failures else "")
        )
        print(
            f"run shown at the end: {reloaded}; at the start: {year.stamp.run_id} "
            f"({year.stamp.run_time} UTC)"
        )
        shutil.rmtree(folder, ignore_errors=True)
        return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
