"""Dashboard load: N concurrent logged-in clients drive the real Dash callbacks; latency each.

    python -m bench.load_dashboard --serve --database-url sqlite:////path/segmint.db --clients 10
    python -m bench.load_dashboard --url http://127.0.0.1:8050 --user NAME --password PW

With --serve it adds a dashboard user (`segmint users add`, password on stdin) and starts
`segmint serve` on a free port of 127.0.0.1 against that database (which must hold a run), and
stops it afterwards. Each client is a requests.Session that logs in through POST /login (form
fields username and password), then visits every page the way the browser does: the Dash pages
routing callback for the page's path, then every server callback whose inputs are in the page's
layout, in dependency order, with the values the layout holds. Callbacks and layouts are read
from the running app (/_dash-layout, /_dash-dependencies), so the script follows the dashboard as
it changes. It reports p50/p95/p99 latency and the median response size per page and callback,
and errors.

Then, unless --window none, an analyst's custom date window: every client visits the filtered
pages (the ones whose filter bar shows) with ?since=...&until=... (by default the last 90 days of
the data, from the date picker's bounds), for the same number of rounds. The first request for a
new window recomputes RFM and classes (the others wait for it), so that phase is reported apart:
its first round ("cold") and the later rounds, served from the cache. With --serve the server's
cache folder is emptied first, so the cold round is really cold.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

from bench.measure import REPO

PAGES_LOCATION = "_pages_location"
PAGES_CONTENT = "_pages_content"
# The filter bar's "apply" navigates to a new URL: the next visit's routing call covers it.
NAVIGATE_OUTPUT = "shell-navigate.href"
FILTER_DATES = "filter-dates"
FILTER_BAR_STYLE = "filter-bar.style"


@dataclass(frozen=True)
class Callback:
    output: str  # the callback's key, as /_dash-dependencies spells it
    outputs: list[dict[str, str]]
    inputs: list[dict[str, str]]
    state: list[dict[str, str]]
    initial: bool  # fired when its inputs appear (not prevent_initial_call)

    @property
    def multi(self) -> bool:
        return self.output.startswith("..")

    @property
    def label(self) -> str:
        """Short name for the report: "render" for the page routing, else the output ids."""
        if any(o["id"] == PAGES_CONTENT for o in self.outputs):
            return "render (page layout)"
        names = list(dict.fromkeys(o["id"] for o in self.outputs))
        return "+".join(names) + ("" if self.multi else f".{self.outputs[0]['property']}")


def parse_output(output: str) -> list[dict[str, str]]:
    parts = output[2:-2].split("...") if output.startswith("..") else [output]
    found = []
    for part in parts:
        component, prop = part.rsplit(".", 1)
        found.append({"id": component, "property": prop.split("@", 1)[0]})
    return found


def load_callbacks(dependencies: list[dict[str, Any]]) -> list[Callback]:
    """Server-side callbacks with plain string ids (pattern-matching ones are left out)."""
    callbacks = []
    for dep in dependencies:
        if dep.get("clientside_function") or "{" in dep["output"]:
            continue
        if any(str(item["id"]).startswith("{") for item in dep["inputs"] + dep.get("state", [])):
            continue
        callbacks.append(Callback(
            output=dep["output"], outputs=parse_output(dep["output"]),
            inputs=[{"id": i["id"], "property": i["property"]} for i in dep["inputs"]],
            state=[{"id": s["id"], "property": s["property"]} for s in dep.get("state", [])],
            initial=not dep.get("prevent_initial_call", False)))
    return callbacks


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every component (a dict with type, namespace and props) in a layout tree."""
    if isinstance(node, list):
        for child in node:
            yield from walk(child)
    elif isinstance(node, dict):
        if "props" in node and "type" in node:
            yield node
            for value in node["props"].values():
                yield from walk(value)
        else:
            for value in node.values():
                yield from walk(value)


def components_of(layout: Any) -> dict[str, dict[str, Any]]:
    return {str(c["props"]["id"]): dict(c["props"]) for c in walk(layout)
            if isinstance(c["props"].get("id"), str)}


def page_paths(layout: Any) -> list[str]:
    """Internal links of the shell (the navbar), in order, without duplicates or the logout."""
    paths: list[str] = []
    for component in walk(layout):
        href = component["props"].get("href")
        if (isinstance(href, str) and href.startswith("/") and not href.startswith("/_")
                and href.split("?")[0] not in ("/logout", "/login")):
            path = href.split("?")[0]
            if path not in paths:
                paths.append(path)
    return paths or ["/"]


