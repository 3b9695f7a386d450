"""Benchmark the department portal: bill pages under concurrent sessions, and a reload.

Run: ``python benchmarks/bench_portal.py --rows 1000000 --departments 2000 --sessions 50``
(the issue's figure; small sizes such as ``--rows 20000 --departments 200`` check it
runs). It generates a workbook (benchmarks/bench_scale.py's generator), runs it, adds
one portal user per session, starts the real `costloop serve` in its own process, and
signs each session in. Then every session asks for its department's bill page, a
line of it and the home page over and over for ``--seconds``; half way through the
workbook is run again (a new Run ID), so the portal reloads while serving. It prints
the latency percentiles of the bill pages and how many requests failed (none may).
A script, not a test: figures depend on the machine.
"""

from __future__ import annotations

import argparse
import io
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
from bench_scale import generate

from costloop.bills.source import load_billed_year
from costloop.cli import main as costloop
from costloop.engine.pipeline.commands import run_book

PASSWORD = "bench-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _add_user(book: Path, db: str, user: str, department: str) -> None:
    old = sys.stdin
    sys.stdin = io.StringIO(PASSWORD + "\n")
    try:
        args = ["portal", "user", "add", str(book), user, "--department", department]
        assert costloop([*args, "--db", db]) == 0
    finally:
        sys.stdin = old


def _sign_in(base: str, user: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
    answer = client.post(
        "/login", data={"username": user, "password": PASSWORD, "csrf_token": token}
    )
    assert answer.status_code == 303, answer.text
    return client


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
        help="seconds a session waits between its requests (0: ask again at once, the worst case)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="costloop-bench-portal-") as tmp:
        folder = Path(tmp)
        book = folder / "book.xlsx"
        t0 = time.perf_counter()
        generate(book, args.rows, departments=args.departments)
        outcome = run_book(book)
        assert outcome.ok, outcome.problems[:5]
        print(
            f"workbook: {args.rows:,} usage rows, {args.departments:,} departments, "
            f"generated and run in {time.perf_counter() - t0:.1f} s"
        )
        t0 = time.perf_counter()
        year, problems = load_billed_year(book)
        assert year is not None, problems
        print(f"portal load (re-run of the year + statements): {time.perf_counter() - t0:.1f} s")
        codes = list(dict.fromkeys(str(c) for c in year.bills["Department"]))
        period = year.period
        db = f"sqlite:///{folder / 'portal.sqlite'}"
        users = [(f"user{i}", codes[i % len(codes)]) for i in range(args.sessions)]
        for user, code in users:
            _add_user(book, db, user, code)

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
            deadline = time.monotonic() + 600
            while True:
                try:
                    httpx.get(f"{base}/login", timeout=1)
                    break
                except httpx.TransportError:
                    assert server.poll() is None and time.monotonic() < deadline
                    time.sleep(0.2)
            clients = [(_sign_in(base, u), code) for u, code in users]
            bill_times: list[float] = []
            failures: list[str] = []
            lock = threading.Lock()
            done = threading.Event()

            def session(client: httpx.Client, code: str) -> None:
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
                        if not ok:
                            failures.append(f"{path}: {answer}")
                        elif path == paths[0]:
                            bill_times.append(took)
                    if args.think:
                        done.wait(args.think)

            threads = [threading.Thread(target=session, args=c) for c in clients]
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
            print(
                f"the portal showed the new run {time.perf_counter() - changed:.1f} s after "
                "the file changed"
            )
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
        bill_times.sort()
        q = statistics.quantiles(bill_times, n=100)
        seconds = time.monotonic() - started
        print(
            f"{args.sessions} sessions, {seconds:.0f} s, think time {args.think:g} s: "
            f"{len(bill_times):,} bill pages"
        )
        print(
            f"bill page latency: p50 {q[49] * 1000:.0f} ms, p95 {q[94] * 1000:.0f} ms, "
            f"p99 {q[98] * 1000:.0f} ms, max {bill_times[-1] * 1000:.0f} ms"
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