@dataclass
class Client:
    base: str
    user: str
    password: str
    callbacks: list[Callback]
    shell: dict[str, dict[str, Any]]
    customer: str | None = None
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    sizes: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    label_prefix: str = ""  # marks the phase (the custom-window visits)

    def __post_init__(self) -> None:
        self.session = requests.Session()

    def login(self) -> None:
        response = sign_in(self.session, self.base, self.user, self.password)
        if response.status_code not in (302, 303) or "segmint_session" not in self.session.cookies:
            raise RuntimeError(f"login as {self.user!r} failed: HTTP {response.status_code}")

    def visit(self, path: str, search: str = "") -> None:
        """Render one page like the browser, then use each of its controls once.

        First the Dash pages routing callback for the path (it builds the page and its
        figures), then the callbacks that fire when their inputs appear, in dependency order,
        then each interactive callback (prevent_initial_call) whose inputs are on the page, with
        a click, another dropdown option or a customer id typed in.
        """
        components = {key: dict(value) for key, value in self.shell.items()}
        components.setdefault(PAGES_LOCATION, {})
        components[PAGES_LOCATION].update(pathname=path, search=search, hash="",
                                          href=path + search)
        routing = [cb for cb in self.callbacks
                   if any(o["id"] == PAGES_CONTENT for o in cb.outputs)]
        for cb in routing:
            self._fire(path, cb, components)
        fired = {cb.output for cb in routing}
        initial = [cb for cb in self.callbacks if cb.initial]
        while True:
            ready = [cb for cb in initial if cb.output not in fired
                     and all(i["id"] in components for i in cb.inputs)
                     and not self._waits_on_other(cb, initial, fired, components)]
            if not ready:
                break
            for cb in ready:
                fired.add(cb.output)
                self._fire(path, cb, components)
        for cb in self.callbacks:
            if (cb.initial or cb.output in fired or cb.output == NAVIGATE_OUTPUT
                    or not all(i["id"] in components for i in cb.inputs)):
                continue
            for item in cb.inputs:
                self._interact(components[item["id"]], item["property"])
            self._fire(path, cb, components)

    def _interact(self, props: dict[str, Any], prop: str) -> None:
        """What a user does to a control: click it, pick another option, type a customer id."""
        value = props.get(prop)
        if prop == "n_clicks":
            props[prop] = (value or 0) + 1
        elif prop == "value" and props.get("options"):
            choices = [o.get("value") if isinstance(o, dict) else o for o in props["options"]]
            others = [choice for choice in choices if choice != value]
            props[prop] = others[0] if others else value
        elif prop == "value" and not value:
            props[prop] = self.customer or _example(props.get("placeholder"))
        elif prop == "getRowsRequest":
            # An AG Grid with server-side rows asks for its first block when it appears.
            block = (props.get("dashGridOptions") or {}).get("cacheBlockSize", 100)
            props[prop] = {"startRow": 0, "endRow": block, "sortModel": [], "filterModel": {}}

    def _waits_on_other(self, cb: Callback, pending: list[Callback], fired: set[str],
                        components: dict[str, dict[str, Any]]) -> bool:
        """True when another callback that can fire now produces one of cb's inputs."""
        wanted = {(i["id"], i["property"]) for i in cb.inputs}
        for other in pending:
            if other is cb or other.output in fired:
                continue
            if not all(i["id"] in components for i in other.inputs):
                continue
            if any((o["id"], o["property"]) in wanted for o in other.outputs):
                return True
        return False

    def _fire(self, path: str, cb: Callback, components: dict[str, dict[str, Any]]) -> None:
        def values(items: list[dict[str, str]]) -> list[dict[str, Any]]:
            return [{**item, "value": components.get(item["id"], {}).get(item["property"])}
                    for item in items]

        payload = {
            "output": cb.output,
            "outputs": cb.outputs if cb.multi else cb.outputs[0],
            "inputs": values(cb.inputs),
            "state": values(cb.state),
            "changedPropIds": [f"{i['id']}.{i['property']}" for i in cb.inputs[:1]],
        }
        label = f"{self.label_prefix}{path} {cb.label}"
        started = time.perf_counter()
        try:
            response = self.session.post(f"{self.base}/_dash-update-component", json=payload,
                                         timeout=120)
        except requests.RequestException:
            self.errors[label] += 1
            return
        elapsed = time.perf_counter() - started
        if response.status_code == 204:  # PreventUpdate
            self.latencies[label].append(elapsed)
            self.sizes[label].append(0)
            return
        if response.status_code != 200:
            self.errors[label] += 1
            return
        self.latencies[label].append(elapsed)
        self.sizes[label].append(len(response.content))
        for component, props in response.json().get("response", {}).items():
            target = components.setdefault(component, {})
            target.update(props)
            for value in props.values():
                components.update({k: v for k, v in components_of(value).items()
                                   if k not in components})


def _example(placeholder: Any) -> str | None:
    """The example in a placeholder like "customer id, e.g. 12347"."""
    if isinstance(placeholder, str) and "e.g." in placeholder:
        return placeholder.split("e.g.", 1)[1].strip().split()[0]
    return None


def percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def default_window(shell: dict[str, dict[str, Any]], days: int = 90) -> str | None:
    """'SINCE:UNTIL', the last `days` days of the data (the date picker's bounds), or None."""
    picker = shell.get(FILTER_DATES) or {}
    last = picker.get("max_date_allowed")
    if not last:
        return None
    until = date.fromisoformat(str(last)[:10])
    first = picker.get("min_date_allowed")
    since = until - timedelta(days=days - 1)
    if first:
        since = max(since, date.fromisoformat(str(first)[:10]))
    return f"{since.isoformat()}:{until.isoformat()}"


def filtered_pages(base: str, session: requests.Session, paths: list[str],
                   callbacks: list[Callback]) -> list[str]:
    """The pages that show the filter bar (the ones a date window changes), asked of the app."""
    style = [cb for cb in callbacks if cb.output == FILTER_BAR_STYLE]
    if not style:
        return paths
    found = []
    for path in paths:
        payload = {"output": style[0].output, "outputs": style[0].outputs[0],
                   "inputs": [{"id": PAGES_LOCATION, "property": "pathname", "value": path}],
                   "state": [], "changedPropIds": [f"{PAGES_LOCATION}.pathname"]}
        response = session.post(f"{base}/_dash-update-component", json=payload, timeout=60)
        shown = response.json()["response"]["filter-bar"]["style"] if response.ok else {}
        if shown.get("display") != "none":
            found.append(path)
    return found


def summarise(clients: list[Client], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per-callback rows and the overall row for the labels that start with prefix."""
    latencies: dict[str, list[float]] = defaultdict(list)
    sizes: dict[str, list[int]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for client in clients:
        for label, values in client.latencies.items():
            if label.startswith(prefix) and (prefix or not label.startswith("[")):
                latencies[label].extend(values)
                sizes[label].extend(client.sizes[label])
        for label, count in client.errors.items():
            if label.startswith(prefix) and (prefix or not label.startswith("[")):
                errors[label] += count
    nan = float("nan")
    rows = {label: {"n": len(values), "p50": percentile(values, 50),
                    "p95": percentile(values, 95), "p99": percentile(values, 99),
                    "max": max(values), "bytes": int(statistics.median(sizes[label])),
                    "errors": errors.get(label, 0)}
            for label, values in sorted(latencies.items())}
    for label, count in errors.items():
        rows.setdefault(label, {"n": 0, "p50": nan, "p95": nan, "p99": nan, "max": nan,
                                "bytes": 0, "errors": count})
    every = [v for values in latencies.values() for v in values]
    overall = {"n": len(every), "p50": percentile(every, 50) if every else nan,
               "p95": percentile(every, 95) if every else nan,
               "p99": percentile(every, 99) if every else nan,
               "max": max(every) if every else nan,
               "bytes": int(statistics.median([b for v in sizes.values() for b in v]))
               if every else 0, "errors": sum(errors.values())}
    return rows, overall


def sign_in(session: requests.Session, base: str, user: str,
            password: str) -> requests.Response:
    """Sign in as a browser does: the login form's hidden csrf_token posted back, then a page
    load whose _csrf_token cookie goes into X-CSRFToken on every callback (as dash-renderer)."""
    page = session.get(f"{base}/login", timeout=60).text
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    response = session.post(f"{base}/login", allow_redirects=False, timeout=60,
                            data={"username": user, "password": password,
                                  "csrf_token": found.group(1) if found else ""})
    if response.status_code in (302, 303):
        session.get(f"{base}/", timeout=60)
        session.headers["X-CSRFToken"] = session.cookies.get("_csrf_token", "")
    return response


COLD = "[window, cold] "
WARMED = "dashboard cache warmed"  # dashboard.serve's log line when its warm-up is done
WARM = "[window] "


def run_load(base: str, user: str, password: str, *, clients: int, rounds: int,
             customer: str | None = None, window: str | None = "auto",
             pages_phase: bool = True, only: list[str] | None = None) -> dict[str, Any]:
    probe = requests.Session()
    response = sign_in(probe, base, user, password)
    if response.status_code not in (302, 303):
        raise SystemExit(f"login as {user!r} at {base} failed: HTTP {response.status_code}")
    layout = probe.get(f"{base}/_dash-layout", timeout=60).json()
    callbacks = load_callbacks(probe.get(f"{base}/_dash-dependencies", timeout=60).json())
    shell = components_of(layout)
    paths = page_paths(layout)
    print(f"{len(callbacks)} server callbacks, pages {paths}", flush=True)

    workers = [Client(base, user, password, callbacks, shell, customer) for _ in range(clients)]
    failures: list[str] = []

    def drive(client: Client, offset: int, pages: list[str], search: str, phase: str) -> None:
        try:
            for round_ in range(rounds):
                if phase:
                    client.label_prefix = COLD if round_ == 0 else WARM
                for index in range(len(pages)):
                    client.visit(pages[(index + offset + round_) % len(pages)], search)
        except Exception as exc:  # noqa: BLE001 - reported with the figures
            failures.append(f"{phase or 'pages'}: {type(exc).__name__}: {exc}")

    def phase(pages: list[str], search: str, name: str) -> float:
        started = time.perf_counter()
        threads = [threading.Thread(target=drive, args=(client, i, pages, search, name))
                   for i, client in enumerate(workers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started

    for client in workers:
        client.login()
    wall = phase(paths, "", "") if pages_phase else 0.0
    rows, overall = summarise(workers, "")
    result: dict[str, Any] = {
        "clients": clients, "rounds": rounds, "pages": paths, "wall_seconds": wall,
        "requests_per_second": overall["n"] / wall if wall else 0.0, "callbacks": rows,
        "all": overall, "failures": failures}

    if window == "auto":
        window = default_window(shell)
    if window and window != "none":
        # Several windows (comma-separated): each one's first round is cold, the later cached.
        spans = [tuple(item.split(":", 1)) for item in window.split(",")]
        pages = [path for path in filtered_pages(base, probe, paths, callbacks)
                 if not only or path in only]
        window_wall = 0.0
        for since, until in spans:
            print(f"custom window {since} – {until} on {pages}", flush=True)
            window_wall += phase(pages, f"?since={since}&until={until}", "window")
        cold, cold_all = summarise(workers, COLD)
        warm, warm_all = summarise(workers, WARM)
        result["window"] = {"since": spans[0][0], "until": spans[0][1],
                            "windows": [f"{since}:{until}" for since, until in spans],
                            "pages": pages, "wall_seconds": window_wall, "cold": cold,
                            "cold_all": cold_all, "warm": warm, "warm_all": warm_all}
    return result


def _table(rows: dict[str, Any], overall: dict[str, Any], title: str) -> list[str]:
    width = max([len(label) for label in rows] + [len(title)])
    lines = [f"{title:{width}s} {'n':>5s} {'p50 ms':>8s} {'p95 ms':>8s} {'p99 ms':>8s} "
             f"{'max ms':>8s} {'kB':>7s} {'errors':>6s}"]
    for label, row in [*rows.items(), ("all callbacks", overall)]:
        lines.append(f"{label:{width}s} {row['n']:5d} {row['p50'] * 1000:8.0f} "
                     f"{row['p95'] * 1000:8.0f} {row['p99'] * 1000:8.0f} "
                     f"{row['max'] * 1000:8.0f} {row['bytes'] / 1000:7.1f} {row['errors']:6d}")
    return lines


def format_table(result: dict[str, Any]) -> str:
    lines = _table(result["callbacks"], result["all"], "page and callback")
    lines.append(f"\n{result['clients']} clients x {result['rounds']} rounds of "
                 f"{len(result['pages'])} pages in {result['wall_seconds']:.1f}s "
                 f"({result['requests_per_second']:.1f} callback requests/s); "
                 "kB: median response body")
    window = result.get("window")
    if window:
        spans = ", ".join(window.get("windows") or [f"{window['since']}:{window['until']}"])
        lines.append(f"\nCustom date windows {spans} (pages {', '.join(window['pages'])}), "
                     f"{window['wall_seconds']:.1f}s:")
        lines += _table(window["cold"], window["cold_all"], "first round (cold cache)")
        lines.append("")
        lines += _table(window["warm"], window["warm_all"], "later rounds (cached)")
    for failure in result["failures"]:
        lines.append(f"client failed: {failure}")
    for pid, (peak, command) in sorted((result.get("peak_rss_mib") or {}).items()):
        lines.append(f"peak RSS {peak:7.0f} MiB  pid {pid}  {command}")
    return "\n".join(lines)


def peak_rss(root: int) -> dict[int, tuple[float, str]]:
    """VmHWM (peak resident memory, MiB) and command of a process and its descendants, read
    from /proc while they run (Linux): the server's master, its workers, the warm-up child."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    family, frontier = {root}, [root]
    while frontier:
        current = frontier.pop()
        children = [pid for pid, parent in parents.items() if parent == current]
        family.update(children)
        frontier.extend(children)
    found: dict[int, tuple[float, str]] = {}
    for pid in sorted(family):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            command = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                found[pid] = (int(line.split()[1]) / 1024, command[-60:])
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(database_url: str, workdir: Path, user: str, password: str,
                 workers: int | None, src: Path = REPO,
                 wait_warm: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    """Add the user and start `segmint serve` on a free port; returns (process, base URL)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.toml"
    if not config.exists():
        config.write_text("# dashboard load benchmark: every default\n")
    # A fresh start, as after a deploy: only what `serve` warms is cached (the default
    # cache_dir of that config), so the custom window's first round is really cold.
    shutil.rmtree(workdir / "var" / "cache" / "dashboard", ignore_errors=True)
    env = {**os.environ, "SEGMINT_DATABASE_URL": database_url,
           "SEGMINT_SECRET_KEY": secrets.token_urlsafe(32),
           "PYTHONPATH": str(src) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    segmint = [sys.executable, "-m", "segmint", "--config", str(config)]
    subprocess.run([*segmint, "users", "add", user, "--role", "analyst"], input=password + "\n",
                   text=True, env=env, cwd=workdir, capture_output=True, check=True)
    port = _free_port()
    command = [*segmint, "serve", "--host", "127.0.0.1", "--port", str(port)]
    if workers:
        command += ["--workers", str(workers)]
    log = open(workdir / "serve.log", "wb")  # noqa: SIM115 - closed with the process
    process = subprocess.Popen(command, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"segmint serve exited {process.returncode}; see {log.name}")
        try:
            if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.5)
    else:
        process.terminate()
        raise SystemExit(f"segmint serve did not answer on {base} within 90 s; see {log.name}")
    # The default view's warm-up runs beside the first visitors; --wait-warm measures the
    # windows without it.
    deadline = time.monotonic() + 1800
    while wait_warm and time.monotonic() < deadline:
        if WARMED in (workdir / "serve.log").read_text(errors="replace"):
            break
        if process.poll() is not None:
            raise SystemExit(f"segmint serve exited {process.returncode}; see {log.name}")
        time.sleep(1)
    return process, base


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a running dashboard (default: start one with --serve)")
    parser.add_argument("--serve", action="store_true", help="start `segmint serve` for the run")
    parser.add_argument("--database-url", help="with --serve: the database (must hold a run)")
    parser.add_argument("--workdir", type=Path, default=Path("bench/results/load"),
                        help="with --serve: config and server log go here")
    parser.add_argument("--workers", type=int, help="with --serve: gunicorn workers")
    parser.add_argument("--src", type=Path, default=REPO,
                        help="with --serve: the checkout whose code the server runs (default: "
                        "this one), so one venv measures any commit")
    parser.add_argument("--wait-warm", action="store_true",
                        help="with --serve: start once the server's warm-up is done")
    parser.add_argument("--only", help="comma-separated paths: the window phase visits only "
                        "these pages (e.g. /,/products,/segments)")
    parser.add_argument("--no-pages", action="store_true",
                        help="skip the unfiltered pages: only the custom windows")
    parser.add_argument("--user", default="bench-load")
    parser.add_argument("--password", default="bench-load-password")
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3, help="visits of every page per client")
    parser.add_argument("--customer", help="customer id typed into look-ups (default: the "
                        "example the page offers)")
    parser.add_argument("--window", default="auto",
                        help="custom date windows SINCE:UNTIL[,SINCE:UNTIL...] (ISO dates) "
                        "visited after the pages, each cold first; 'auto': the last 90 days of "
                        "the data; 'none': skip")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    args = parser.parse_args(argv)
    if bool(args.url) == bool(args.serve):
        parser.error("give either --url or --serve (with --database-url)")
    if args.serve and not args.database_url:
        parser.error("--serve needs --database-url")

    process = None
    try:
        if args.serve:
            process, base = start_server(args.database_url, args.workdir.resolve(), args.user,
                                         args.password, args.workers, args.src.resolve(),
                                         args.wait_warm)
        else:
            base = args.url.rstrip("/")
        result = run_load(base, args.user, args.password, clients=args.clients,
                          rounds=args.rounds, customer=args.customer, window=args.window,
                          pages_phase=not args.no_pages,
                          only=args.only.split(",") if args.only else None)
        if process is not None:
            result["peak_rss_mib"] = peak_rss(process.pid)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
    print(format_table(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
