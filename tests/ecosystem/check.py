#!/usr/bin/env python3
"""End-to-end checks of tap-harvest with the real tools of its ecosystem.

Run by tests/ecosystem/run, which builds the binaries, creates the virtualenvs, starts
PostgreSQL and the Harvest simulator, and passes everything in ECO_* environment variables.
Each check prints `ok` or `FAIL` with the reason; the last line is `ecosystem: N passed, M
failed` and the exit code is 1 if anything failed. Logs of every command are kept in
$ECO_RUN/logs/.

Checks (GitHub issue 7):
  streams      the stream table (from the tap's own, by an integration test) covers the tap's
               --discover catalog: every stream's row count has a rule
  conventions  --version, --about (text/json/markdown), meltano.yml mirrors --about (keys,
               kinds, sensitive flags, defaults, required groups), --test
               (good config, bad token, wrong account, missing User-Agent), config errors,
               Singer metric lines, progress lines, log level variables, closed stdout
  pip/cargo    `pip install .` (maturin wheel) and `cargo install --path .` give a working binary
  singer-check-tap  on a full run, on an incremental run, and with the state Meltano stored
  meltano      install, invoke --discover / --about, config test, run into target-jsonl twice
               (the second run incremental through Meltano's stored state)
  postgres     run into meltanolabs-target-postgres: every table's row count equals the
               simulator's ground truth; mutate; an incremental run upserts
"""

from __future__ import annotations

import datetime as dt
import http.server
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

import yaml  # from the meltano virtualenv, which runs this script

E = os.environ
ROOT = Path(E["ECO_ROOT"])
RUN = Path(E["ECO_RUN"])
TAP = E["ECO_TAP"]
MELTANO = E["ECO_MELTANO"]
SINGER_CHECK_TAP = E["ECO_SINGER_CHECK_TAP"]
BASE_PYTHON = E["ECO_BASE_PYTHON"]
CONFIG_PATH = Path(E["ECO_CONFIG"])
CONTROL = E["ECO_CONTROL_URL"]
PSQL = E["ECO_PSQL"]
PG_PORT = E["TARGET_POSTGRES_PORT"]
PG_DB = E["TARGET_POSTGRES_DATABASE"]
PG_USER = E["TARGET_POSTGRES_USER"]
PG_SCHEMA = "tap_harvest"  # the extractor's namespace (meltano.yml)
START_DATE = E["TAP_HARVEST_START_DATE"]

# Report windows end today (UTC): a run straddling midnight would compare different windows.
_now = dt.datetime.now(dt.timezone.utc)
if _now.hour == 23 and _now.minute >= 55:
    _wait = (60 - _now.minute) * 60 - _now.second + 5
    print(f"waiting {_wait} s for midnight UTC to pass (report windows end today)", flush=True)
    time.sleep(_wait)

LOGS = RUN / "logs"
LOGS.mkdir(parents=True, exist_ok=True)
CONFIG = json.loads(CONFIG_PATH.read_text())

CAPABILITIES = {"catalog", "discover", "state", "about", "test", "activate-version", "stream-maps",
                "schema-flattening"}
SECRETS = {"access_token", "client_secret", "refresh_token"}
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \| (DEBUG|INFO|WARNING|ERROR|CRITICAL) +\| tap-harvest +\| (.*)$"
)
PROGRESS = re.compile(
    r"^stream (\w+) finished: (\d+) records, (?:(\d+) pages, (\d+) requests .*, ([\d.]+) s waited on the rate limit"
    r"|made from \w+, no request of its own)$"
)

# The oracle of the row counts: where the simulator's ground truth of each stream is, from the
# tap's own stream table. --discover shows neither a stream's path nor what a derived stream is
# made of, so the integration test `ecosystem::the_stream_table_counts_every_stream_as_the_ground_truth_does`
# (tests/integration/ecosystem.rs) writes them from `tap_harvest::streams::STREAMS` to
# $ECO_STREAM_TABLE, having held the counts it gives equal to its own ground truth; a new stream
# needs no edit here. The "stream table covers the --discover catalog" check fails when the table
# and the release binary's catalog name different streams.
TABLE = json.loads(Path(E["ECO_STREAM_TABLE"]).read_text())["streams"]

# Streams read from one simulator resource each (the envelope the stream is read from): the
# truth row count is the stream's row count; a child's truth rows carry the parent id
# (user_teammates: one row per (manager, teammate), `user_id` the manager's).
RESOURCE_OF = {s: how["resource"] for s, how in TABLE.items() if "resource" in how}
# Reports read in 365-day windows: stream -> the simulator's report path.
REPORTS = {s: how["report"] for s, how in TABLE.items() if "report" in how and how["windowed"]}
# The reports read once, without a window: stream -> the simulator's report path.
UNWINDOWED_REPORTS = {s: how["report"] for s, how in TABLE.items() if "report" in how and not how["windowed"]}


def _derived_count(how):
    """A derived stream's row count from its parent's truth rows: the elements of the field it
    is made from (a list), or the field itself (an object); with `distinct`, those of distinct
    key only (external_reference is sent once per reference id per sync, so it counts distinct
    ids, as RECORD messages in target-jsonl and as rows in PostgreSQL alike)."""

    def count(rows):
        made = []
        for row in rows:
            v = row.get(how["consumes"])
            made += v if isinstance(v, list) else [v] if isinstance(v, dict) else []
        if not how["distinct"]:
            return len(made)
        return len({tuple(json.dumps(m.get(k)) for k in how["key_properties"]) for m in made})

    return count


# Streams made from their parent's records (no request of their own): stream -> (the
# simulator resource of the parent, the stream's row count from that resource's truth rows).
DERIVED = {s: (how["rows_of"], _derived_count(how)) for s, how in TABLE.items() if "rows_of" in how}
# The streams whose deletions reach the target (not the reports' sums, not the company).
WITH_DELETIONS = {s for s, how in TABLE.items() if how["deletions"]}
COUNTED_BY = {"RESOURCE_OF": RESOURCE_OF, "REPORTS": REPORTS, "UNWINDOWED_REPORTS": UNWINDOWED_REPORTS,
              "DERIVED": DERIVED}


def stream_of(resource):
    """The one stream read from a simulator resource (the mutation checks name resources)."""
    streams = [s for s, r in RESOURCE_OF.items() if r == resource]
    assert len(streams) == 1, f"resource {resource}: streams {streams}"
    return streams[0]


# ---------------------------------------------------------------- harness

class Failed(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise Failed(msg)


RESULTS = {"passed": 0, "failed": [], "skipped": []}
OK = set()


def check(name, requires=()):
    """Runs the decorated function at once as one check."""

    def deco(fn):
        missing = [r for r in requires if r not in OK]
        if missing:
            RESULTS["skipped"].append(name)
            print(f"SKIP {name} (needs {', '.join(missing)})", flush=True)
            return fn
        t0 = time.monotonic()
        try:
            note = fn()
        except Failed as e:
            RESULTS["failed"].append(name)
            print(f"FAIL {name}: {e}", flush=True)
        except Exception:  # a bug or an unexpected output: show where
            RESULTS["failed"].append(name)
            print(f"FAIL {name}: unexpected error\n{traceback.format_exc()}", flush=True)
        else:
            OK.add(name)
            RESULTS["passed"] += 1
            extra = f" - {note}" if note else ""
            print(f"ok   {name} ({time.monotonic() - t0:.1f} s){extra}", flush=True)
        return fn

    return deco


_n = [0]


def run(args, name, env=None, input=None, timeout=600, cwd=None):
    """Runs a command, keeps its output in logs/NN-name.{out,err}, returns CompletedProcess."""
    _n[0] += 1
    full_env = dict(E)
    if env:
        full_env.update(env)
    p = subprocess.run(
        [str(a) for a in args], input=input, capture_output=True, text=True, env=full_env,
        timeout=timeout, cwd=cwd or ROOT,
    )
    stem = LOGS / f"{_n[0]:02d}-{name}"
    Path(f"{stem}.out").write_text(p.stdout)
    Path(f"{stem}.err").write_text(f"$ {' '.join(map(str, args))}\n# exit {p.returncode}\n{p.stderr}")
    p.log = f"{stem}.err"
    return p


def tail(text, n=8):
    lines = text.strip().splitlines()
    return "\n      " + "\n      ".join(lines[-n:]) if lines else " (no output)"


def need_rc(p, rc=0):
    need(p.returncode == rc, f"exit {p.returncode}, expected {rc} (log {p.log}):{tail(p.stderr or p.stdout)}")


def http_json(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


def write_json(path, value):
    path.write_text(json.dumps(value))
    return path


def log_lines(stderr):
    """(level, message) of every stderr line; fails on a line that is not a log line."""
    out = []
    for line in stderr.splitlines():
        m = LOG_LINE.match(line)
        need(m, f"stderr line not in the log format: {line!r}")
        out.append((m.group(1), m.group(2)))
    return out


def messages(stdout):
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def last_state(msgs):
    states = [m for m in msgs if m["type"] == "STATE"]
    need(states, "no STATE message")
    need(msgs[-1]["type"] == "STATE", "the last message is not a STATE")
    return states[-1]["value"]


def records_by_stream(msgs):
    out = {}
    for m in msgs:
        if m["type"] == "RECORD":
            out.setdefault(m["stream"], []).append(m["record"])
    return out


# ---------------------------------------------------------------- ground truth

def truth(resource):
    return http_json("GET", f"{CONTROL}/truth/{resource}")


def report_windows(start, today):
    """The tap's report windows: 365 days, both ends included, the last ending today."""
    frm, out = start, []
    while frm <= today:
        to = min(frm + dt.timedelta(days=364), today)
        out.append((frm, to))
        frm = to + dt.timedelta(days=1)
    return out


def coverage_problems(catalog_streams):
    """What is wrong with the stream table against the release binary's catalog: a stream of the
    catalog that the table lacks, or one of the table that the catalog lacks (a table written
    from another tree), or an entry that no map above counts (a way of counting unknown here)."""
    catalog_streams = set(catalog_streams)
    counted = {s for m in COUNTED_BY.values() for s in m}
    problems = []
    missing = sorted(catalog_streams - set(TABLE))
    if missing:
        problems.append(f"streams of --discover that the stream table lacks (is {E['ECO_STREAM_TABLE']} "
                        f"stale?): {missing}")
    unknown = sorted(set(TABLE) - catalog_streams)
    if unknown:
        problems.append(f"streams of the stream table that --discover does not list: {unknown}")
    uncounted = {s: how for s, how in sorted(TABLE.items()) if s not in counted}
    if uncounted:
        problems.append(f"stream table entries that no map here counts: {uncounted}")
    return problems


def expected_counts():
    """Row count of every stream, computed from the simulator's ground truth now."""
    problems = coverage_problems(KEYS)
    need(not problems, "; ".join(problems))
    resources = set(RESOURCE_OF.values()) | {res for res, _ in DERIVED.values()}
    t = {r: truth(r) for r in resources}
    n = {s: len(t[r]) for s, r in RESOURCE_OF.items()}
    for stream, (res, count) in DERIVED.items():
        n[stream] = count(t[res])
    start = dt.date.fromisoformat(START_DATE[:10])
    today = dt.datetime.now(dt.timezone.utc).date()
    windows = report_windows(start, today)
    for stream, path in REPORTS.items():
        n[stream] = sum(
            len(http_json("GET", f"{CONTROL}/report/{path}?from={f}&to={to}&include_fixed_fee=true"))
            for f, to in windows
        )
    for stream, path in UNWINDOWED_REPORTS.items():
        n[stream] = len(http_json("GET", f"{CONTROL}/report/{path}"))
    return n


def mutate(resource, update, create):
    return http_json("POST", f"{CONTROL}/mutate", {"resource": resource, "update": update, "create": create})


def compare_counts(got, want, what):
    bad = [f"{s}: {got.get(s)} != {want[s]}" for s in sorted(want) if got.get(s) != want[s]]
    extra = sorted(set(got) - set(want))
    need(not bad and not extra, f"{what} differ from the simulator's truth: {'; '.join(bad)}"
         + (f"; unexpected streams {extra}" if extra else ""))


# ---------------------------------------------------------------- shared fixtures

CATALOG = json.loads(run([TAP, "--discover"], "discover").stdout)
KEYS = {s["stream"]: s["key_properties"] for s in CATALOG["streams"]}
VERSION = re.search(r'^version = "([^"]+)"', (ROOT / "Cargo.toml").read_text(), re.M).group(1)
ABOUT = {}


def keyed(stream, recs):
    return {tuple(json.dumps(r.get(k)) for k in KEYS[stream]) for r in recs}


def cfg(**changes):
    """A config file: the simulator's, with keys changed (None removes a key)."""
    c = dict(CONFIG)
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    _n[0] += 1
    return write_json(RUN / f"config-{_n[0]}.json", c)


def one_error_line(p, what):
    lines = [(lvl, msg) for lvl, msg in log_lines(p.stderr) if not msg.startswith("METRIC: ")]
    need(p.returncode != 0, f"{what}: exit 0, expected non-zero")
    need(len(lines) == 1, f"{what}: expected one line on stderr, got {len(lines)}:{tail(p.stderr)}")
    need(lines[0][0] in ("ERROR", "CRITICAL"), f"{what}: the line is {lines[0][0]}, not ERROR/CRITICAL")
    return lines[0][1]


# ---------------------------------------------------------------- conventions

print("== conventions (the release binary against the simulator)", flush=True)


@check("the stream table covers the --discover catalog: each stream counted")
def _():
    problems = coverage_problems(KEYS)
    need(not problems, "; ".join(problems))
    return f"{len(KEYS)} streams: " + ", ".join(f"{len(m)} in {name}" for name, m in COUNTED_BY.items())


@check("--version")
def _():
    p = run([TAP, "--version"], "version")
    need_rc(p)
    need(p.stdout.strip() == f"tap-harvest {VERSION}", f"--version printed {p.stdout.strip()!r}")


@check("--about --format json")
def _():
    # Meltano passes --config with --about; hub-utils parses all of stdout as JSON.
    p = run([TAP, "--about", "--format", "json", "--config", CONFIG_PATH], "about-json")
    need_rc(p)
    about = json.loads(p.stdout)
    ABOUT.update(about)
    need(about["name"] == "tap-harvest", f"name {about.get('name')!r}")
    need(about["version"] == VERSION, f"version {about.get('version')!r}")
    need(set(about["capabilities"]) == CAPABILITIES, f"capabilities {about['capabilities']}")
    s = about["settings"]
    need(s.get("type") == "object" and "properties" in s, "settings is not a JSON Schema object")
    props = s["properties"]
    for k in ["access_token", "account_id", "client_id", "client_secret", "refresh_token",
              "start_date", "user_agent", "request_timeout", "base_url"]:
        need(k in props, f"setting {k} missing")
    for k in SECRETS:
        need(props[k].get("secret") is True and props[k].get("writeOnly") is True, f"{k} not marked secret")
    need("start_date" in s.get("required", []), "start_date not required")
    return f"{len(props)} settings"


@check("--about --format markdown", requires=["--about --format json"])
def _():
    p = run([TAP, "--about", "--format", "markdown"], "about-markdown")
    need_rc(p)
    md = p.stdout
    need(md.startswith("# `tap-harvest`"), "no `# tap-harvest` title")
    for c in CAPABILITIES:
        need(f"`{c}`" in md, f"capability {c} missing")
    need("## Capabilities" in md and "## Settings" in md, "sections missing")
    settings = ABOUT["settings"]
    for k, prop in settings["properties"].items():
        row = re.search(rf"^\| {k} \| ([^|]*) \| ([^|]*) \|", md, re.M)
        need(row, f"no table row for {k}")
        required, default = row.group(1), row.group(2)
        if k in settings.get("required", []):
            need(required == "True", f"{k}: Required {required!r}, --about requires it")
        d = prop.get("default")
        want = "None" if d is None else d if isinstance(d, str) else json.dumps(d)
        need(default == want, f"{k}: Default {default!r}, --about default {want!r}")


@check("--about (text)")
def _():
    p = run([TAP, "--about"], "about-text")
    need_rc(p)
    need("Capabilities:" in p.stdout and "TAP_HARVEST_ACCESS_TOKEN" in p.stdout, "text --about incomplete")


# The Meltano setting kind of each --about type (a string with a date format is a date).
MELTANO_KINDS = {"boolean": "boolean", "integer": "integer", "number": "decimal", "string": "string",
                 "object": "object"}


def meltano_kind(prop):
    if prop.get("type") == "string" and prop.get("format") in ("date", "date-time"):
        return "date_iso8601"
    return MELTANO_KINDS.get(prop.get("type"))


def same_value(a, b):
    """A meltano.yml `value:` and a JSON Schema default: equal, 300 and 300.0 alike (but not
    True and 1)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


@check("meltano.yml mirrors --about", requires=["--about --format json"])
def _():
    m = yaml.safe_load((ROOT / "meltano.yml").read_text())
    ex = {p["name"]: p for p in m["plugins"]["extractors"]}["tap-harvest"]
    need(ex["namespace"] == "tap_harvest" and ex["executable"] == "tap-harvest", "namespace/executable")
    need(set(ex["capabilities"]) == CAPABILITIES, f"capabilities {ex['capabilities']}")
    settings = {s["name"]: s for s in ex["settings"]}
    about = ABOUT["settings"]
    props = about["properties"]
    need(set(settings) == set(props),
         f"settings differ: only in meltano.yml {sorted(set(settings) - set(props))}, "
         f"only in --about {sorted(set(props) - set(settings))}")
    bad = []
    for n, s in settings.items():
        p = props[n]
        want = meltano_kind(p)
        if s.get("kind") != want:
            bad.append(f"{n}: kind {s.get('kind')}, --about type {p.get('type')} format {p.get('format')} "
                       f"(expected kind {want})")
        if bool(s.get("sensitive")) != bool(p.get("secret")):
            bad.append(f"{n}: sensitive {bool(s.get('sensitive'))}, --about secret {bool(p.get('secret'))}")
        if "value" in s:
            if "default" not in p:
                bad.append(f"{n}: meltano.yml value {s['value']!r}, --about states no default")
            elif not same_value(s["value"], p["default"]):
                bad.append(f"{n}: meltano.yml value {s['value']!r}, --about default {p['default']!r}")
    need(not bad, "meltano.yml differs from --about: " + "; ".join(bad))
    sensitive = {n for n, s in settings.items() if s.get("sensitive")}
    need(sensitive == SECRETS, f"sensitive settings {sorted(sensitive)}")
    # Every group Meltano validates holds what --about requires: `required` always, and
    # `dependentRequired` with the setting that needs it.
    groups = [set(g) for g in ex.get("settings_group_validation", [])]
    need(groups, "no settings_group_validation")
    for g in groups:
        need(set(about.get("required", [])) <= g, f"group {sorted(g)} lacks {about.get('required')}")
        for given, needs in about.get("dependentRequired", {}).items():
            need(given not in g or set(needs) <= g, f"group {sorted(g)} has {given} but not {needs}")
    loaders = {p["name"]: p for p in m["plugins"]["loaders"]}
    need({"target-jsonl", "target-postgres"} <= set(loaders), f"loaders {sorted(loaders)}")
    left = sorted(n for n, p in props.items() if "default" in p and "value" not in settings[n])
    return f"{len(settings)} settings, {sum('value' in s for s in settings.values())} defaults compared" + (
        f" (left to the tap: {', '.join(left)})" if left else "")


@check("--test with a good config: one request, exit 0")
def _():
    http_json("POST", f"{CONTROL}/reset")
    p = run([TAP, "--config", CONFIG_PATH, "--test"], "test-ok")
    need_rc(p)
    n = http_json("GET", f"{CONTROL}/requests")["total"]
    need(n == 1, f"--test made {n} requests")
    need(p.stdout == "", "--test wrote to stdout")
    need(any("connection test passed" in m for _, m in log_lines(p.stderr)), "no 'connection test passed' line")


@check("--test with a bad token: one clear line, exit 1")
def _():
    p = run([TAP, "--config", cfg(access_token="wrong-token-123"), "--test"], "test-bad-token")
    line = one_error_line(p, "bad token")
    need("401" in line and "token" in line, f"line does not name the 401/token: {line}")
    need("wrong-token-123" not in p.stderr, "the token appears in the log")
    return line


@check("--test with a wrong account id: one clear line, exit 1")
def _():
    p = run([TAP, "--config", cfg(account_id="999"), "--test"], "test-wrong-account")
    line = one_error_line(p, "wrong account")
    need("account_id" in line, f"line does not name account_id: {line}")
    return line


class StripUserAgent(http.server.BaseHTTPRequestHandler):
    """A proxy to the simulator that drops the User-Agent header (as a bad proxy would)."""

    upstream = ""

    def do_GET(self):  # noqa: N802
        req = urllib.request.Request(self.upstream + self.path, method="GET")
        for k, v in self.headers.items():
            if k.lower() not in ("host", "user-agent", "accept-encoding", "connection"):
                req.add_header(k, v)
        opener = urllib.request.build_opener()
        opener.addheaders = []  # urllib's own User-Agent
        try:
            with opener.open(req, timeout=30) as r:
                status, body, headers = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, body, headers = e.code, e.read(), e.headers
        self.send_response(status)
        for k, v in headers.items():
            if k.lower() in ("content-type", "retry-after"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@check("--test without a User-Agent reaching Harvest: one clear line, exit 1")
def _():
    StripUserAgent.upstream = CONTROL.rsplit("/__control", 1)[0]
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StripUserAgent)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{srv.server_address[1]}/v2"
        p = run([TAP, "--config", cfg(base_url=base, max_retries=0), "--test"], "test-no-user-agent")
    finally:
        srv.shutdown()
    line = one_error_line(p, "missing User-Agent")
    need("user-agent" in line.lower() or "user_agent" in line, f"line does not name the User-Agent: {line}")
    return line


@check("config errors: one line per problem, then 'Config validation failed: <every problem>', exit 1")
def _():
    bad = write_json(RUN / "config-bad.json", {"access_token": "x", "start_date": "not-a-date", "max_retries": -1})
    p = run([TAP, "--config", bad, "--test"], "config-errors")
    need(p.returncode == 1, f"exit {p.returncode}")
    lines = log_lines(p.stderr)
    need(lines[-1][1].startswith("Config validation failed: ") and "start_date" in lines[-1][1],
         f"last line {lines[-1]}")
    errs = [m for lvl, m in lines[:-1] if lvl == "ERROR"]
    for k in ("account_id", "start_date", "max_retries"):
        need(sum(k in m for m in errs) == 1, f"no single line about {k}:{tail(p.stderr)}")
    p = run([TAP, "--config", cfg(start_date=None), "--test"], "config-no-start-date")
    need(p.returncode == 1 and "start_date" in p.stderr, "a missing start_date is not reported")
    p = run([TAP, "--config", RUN / "no-such-config.json"], "config-missing-file")
    one_error_line(p, "missing config file")


FULL = {}


@check("full sync: Singer messages, metric lines, progress lines")
def _():
    p = run([TAP, "--config", CONFIG_PATH], "sync-full")
    need_rc(p)
    msgs = messages(p.stdout)
    FULL["msgs"] = msgs
    FULL["stdout"] = p.stdout
    recs = records_by_stream(msgs)
    state = last_state(msgs)
    need(set(recs) == set(KEYS), f"streams without records: {sorted(set(KEYS) - set(recs))}")
    lines = log_lines(p.stderr)
    timers, counts, durations = [], {}, set()
    for lvl, msg in lines:
        if msg.startswith("METRIC: "):
            need(lvl == "INFO", f"metric at {lvl}")
            m = json.loads(msg[len("METRIC: "):])
            need(set(m) >= {"type", "metric", "value", "tags"}, f"metric fields: {m}")
            if m["metric"] == "http_request_duration":
                need(m["type"] == "timer", f"{m}")
                need({"stream", "endpoint", "http_status_code", "status"} <= set(m["tags"]), f"timer tags: {m}")
                timers.append(m)
            elif m["metric"] == "record_count":
                need(m["type"] == "counter" and "stream" in m["tags"], f"{m}")
                s = m["tags"]["stream"]
                counts[s] = counts.get(s, 0) + m["value"]
            elif m["metric"] == "sync_duration":
                need(m["type"] == "timer" and {"stream", "status"} <= set(m["tags"]), f"{m}")
                durations.add(m["tags"]["stream"])
    requests = http_json("GET", f"{CONTROL}/requests")
    need(timers, "no http_request_duration metric")
    need(all(t["tags"]["status"] == "succeeded" and t["tags"]["http_status_code"] == 200 for t in timers),
         "a request did not succeed")
    emitted = {s: len(r) for s, r in recs.items()}
    need(counts == emitted, f"record_count metrics {counts} != records emitted {emitted}")
    need(set(KEYS) <= durations, f"no sync_duration for {sorted(set(KEYS) - durations)}")
    need(any(m.startswith("plan: ") for _, m in lines), "no plan line")
    progress = {}
    for lvl, msg in lines:
        m = PROGRESS.match(msg)
        if m:
            need(lvl == "INFO", f"progress line at {lvl}")
            progress[m.group(1)] = int(m.group(2))
    streams = set(KEYS)
    need(streams <= set(progress), f"no progress line for {sorted(streams - set(progress))}")
    bad = {s: (n, emitted.get(s, 0)) for s, n in progress.items() if n != emitted.get(s, 0)}
    need(not bad, f"progress record counts != emitted: {bad}")
    need(any("sync finished" in m for _, m in lines), "no final 'sync finished' line")
    FULL["state"] = state
    return (f"{sum(emitted.values())} records in {len(emitted)} streams, {len(timers)} request timers, "
            f"{requests['total']} requests served so far")


@check("log level from TAP_HARVEST_LOGLEVEL, LOGLEVEL, RUST_LOG")
def _():
    def levels(env):
        p = run([TAP, "--config", CONFIG_PATH], "loglevel-" + "-".join(f"{k}={v}" for k, v in env.items()), env=env)
        need_rc(p)
        lines = log_lines(p.stderr)
        if env.get("TAP_HARVEST_LOGLEVEL") == "warning" or env.get("RUST_LOG") == "warn":
            # The final summary stays (issue 16); nothing else below WARNING.
            need(any(m.startswith("sync finished") for _, m in lines), f"{env}: no final summary")
            lines = [(lvl, m) for lvl, m in lines if not m.startswith("sync finished")]
        return {lvl for lvl, _ in lines}

    need("DEBUG" in levels({"TAP_HARVEST_LOGLEVEL": "debug"}), "TAP_HARVEST_LOGLEVEL=debug shows no DEBUG")
    need(not levels({"TAP_HARVEST_LOGLEVEL": "warning"}) & {"DEBUG", "INFO"}, "TAP_HARVEST_LOGLEVEL=warning shows INFO")
    need(not levels({"LOGLEVEL": "error"}) & {"DEBUG", "INFO", "WARNING"}, "LOGLEVEL=error shows INFO")
    need("DEBUG" in levels({"RUST_LOG": "debug"}), "RUST_LOG=debug shows no DEBUG")
    need(not levels({"RUST_LOG": "warn"}) & {"DEBUG", "INFO"}, "RUST_LOG=warn shows INFO")
    got = levels({"TAP_HARVEST_LOGLEVEL": "info", "LOGLEVEL": "error"})
    need("INFO" in got, "TAP_HARVEST_LOGLEVEL does not win over LOGLEVEL")


@check("stdout closed by the target: one clear line, non-zero exit")
def _():
    p = subprocess.Popen([TAP, "--config", str(CONFIG_PATH)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    p.stdout.readline()
    p.stdout.close()
    err = p.stderr.read()
    rc = p.wait(timeout=60)
    (LOGS / "stdout-closed.err").write_text(err)
    need(rc != 0, "exit 0 after stdout was closed")
    bad = [(lvl, m) for lvl, m in log_lines(err) if lvl in ("WARNING", "ERROR", "CRITICAL")]
    need(len(bad) == 1 and "stdout" in bad[0][1], f"expected one line saying stdout was closed:{tail(err)}")
    return bad[0][1]


# ---------------------------------------------------------------- singer-check-tap

print("== singer-check-tap", flush=True)


def singer_check_tap(state_file, name):
    """`tap-harvest --config C [--state S] | singer-check-tap`: both must exit 0.

    singer-check-tap's own `--tap` mode reads the summary before its reader thread has finished
    when the tap exits quickly (singer-tools 0.4.1), so the pipe form is used."""
    args = [TAP, "--config", str(CONFIG_PATH)] + (["--state", str(state_file)] if state_file else [])
    with open(LOGS / f"{name}.tap.err", "w") as tap_err:
        tap = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=tap_err)
        chk = subprocess.run([SINGER_CHECK_TAP], stdin=tap.stdout, capture_output=True, text=True,
                             cwd=RUN, timeout=600)
        tap.stdout.close()
        tap_rc = tap.wait(timeout=60)
    (LOGS / f"{name}.out").write_text(chk.stdout + chk.stderr)
    need(tap_rc == 0, f"tap exited {tap_rc} (log {LOGS / (name + '.tap.err')})")
    need(chk.returncode == 0 and "The output is valid." in chk.stdout,
         f"singer-check-tap exited {chk.returncode}:{tail(chk.stdout + chk.stderr)}")
    m = re.search(r"(\d+) record messages", chk.stdout)
    return int(m.group(1)) if m else -1


@check("singer-check-tap: full run")
def _():
    n = singer_check_tap(None, "singer-check-tap-full")
    FULL["sct_records"] = n
    return f"{n} records valid"


@check("singer-check-tap: incremental run (state of the full run)",
       requires=["singer-check-tap: full run", "full sync: Singer messages, metric lines, progress lines"])
def _():
    state = write_json(RUN / "state-full.json", FULL["state"])
    n = singer_check_tap(state, "singer-check-tap-incremental")
    need(n < FULL["sct_records"], f"the incremental run emitted {n} records, the full one {FULL['sct_records']}")
    return f"{n} records valid"


# ---------------------------------------------------------------- pip and cargo install

print("== pip install / cargo install", flush=True)


@check("pip install . (maturin wheel) gives a working tap-harvest")
def _():
    venv = RUN / "pip-venv"
    need_rc(run([BASE_PYTHON, "-m", "venv", venv], "pip-venv"))
    p = run([venv / "bin/pip", "install", "--disable-pip-version-check", ROOT], "pip-install", timeout=1200)
    need_rc(p)
    exe = venv / "bin/tap-harvest"
    need(exe.exists(), "no bin/tap-harvest in the virtualenv")
    need(not (venv / "bin/harvest-sim").exists(), "harvest-sim was packaged too")
    p = run([exe, "--version"], "pip-tap-version")
    need_rc(p)
    need(p.stdout.strip() == f"tap-harvest {VERSION}", f"--version {p.stdout.strip()!r}")
    need_rc(run([exe, "--config", CONFIG_PATH, "--test"], "pip-tap-test"))
    p = run([venv / "bin/pip", "show", "tap-harvest-rs"], "pip-show")
    need(f"Version: {VERSION}" in p.stdout, "pip show: wrong version")


@check("cargo install --path . gives a working tap-harvest")
def _():
    dest = RUN / "cargo-root"
    p = run(["cargo", "install", "--quiet", "--locked", "--path", ROOT, "--root", dest,
             "--target-dir", E["ECO_TARGET_DIR"]], "cargo-install", timeout=1800)
    need_rc(p)
    p = run([dest / "bin/tap-harvest", "--version"], "cargo-tap-version")
    need(p.stdout.strip() == f"tap-harvest {VERSION}", f"--version {p.stdout.strip()!r}")


# ---------------------------------------------------------------- the wheel, without Rust

print("== the manylinux wheel where no Rust toolchain is reachable", flush=True)
WHEEL = Path(E["ECO_WHEEL"])
HUB_FILE = ROOT / "meltanohub/extractors/tap-harvest/tap-harvest-rs.yml"


def no_rust_env(home, venv_bin=None):
    """An environment with no cargo, rustup or maturin on PATH, no Rust homes, and pip kept
    off the network (no index, no cache): what a scheduler image without Rust is."""
    path = ":".join(p for p in [str(venv_bin) if venv_bin else None, "/usr/bin", "/bin"] if p)
    env = {k: v for k, v in E.items() if not k.startswith(("CARGO", "RUSTUP", "RUST"))}
    env.update({"PATH": path, "HOME": str(home), "CARGO_HOME": str(home / "no-cargo"),
                "RUSTUP_HOME": str(home / "no-rustup"), "PIP_NO_INDEX": "1", "PIP_NO_CACHE_DIR": "1",
                "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_CONFIG_FILE": os.devnull})
    for tool in ("cargo", "rustc", "rustup", "maturin"):
        need(shutil.which(tool, path=path) is None, f"{tool} is reachable on {path}")
    return env


def run_clean(args, name, env, timeout=600):
    """`run`, with exactly `env` (not the stage's environment on top)."""
    _n[0] += 1
    p = subprocess.run([str(a) for a in args], capture_output=True, text=True, env=env,
                       timeout=timeout, cwd=env["HOME"])
    stem = LOGS / f"{_n[0]:02d}-{name}"
    Path(f"{stem}.out").write_text(p.stdout)
    Path(f"{stem}.err").write_text(f"$ {' '.join(map(str, args))}\n# exit {p.returncode}\n{p.stderr}")
    p.log = f"{stem}.err"
    return p


@check("MeltanoHub definition is what scripts/meltanohub makes of meltano.yml")
def _():
    p = run([sys.executable, ROOT / "scripts/meltanohub", "--check"], "meltanohub-check")
    need_rc(p)
    hub = yaml.safe_load(HUB_FILE.read_text())
    for key in ("name", "namespace", "variant", "pip_url", "executable", "capabilities", "settings",
                "settings_group_validation", "select", "metadata"):
        need(key in hub, f"the definition has no {key!r}")
    need(hub["pip_url"] == "tap-harvest-rs" and hub["executable"] == "tap-harvest", "pip_url/executable")
    need(set(hub["capabilities"]) == CAPABILITIES, f"capabilities {hub['capabilities']}")
    need(all(s["sensitive"] for s in hub["settings"] if s["name"] in SECRETS), "secrets not sensitive")


@check("the wheel installs and syncs in a virtualenv where no Rust toolchain is reachable")
def _():
    need(WHEEL.exists(), f"no wheel at {WHEEL}")
    need("manylinux_2_17" in WHEEL.name or "manylinux2014" in WHEEL.name, f"{WHEEL.name}: not manylinux2014")
    home = RUN / "no-rust-home"
    home.mkdir(parents=True, exist_ok=True)
    venv = home / "venv"
    env = no_rust_env(home, venv / "bin")
    need_rc(run_clean([BASE_PYTHON, "-m", "venv", venv], "no-rust-venv", env))
    p = run_clean([venv / "bin/pip", "install", WHEEL], "no-rust-pip-install", env)
    need_rc(p)
    need("Building wheel" not in p.stdout + p.stderr, "pip built something")
    exe = venv / "bin/tap-harvest"
    p = run_clean([exe, "--about", "--format", "json"], "no-rust-about", env)
    need_rc(p)
    need(set(json.loads(p.stdout)["capabilities"]) == CAPABILITIES, "--about capabilities")
    p = run_clean([exe, "--discover"], "no-rust-discover", env)
    need_rc(p)
    streams = {s["tap_stream_id"] for s in json.loads(p.stdout)["streams"]}
    built = {s["tap_stream_id"] for s in json.loads(run([TAP, "--discover"], "discover-built").stdout)["streams"]}
    need(streams == built, f"{len(streams)} streams discovered, {len(built)} by the release build")
    p = run_clean([exe, "--config", CONFIG_PATH], "no-rust-sync", env)
    need_rc(p)
    msgs = messages(p.stdout)
    got = {k: len(v) for k, v in records_by_stream(msgs).items()}
    need(got.get("clients") == len(truth("clients")), f"clients: {got.get('clients')}")
    need(msgs[-1]["type"] == "STATE", "the last message is not a STATE")
    return f"{WHEEL.name}: {sum(got.values())} records in {len(got)} streams"


@check("meltano install of the MeltanoHub definition with pip_url at the wheel, no Rust; metadata FULL_TABLE honoured",
       requires=["the wheel installs and syncs in a virtualenv where no Rust toolchain is reachable",
                 "MeltanoHub definition is what scripts/meltanohub makes of meltano.yml"])
def _():
    home = RUN / "hub-project"
    home.mkdir(parents=True, exist_ok=True)
    hub = yaml.safe_load(HUB_FILE.read_text())
    plugin = {k: v for k, v in hub.items() if k not in ("maintenance_status", "domain_url", "keywords", "usage")}
    plugin["pip_url"] = str(WHEEL)
    (home / "meltano.yml").write_text(yaml.safe_dump({
        "version": 1, "default_environment": "dev", "environments": [{"name": "dev"}],
        "send_anonymous_usage_stats": False, "project_id": "tap-harvest-hub-check",
        "plugins": {"extractors": [plugin]},
    }, sort_keys=False))
    env = no_rust_env(home, Path(MELTANO).parent)
    env.update({"MELTANO_SYS_DIR_ROOT": str(home / ".meltano"), "MELTANO_DATABASE_URI": f"sqlite:///{home}/meltano.db",
                "MELTANO_ENVIRONMENT": "dev", "MELTANO_PROJECT_ROOT": str(home)})
    p = run_clean([MELTANO, "install"], "hub-meltano-install", env, timeout=900)
    need_rc(p)
    p = run_clean([MELTANO, "invoke", "tap-harvest", "--about", "--format=json"], "hub-meltano-about", env)
    need_rc(p)
    p = run_clean([MELTANO, "invoke", "tap-harvest"], "hub-meltano-invoke", env)
    need_rc(p)
    msgs = messages(p.stdout)
    got = {k: len(v) for k, v in records_by_stream(msgs).items()}
    want = {s.split(".")[0] for s in hub["select"]}
    need(set(got) == want, f"streams {sorted(got)}, selected {sorted(want)}")
    need(got["tasks"] == len(truth("tasks")), f"tasks: {got['tasks']}")
    bookmarks = last_state(msgs)["bookmarks"]
    need("tasks" not in bookmarks, f"tasks (FULL_TABLE through metadata) has a bookmark: {bookmarks.get('tasks')}")
    need("clients" in bookmarks, "clients (INCREMENTAL) has no bookmark")
    return f"{sum(got.values())} records; tasks read FULL_TABLE, no bookmark"


# ---------------------------------------------------------------- meltano

print("== meltano (meltano.yml at the repository root)", flush=True)


def meltano(args, name, env=None, timeout=900):
    return run([MELTANO, *args], "meltano-" + name, env=env, timeout=timeout)


def meltano_state(state_id):
    p = meltano(["state", "get", state_id], "state-get")
    need_rc(p)
    return json.loads(p.stdout.strip().splitlines()[-1])["singer_state"]


def jsonl_dir(path):
    out = {}
    for f in sorted(Path(path).glob("*.jsonl")):
        out[f.stem] = [json.loads(line) for line in f.read_text().splitlines() if line.strip()]
    return out


@check("meltano install (the extractor built from this repository by maturin)")
def _():
    p = meltano(["install"], "install", timeout=1800)
    need_rc(p)
    exe = Path(E["MELTANO_SYS_DIR_ROOT"]) / "extractors/tap-harvest/venv/bin/tap-harvest"
    need(exe.exists(), f"{exe} missing")
    p = run([exe, "--version"], "meltano-tap-version")
    need(p.stdout.strip() == f"tap-harvest {VERSION}", f"installed --version {p.stdout.strip()!r}")


@check("meltano invoke tap-harvest --discover", requires=["meltano install (the extractor built from this repository by maturin)"])
def _():
    p = meltano(["invoke", "tap-harvest", "--discover"], "discover")
    need_rc(p)
    cat = json.loads(p.stdout)
    need({s["tap_stream_id"] for s in cat["streams"]} == set(KEYS), "the catalog's streams differ from --discover")
    return f"{len(cat['streams'])} streams"


@check("meltano invoke tap-harvest --about --format=json", requires=["meltano install (the extractor built from this repository by maturin)"])
def _():
    p = meltano(["invoke", "tap-harvest", "--about", "--format=json"], "about")
    need_rc(p)
    need(set(json.loads(p.stdout)["capabilities"]) == CAPABILITIES, "capabilities")


@check("meltano config test tap-harvest", requires=["meltano install (the extractor built from this repository by maturin)"])
def _():
    p = meltano(["config", "test", "tap-harvest"], "config-test")
    need_rc(p)
    need("Plugin configuration is valid" in p.stdout + p.stderr, f"no 'Plugin configuration is valid':{tail(p.stdout + p.stderr)}")
    p = meltano(["config", "test", "tap-harvest"], "config-test-bad-token", env={"TAP_HARVEST_ACCESS_TOKEN": "wrong-token"})
    need(p.returncode != 0, "meltano config test passed with a wrong token")
    need("401" in p.stdout + p.stderr, f"the tap's 401 line is not shown:{tail(p.stdout + p.stderr)}")


JSONL = {}
JSONL_ID = "dev:tap-harvest-to-target-jsonl"


@check("meltano run tap-harvest target-jsonl: every stream, counts = truth",
       requires=["meltano install (the extractor built from this repository by maturin)"])
def _():
    out = RUN / "jsonl-1"
    out.mkdir()
    want = expected_counts()
    p = meltano(["run", "tap-harvest", "target-jsonl"], "run-jsonl-1", env={"TARGET_JSONL_DESTINATION_PATH": str(out)})
    need_rc(p)
    got = jsonl_dir(out)
    JSONL["run1"] = got
    dupes = {s: len(r) - len(keyed(s, r)) for s, r in got.items() if len(r) != len(keyed(s, r))}
    need(not dupes, f"duplicate keys in a full run: {dupes}")
    compare_counts({s: len(r) for s, r in got.items()}, want, "target-jsonl row counts")
    state = meltano_state(JSONL_ID)
    JSONL["state1"] = state
    incremental = [s["stream"] for s in CATALOG["streams"] if s.get("replication_method") == "INCREMENTAL"]
    missing = [s for s in incremental if s not in state.get("bookmarks", {})]
    need(not missing, f"no bookmark stored for {missing}")
    return f"{sum(want.values())} records in {len(got)} streams"


@check("meltano run tap-harvest target-jsonl again: incremental through Meltano's state",
       requires=["meltano run tap-harvest target-jsonl: every stream, counts = truth"])
def _():
    changed = {
        "clients": mutate("clients", 2, 1),
        "time_entries": mutate("time_entries", 2, 1),
        "invoice_payments": mutate("invoice_payments", 0, 1),
    }
    out = RUN / "jsonl-2"
    out.mkdir()
    p = meltano(["run", "tap-harvest", "target-jsonl"], "run-jsonl-2", env={"TARGET_JSONL_DESTINATION_PATH": str(out)})
    need_rc(p)
    got = jsonl_dir(out)
    n1 = sum(len(r) for r in JSONL["run1"].values())
    n2 = sum(len(r) for r in got.values())
    need(n2 < n1 / 2, f"the second run emitted {n2} records, the first {n1}: not incremental")
    for res, ch in changed.items():
        stream = stream_of(res)
        ids = {r["id"] for r in got.get(stream, [])}
        want = set(ch["updated"]) | set(ch["created"])
        need(want <= ids, f"{stream}: changed ids {sorted(want - ids)} not re-extracted")
    bookmarks = JSONL["state1"]["bookmarks"]
    for stream, recs in got.items():
        b = bookmarks.get(stream, {}).get("updated_at")
        if b:
            old = [r["id"] for r in recs if r.get("updated_at") and r["updated_at"] < b]
            need(not old, f"{stream}: records older than the stored bookmark {b}: {old[:5]}")
    state2 = meltano_state(JSONL_ID)
    clients = stream_of("clients")
    need(state2["bookmarks"][clients]["updated_at"] > bookmarks[clients]["updated_at"],
         "the clients bookmark did not move")
    JSONL["state2"] = state2
    return f"{n2} records (first run {n1})"


@check("singer-check-tap: incremental run from the state Meltano stored",
       requires=["meltano run tap-harvest target-jsonl again: incremental through Meltano's state"])
def _():
    state = write_json(RUN / "state-meltano.json", JSONL["state2"])
    return f"{singer_check_tap(state, 'singer-check-tap-meltano-state')} records valid"


# ---------------------------------------------------------------- postgres

print("== PostgreSQL through meltanolabs-target-postgres", flush=True)


def pg(sql):
    p = run([PSQL, "-X", "-q", "-At", "-h", "127.0.0.1", "-p", PG_PORT, "-U", PG_USER, "-d", PG_DB, "-c", sql], "psql")
    need_rc(p)
    return p.stdout


def pg_counts():
    tables = pg(f"select table_name from information_schema.tables where table_schema = '{PG_SCHEMA}'").split()
    sql = " union all ".join(f"select '{t}', count(*) from {PG_SCHEMA}.\"{t}\"" for t in tables)
    out = {}
    for line in pg(sql).splitlines():
        t, n = line.split("|")
        out[t] = int(n)
    return out


def target_records(p):
    m = re.findall(r"completed processing \d+ lines of input \(\d+ schemas, (\d+) records", p.stdout + p.stderr)
    return int(m[-1]) if m else -1


PGRUN = {}
PG_ID = "dev:tap-harvest-to-target-postgres"


@check("meltano run tap-harvest target-postgres: every table's row count = truth",
       requires=["meltano install (the extractor built from this repository by maturin)"])
def _():
    want = expected_counts()
    p = meltano(["run", "tap-harvest", "target-postgres"], "run-postgres-1")
    need_rc(p)
    compare_counts(pg_counts(), want, "PostgreSQL row counts")
    PGRUN["records1"] = target_records(p)
    PGRUN["state1"] = meltano_state(PG_ID)
    return f"{len(want)} tables, {sum(want.values())} rows"


@check("mutate, then an incremental run into PostgreSQL upserts",
       requires=["meltano run tap-harvest target-postgres: every table's row count = truth"])
def _():
    changed = {
        "clients": mutate("clients", 2, 1),
        "time_entries": mutate("time_entries", 3, 2),
        "invoice_messages": mutate("invoice_messages", 1, 1),
        "expenses": mutate("expenses", 1, 1),
        "projects": mutate("projects", 1, 0),
    }
    want = expected_counts()
    p = meltano(["run", "tap-harvest", "target-postgres"], "run-postgres-2")
    need_rc(p)
    text = p.stdout + p.stderr
    need(not re.search(r"Traceback|Error:|Could not convert|error +\]", text), f"errors in the log (log {p.log})")
    n2 = target_records(p)
    need(0 < n2 < PGRUN["records1"] / 2, f"the incremental run loaded {n2} records, the full one {PGRUN['records1']}")
    compare_counts(pg_counts(), want, "PostgreSQL row counts after the upsert")
    truth_clients = {c["id"]: c["updated_at"] for c in truth("clients")}
    rows = pg(f"select id, to_char(updated_at, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') from {PG_SCHEMA}.\"{stream_of('clients')}\"")
    in_db = {int(i): u for i, u in (line.split("|") for line in rows.splitlines())}
    for cid in changed["clients"]["updated"] + changed["clients"]["created"]:
        need(in_db.get(cid) == truth_clients[cid], f"client {cid}: updated_at {in_db.get(cid)} in the database, {truth_clients[cid]} in Harvest")
    state2 = meltano_state(PG_ID)
    entries = stream_of("time_entries")
    need(state2["bookmarks"][entries]["updated_at"] > PGRUN["state1"]["bookmarks"][entries]["updated_at"],
         "the time_entries bookmark did not move")
    return f"{n2} records upserted"


def delete(resource, count):
    return http_json("POST", f"{CONTROL}/delete", {"resource": resource, "count": count})


def pg_live_and_deleted():
    """Per table: rows without and with _sdc_deleted_at."""
    tables = pg(f"select table_name from information_schema.tables where table_schema = '{PG_SCHEMA}'").split()
    sql = " union all ".join(
        f"select '{t}', count(*) filter (where _sdc_deleted_at is null), count(*) filter (where _sdc_deleted_at is not null) from {PG_SCHEMA}.\"{t}\""
        for t in tables if t in WITH_DELETIONS)
    out = {}
    for line in pg(sql).splitlines():
        t, live, gone = line.split("|")
        out[t] = (int(live), int(gone))
    return out


# Report rows are sums over windows, not records, and the company is never deleted: their
# deletions are not reported.
def without_reports(counts):
    return {s: n for s, n in counts.items() if s in WITH_DELETIONS}


# Streams never read whole, so never sent as a version: read under changed parents only, or
# listed while active only (a user's project assignments, and their nested tasks). Their
# deletions come as tombstones even when ACTIVATE_VERSION is on.
TOMBSTONED_ONLY = {"invoice_messages", "invoice_payments", "estimate_messages", "user_projects",
                   "user_project_tasks"}


@check("delete, then an incremental run into PostgreSQL soft-deletes exactly the deleted rows",
       requires=["mutate, then an incremental run into PostgreSQL upserts"])
def _():
    before = pg_live_and_deleted()
    # A project takes its time entries, expenses and assignments; an invoice its messages,
    # payments and line items; then records of parents that stay.
    for res, n in [("projects", 1), ("invoices", 1), ("estimates", 1), ("time_entries", 2), ("expenses", 1),
                   ("invoice_messages", 1), ("invoice_line_items", 1), ("contacts", 1), ("roles", 1),
                   ("teammates", 1), ("task_assignments", 1)]:
        need(delete(res, n)["deleted"], f"the simulator had no {res} to delete")
    want = without_reports(expected_counts())
    p = meltano(["run", "tap-harvest", "target-postgres"], "run-postgres-3",
                env={"TAP_HARVEST_DELETION_FULL_SCAN_DAYS": "0"})
    need_rc(p)
    text = p.stdout + p.stderr
    need(not re.search(r"Traceback|Error:|Could not convert|error +\]", text), f"errors in the log (log {p.log})")
    after = pg_live_and_deleted()
    live = {t: n for t, (n, _) in after.items()}
    compare_counts(live, want, "PostgreSQL rows without _sdc_deleted_at")
    soft = 0
    for t, (n_live, n_gone) in after.items():
        was_live, was_gone = before[t]
        # Every row is still there; exactly the deleted ones are marked.
        need(n_live + n_gone == was_live + was_gone, f"{t}: {was_live + was_gone} rows before, {n_live + n_gone} after")
        soft += n_gone - was_gone
    need(soft > 0, "no row was marked deleted")
    PGRUN["soft"] = soft
    return f"{soft} rows soft-deleted (_sdc_deleted_at set), every other row untouched"


@check("ACTIVATE_VERSION with hard_delete removes the deleted rows from PostgreSQL",
       requires=["delete, then an incremental run into PostgreSQL soft-deletes exactly the deleted rows"])
def _():
    for res, n in [("time_entries", 2), ("expenses", 1), ("invoice_payments", 1), ("contacts", 1),
                   ("estimate_line_items", 1)]:
        need(delete(res, n)["deleted"], f"the simulator had no {res} to delete")
    want = without_reports(expected_counts())
    p = meltano(["run", "tap-harvest", "target-postgres"], "run-postgres-4",
                env={"TAP_HARVEST_DELETION_FULL_SCAN_DAYS": "0",
                     "TAP_HARVEST_EMIT_ACTIVATE_VERSION_MESSAGES": "true",
                     "TARGET_POSTGRES_HARD_DELETE": "true", "TARGET_POSTGRES_ACTIVATE_VERSION": "true"})
    need_rc(p)
    text = p.stdout + p.stderr
    need(not re.search(r"Traceback|Error:|Could not convert|error +\]", text), f"errors in the log (log {p.log})")
    after = pg_live_and_deleted()
    compare_counts({t: n for t, (n, _) in after.items()}, want, "PostgreSQL rows without _sdc_deleted_at")
    kept = []
    for t, (n_live, n_gone) in after.items():
        if t in TOMBSTONED_ONLY:
            continue
        if n_gone:
            kept.append(f"{t}: {n_gone}")
    need(not kept, f"rows marked deleted but not removed by the new version: {kept}")
    return "deleted rows removed from every versioned table; " + ", ".join(
        f"{t} {after[t][1]} soft-deleted" for t in sorted(TOMBSTONED_ONLY) if t in after)


# ---------------------------------------------------------------- migration from singer-io

print("== migration from singer-io tap-harvest 3.1.1, in PostgreSQL", flush=True)
MIGRATION_SCHEMA = "singer_io_migration"
SINGER_IO_PYTHON = E["ECO_SINGER_IO_PYTHON"]
SHIM = ROOT / "bench/python_tap_shim.py"
# Its 25 streams less invoice_payments: 3.1.1 types payment_gateway_name as an integer and stops
# at the first payment made through a named gateway (README, "Migrating from singer-io").
SINGER_IO_STREAMS = [
    "clients", "contacts", "estimate_item_categories", "estimate_line_items", "estimate_messages",
    "estimates", "expense_categories", "expenses", "external_reference", "invoice_item_categories",
    "invoice_line_items", "invoice_messages", "invoices", "project_tasks", "project_users", "projects",
    "roles", "tasks", "time_entries", "time_entry_external_reference", "user_project_tasks",
    "user_projects", "user_roles", "users",
]
# Columns whose types differ from singer-io's (README), and the type PostgreSQL holds them in
# after the README's migration SQL and this tap's load.
CHANGED_COLUMNS = {
    ("time_entries", "budgeted"): "boolean",
    ("time_entries", "spent_date"): "timestamp without time zone",
    ("invoices", "issue_date"): "timestamp without time zone",
    ("invoice_line_items", "quantity"): "numeric",
    ("estimate_line_items", "quantity"): "numeric",
    ("projects", "over_budget_notification_percentage"): "numeric",
    ("invoices", "tax"): "numeric",
    ("estimates", "discount"): "numeric",
    ("projects", "starts_on"): "text",
    ("time_entries", "started_time"): "text",
}
MIGRATION = {}


def target_postgres(name, stdin_text):
    exe = Path(E["MELTANO_SYS_DIR_ROOT"]) / "loaders/target-postgres/venv/bin/target-postgres"
    need(exe.exists(), f"{exe} missing (meltano install)")
    config = write_json(RUN / f"{name}.target-config.json", {
        "host": "127.0.0.1", "port": int(PG_PORT), "user": PG_USER, "password": "unused-trust-auth",
        "database": PG_DB, "default_target_schema": MIGRATION_SCHEMA, "load_method": "upsert",
        "add_record_metadata": True, "validate_records": True})
    p = run([exe, "--config", config], name, input=stdin_text, timeout=900)
    need_rc(p)
    need(not re.search(r"Traceback|Could not convert", p.stderr), f"errors in the target's log (log {p.log})")
    return p


def migration_counts():
    tables = pg(f"select table_name from information_schema.tables where table_schema = '{MIGRATION_SCHEMA}'").split()
    sql = " union all ".join(f"select '{t}', count(*) filter (where _sdc_deleted_at is null) from {MIGRATION_SCHEMA}.\"{t}\""
                             if "_sdc_deleted_at" in pg(f"select column_name from information_schema.columns where table_schema = '{MIGRATION_SCHEMA}' and table_name = '{t}'").split()
                             else f"select '{t}', count(*) from {MIGRATION_SCHEMA}.\"{t}\"" for t in tables)
    return {t: int(n) for t, n in (line.split("|") for line in pg(sql).splitlines())}


def column_types():
    rows = pg(f"select table_name, column_name, data_type from information_schema.columns where table_schema = '{MIGRATION_SCHEMA}'")
    return {(t, c): d for t, c, d in (line.split("|") for line in rows.splitlines())}


@check("singer-io tap-harvest 3.1.1 loaded into PostgreSQL (the warehouse to migrate)",
       requires=["meltano run tap-harvest target-postgres: every table's row count = truth"])
def _():
    pg(f"drop schema if exists {MIGRATION_SCHEMA} cascade")
    env = {"HARVEST_BASE_URL": CONFIG["base_url"], "HARVEST_AUTH_URL": CONFIG["auth_url"]}
    oauth = write_json(RUN / "singer-io-config.json", {
        "client_id": "sim-client-id", "client_secret": "sim-client-secret", "refresh_token": "sim-refresh-admin",
        "start_date": START_DATE + "T00:00:00Z", "user_agent": "tap-harvest migration check (dev@example.com)"})
    p = run([SINGER_IO_PYTHON, SHIM, "--config", oauth, "--discover"], "singer-io-discover", env=env)
    need_rc(p)
    catalog = json.loads(p.stdout)
    for s in catalog["streams"]:
        for m in s["metadata"]:
            if m["breadcrumb"] == []:
                m["metadata"]["selected"] = s["tap_stream_id"] in SINGER_IO_STREAMS
            # A field excluded in singer-io's catalog stays out of this tap's records too.
            if s["tap_stream_id"] == "clients" and m["breadcrumb"] == ["properties", "address"]:
                m["metadata"]["selected"] = False
    MIGRATION["catalog"] = write_json(RUN / "singer-io-catalog.json", catalog)
    p = run([SINGER_IO_PYTHON, SHIM, "--config", oauth, "--catalog", MIGRATION["catalog"]], "singer-io-sync",
            env=env, timeout=900)
    need_rc(p)
    msgs = messages(p.stdout)
    MIGRATION["state"] = last_state(msgs)
    # singer-io declares time_entries' started_time and ended_time `format: time`, which Harvest's
    # values ("9:00am") are not: meltanolabs target-postgres stops on them ("Could not parse
    # value '9:00am'"). A warehouse singer-io filled holds them as text (another target, or this
    # one without the format): so is it loaded here.
    lines = []
    for m in msgs:
        if m["type"] == "SCHEMA" and m["stream"] == "time_entries":
            for col in ("started_time", "ended_time"):
                m["schema"]["properties"].get(col, {}).pop("format", None)
        lines.append(json.dumps(m))
    target_postgres("singer-io-target-postgres", "\n".join(lines) + "\n")
    MIGRATION["types_before"] = column_types()
    counts = migration_counts()
    return f"{sum(counts.values())} rows in {len(counts)} tables"


@check("this tap, with singer-io's catalog and state, into the same tables: every table loads, counts = truth",
       requires=["singer-io tap-harvest 3.1.1 loaded into PostgreSQL (the warehouse to migrate)"])
def _():
    # Changes since singer-io's run, so that every table whose column types differ gets rows.
    for res, n in [("time_entries", 3), ("invoices", 2), ("estimates", 2), ("projects", 2), ("expenses", 1),
                   ("clients", 1), ("users", 1)]:
        mutate(res, n, 1)
    # The README's migration SQL, as a user runs it once on singer-io's tables.
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Migrating from singer-io", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    need(len(blocks) == 1, f"the README's migration section has {len(blocks)} sql blocks, not 1")
    pg(blocks[0].replace("tap_harvest.", f"{MIGRATION_SCHEMA}."))
    # The README's state edit: the streams whose values singer-io rounded are sent again.
    migrated = json.loads(json.dumps(MIGRATION["state"]))
    for stream in ("invoice_line_items", "estimate_line_items", "projects"):
        migrated["bookmarks"].pop(stream, None)
    need('jq \'del(.bookmarks.invoice_line_items, .bookmarks.estimate_line_items, .bookmarks.projects)\'' in section,
         "the README's state edit is not the one this check makes")
    state = write_json(RUN / "singer-io-state.json", migrated)
    p = run([TAP, "--config", CONFIG_PATH, "--catalog", MIGRATION["catalog"], "--state", state], "migration-sync")
    need_rc(p)
    warned = [l for l in p.stderr.splitlines() if "has no property" in l]
    need(any('"external_reference" has no property "task_id"' in l for l in warned),
         f"no warning about singer-io's external_reference.task_id (log {p.log})")
    msgs = messages(p.stdout)
    sent = {k: len(v) for k, v in records_by_stream(msgs).items()}
    need(set(sent) <= set(SINGER_IO_STREAMS), f"streams not selected were sent: {sorted(set(sent) - set(SINGER_IO_STREAMS))}")
    for stream in ("time_entries", "invoices", "invoice_line_items", "estimates", "projects", "clients"):
        need(sent.get(stream, 0) > 0, f"{stream}: no record sent after the changes")
    # singer-io's bookmarks were honoured: clients sends its one update and one new record,
    # not the whole list; the streams whose bookmarks the state edit dropped come whole.
    mark = MIGRATION["state"]["bookmarks"]["clients"]["updated_at"][:19]
    since = [c for c in truth("clients") if c["updated_at"][:19] >= mark]
    need(sent["clients"] == len(since) < len(truth("clients")),
         f"clients: {sent['clients']} sent, {len(since)} updated at or after singer-io's bookmark {mark}, "
         f"{len(truth('clients'))} in all")
    for stream, resource in (("projects", "projects"),):
        need(sent[stream] == len(truth(resource)), f"{stream}: {sent[stream]} sent, {len(truth(resource))} in Harvest")
    clients = records_by_stream(msgs)["clients"]
    need(all("address" not in c and "name" in c for c in clients), "clients.address, excluded in the catalog, was sent")
    target_postgres("migration-target-postgres", p.stdout)
    want = {s: n for s, n in expected_counts().items() if s in SINGER_IO_STREAMS}
    got = migration_counts()
    compare_counts({t: n for t, n in got.items() if t in want}, want, "row counts after the migration")
    after = column_types()
    changes = []
    for (t, c), want_type in CHANGED_COLUMNS.items():
        before, now = MIGRATION["types_before"].get((t, c)), after.get((t, c))
        need(now == want_type, f"{t}.{c}: {now} after the migration, the README says {want_type}")
        changes.append(f"{t}.{c} {before} -> {now}" if before != now else f"{t}.{c} kept {now}")
    # Fractional quantities survive (a bigint column would have rounded them).
    fractional = [li["quantity"] for inv in truth("invoices") for li in inv["line_items"] or []
                  if li["quantity"] is not None and li["quantity"] != int(li["quantity"])]
    in_db = pg(f"select count(*) from {MIGRATION_SCHEMA}.invoice_line_items where quantity <> round(quantity)")
    need(int(in_db) == len(fractional), f"{len(fractional)} fractional quantities in Harvest, {in_db.strip()} in PostgreSQL")
    return f"{sum(sent.values())} records; " + "; ".join(changes)


# ---------------------------------------------------------------- stream maps and flattening

print("== stream maps and flattening, against the Meltano SDK", flush=True)
SDK_PYTHON = Path(E["MELTANO_SYS_DIR_ROOT"]) / "loaders/target-postgres/venv/bin/python"
MAPS_SCHEMA = "stream_maps_check"
# Maps both sides type alike (the SDK types a computed property from its text: a cast, an
# existing property, else a string), over Harvest's real shapes.
MAPS = {
    "stream_maps": {
        "clients": {"__alias__": "customers", "name": None, "name_hash": "md5(config['seed'] + name)",
                    "address_upper": "address.upper() if address else None", "__filter__": "is_active"},
        "users": {"email": None, "email_domain": "email.split('@')[-1]",
                  "full_name": "first_name + ' ' + last_name"},
        "time_entries": {"hours_x2": "float(hours) * 2", "day": "int(spent_date[8:10])",
                         "notes": "__NULL__"},
        "tasks_copy": {"__source__": "tasks", "label": "str(id) + '-' + name.lower()"},
        "report_*": None,
    },
    "stream_map_config": {"seed": "pepper-"},
    "flattening_enabled": True,
    "flattening_max_depth": 1,
}
MAPPED = {}


def md5_hex(text):
    return hashlib.md5(text.encode()).hexdigest()


def by_stream(msgs):
    schemas, recs = {}, {}
    for m in msgs:
        if m["type"] == "SCHEMA":
            schemas[m["stream"]] = (m["schema"]["properties"], m.get("key_properties") or [])
        elif m["type"] == "RECORD":
            recs.setdefault(m["stream"], []).append(json.dumps(m["record"], sort_keys=True))
    return schemas, {s: sorted(r) for s, r in recs.items()}


@check("stream maps and flattening send what the Meltano SDK's own mapper sends",
       requires=["meltano install (the extractor built from this repository by maturin)"])
def _():
    need(SDK_PYTHON.exists(), f"{SDK_PYTHON} missing (meltano install)")
    p = run([SDK_PYTHON, "-c", "import singer_sdk, importlib.metadata as m; print(m.version('singer-sdk'))"], "sdk-version")
    need_rc(p)
    sdk_version = p.stdout.strip()
    config = cfg(**MAPS)
    raw = run([TAP, "--config", CONFIG_PATH], "maps-unmapped")
    need_rc(raw)
    ours = run([TAP, "--config", config], "maps-ours")
    need_rc(ours)
    sdk = run([SDK_PYTHON, ROOT / "tests/ecosystem/sdk_mapper.py", config], "maps-sdk", input=raw.stdout)
    need_rc(sdk)
    our_schemas, our_recs = by_stream(messages(ours.stdout))
    sdk_schemas, sdk_recs = by_stream(messages(sdk.stdout))
    need(set(our_schemas) == set(sdk_schemas),
         f"streams: only ours {sorted(set(our_schemas) - set(sdk_schemas))}, only the SDK's {sorted(set(sdk_schemas) - set(our_schemas))}")
    for s in sorted(sdk_schemas):
        (op, ok), (sp, sk) = our_schemas[s], sdk_schemas[s]
        need(ok == sk, f"{s}: key properties {ok}, the SDK's {sk}")
        need(list(op) == list(sp) or set(op) == set(sp), f"{s}: properties differ: only ours {sorted(set(op) - set(sp))}, only the SDK's {sorted(set(sp) - set(op))}")
        diff = [k for k in sp if op[k] != sp[k]]
        need(not diff, f"{s}: property schemas differ: " + "; ".join(f"{k} ours {op[k]} SDK {sp[k]}" for k in diff[:3]))
    need(set(our_recs) == set(sdk_recs), f"streams with records differ: {sorted(set(our_recs) ^ set(sdk_recs))}")
    for s in sorted(sdk_recs):
        if our_recs[s] != sdk_recs[s]:
            first = next((a, b) for a, b in zip(our_recs[s] + [""], sdk_recs[s] + [""]) if a != b)
            need(False, f"{s}: {len(our_recs[s])} records, the SDK {len(sdk_recs[s])}; first difference: ours {first[0][:300]} SDK {first[1][:300]}")
    need("customers" in our_recs and "clients" not in our_recs and not any(s.startswith("report_") for s in our_schemas),
         "aliases or dropped streams not applied")
    MAPPED["records"] = {s: len(r) for s, r in our_recs.items()}
    return (f"singer-sdk {sdk_version}: {len(sdk_schemas)} streams, {sum(len(r) for r in sdk_recs.values())} records, "
            "schemas, keys and records identical")


# Python's semantics on Harvest's values (str() of floats, bools and None, //, %, **, slices,
# string methods, json.dumps, chained and/or): the records must be the SDK's; the schemas are not
# compared here, since the SDK types these from their text alone (a string, mostly).
EXPRESSIONS = {
    "time_entries": {
        "a": "str(hours) + '|' + str(billable) + '|' + str(notes)",
        "b": "spent_date[:7]",
        "c": "hours // 1",
        "d": "hours % 1",
        "e": "-hours",
        "f": "notes.split()[0] if notes else None",
        "g": "hours * 3 / 7",
        "h": "int(hours * 100) % 7 == 0 or is_locked",
        "i": "notes.title() if notes else ''",
        "j": "(notes or '').capitalize()",
        "k": "str(hours ** 2)",
        "l": "task_id in [8083001, 8083002]",
        "m": "str(rounded_hours) + str(started_time)",
        "n": "'x' * 3 + str(id)[-3:]",
        "__filter__": "hours > 0.5 and not is_locked"
    },
    "users": {
        "r": "'-'.join(roles)",
        "s": "json.dumps(roles)",
        "t": "str(roles)",
        "u": "email.replace('@', ' at ').upper()",
        "v": "first_name.startswith('A') or last_name.endswith('s')",
        "w": "email.find('@')",
        "x": "str(weekly_capacity / 3600)",
        "y": "json.dumps(permissions_claims, sort_keys=True)"
    },
    "invoices": {
        "p": "str(amount) + ' ' + str(tax)",
        "q": "json.dumps(payment_options)",
        "z": "str(due_amount * 1.1)"
    },
    "clients": {
        "n2": "name.lower().strip()",
        "a2": "(address or '').split('\\n')",
        "b2": "str(record)[:50]"
    }
}


@check("stream-map expressions give what the SDK's simpleeval gives, record for record",
       requires=["stream maps and flattening send what the Meltano SDK's own mapper sends"])
def _():
    config = cfg(stream_maps=EXPRESSIONS)
    raw = run([TAP, "--config", CONFIG_PATH], "expr-unmapped")
    need_rc(raw)
    ours = run([TAP, "--config", config], "expr-ours")
    need_rc(ours)
    need(not [m for lvl, m in log_lines(ours.stderr) if lvl == "WARNING"], f"warnings (log {ours.log})")
    sdk = run([SDK_PYTHON, ROOT / "tests/ecosystem/sdk_mapper.py", config], "expr-sdk", input=raw.stdout)
    need_rc(sdk)
    _, our_recs = by_stream(messages(ours.stdout))
    _, sdk_recs = by_stream(messages(sdk.stdout))
    need(set(our_recs) == set(sdk_recs), f"streams with records differ: {sorted(set(our_recs) ^ set(sdk_recs))}")
    for st in sorted(sdk_recs):
        if our_recs[st] != sdk_recs[st]:
            first = next((a, b) for a, b in zip(our_recs[st] + [""], sdk_recs[st] + [""]) if a != b)
            need(False, f"{st}: {len(our_recs[st])} records, the SDK {len(sdk_recs[st])}; first difference: ours {first[0][:300]} SDK {first[1][:300]}")
    n = sum(len(EXPRESSIONS[st]) for st in EXPRESSIONS)
    return f"{n} expressions over {sum(len(r) for r in sdk_recs.values())} records: identical"


@check("stream maps and flattening set in Meltano reach PostgreSQL through meltanolabs-target-postgres",
       requires=["stream maps and flattening send what the Meltano SDK's own mapper sends"])
def _():
    env = {"TAP_HARVEST_" + k.upper(): json.dumps(v) if isinstance(v, (dict, bool)) else str(v)
           for k, v in MAPS.items()}
    env["TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA"] = MAPS_SCHEMA
    p = meltano(["run", "--state-id-suffix", "maps", "tap-harvest", "target-postgres"], "run-postgres-maps", env=env)
    need_rc(p)
    need(not re.search(r"Traceback|Could not convert", p.stdout + p.stderr), f"errors in the log (log {p.log})")
    tables = set(pg(f"select table_name from information_schema.tables where table_schema = '{MAPS_SCHEMA}'").split())
    need("customers" in tables and "clients" not in tables and "tasks_copy" in tables, f"tables {sorted(tables)}")
    need(not any(t.startswith("report_") for t in tables), f"report tables loaded: {sorted(tables)}")

    def columns(t):
        rows = pg(f"select column_name, data_type from information_schema.columns where table_schema = '{MAPS_SCHEMA}' and table_name = '{t}'")
        return dict(line.split("|") for line in rows.splitlines())

    cust, users, entries = columns("customers"), columns("users"), columns("time_entries")
    need("name" not in cust and cust.get("name_hash") == "text", f"customers columns {cust}")
    need("email" not in users and users.get("email_domain") == "text", f"users columns {users}")
    need(users.get("roles") in ("text", "character varying"), f"users.roles (flattened array) is {users.get('roles')}")
    need(entries.get("hours_x2") == "numeric" and entries.get("day") == "bigint" and "notes" not in entries,
         f"time_entries columns {entries}")
    active = [c for c in truth("clients") if c["is_active"]]
    n = int(pg(f"select count(*) from {MAPS_SCHEMA}.customers"))
    need(n == len(active), f"{n} customers in PostgreSQL, {len(active)} active clients in Harvest")
    want = md5_hex("pepper-" + active[0]["name"])
    got = pg(f"select name_hash from {MAPS_SCHEMA}.customers where id = {active[0]['id']}").strip()
    need(got == want, f"name_hash {got!r}, md5 of the seeded name {want!r}")
    roles = pg(f"select roles from {MAPS_SCHEMA}.users limit 1").strip()
    need(isinstance(json.loads(roles), list), f"users.roles {roles!r} is not a JSON array")
    return f"{len(tables)} tables in {MAPS_SCHEMA}; {n} customers, name hashed, arrays as JSON text"


# ---------------------------------------------------------------- several accounts

SEVERAL_SCHEMA = "several_accounts"


@check("two Harvest accounts with overlapping ids into one PostgreSQL table per stream, kept apart by account_id (in the primary key)",
       requires=["singer-io tap-harvest 3.1.1 loaded into PostgreSQL (the warehouse to migrate)"])
def _():
    sim_bin = Path(E["ECO_TARGET_DIR"]) / "release/harvest-sim"
    sim = subprocess.Popen([sim_bin, "--size", "tiny", "--port", "0", "--no-rate-limit", "--accounts", "2"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        info = json.loads(sim.stdout.readline())
        accounts = [int(a) for a in info["accounts"]]
        need(len(accounts) == 2, f"the simulator serves {info['accounts']}")
        base = json.loads(CONFIG_PATH.read_text())
        config = write_json(RUN / "several-accounts.config.json", {
            **base, "base_url": info["base_url"], "auth_url": info["auth_url"],
            "access_token": info["access_token"], "account_id": "*"})
        streams = ["clients", "projects", "tasks", "users", "time_entries", "invoices"]
        catalog = json.loads(run([TAP, "--discover", "--config", config], "several-discover").stdout)
        for entry in catalog["streams"]:
            on = entry["tap_stream_id"] in streams
            entry["metadata"][0]["metadata"]["selected"] = on
            need(not on or entry["key_properties"][:1] == ["account_id"], f"{entry['tap_stream_id']} keys")
        p = run([TAP, "--config", config, "--catalog", write_json(RUN / "several.catalog.json", catalog)],
                "several-accounts-tap", timeout=300)
        need_rc(p)

        def truth_of(resource, account):
            return http_json("GET", f"{info['control_url']}/truth/{resource}?account_id={account}")

        overlap, wants = 0, {}
        for s in streams:
            ids = [{r["id"] for r in truth_of(RESOURCE_OF[s], a)} for a in accounts]
            overlap += len(ids[0] & ids[1])
            wants[s] = {a: len(i) for a, i in zip(accounts, ids)}
        need(overlap > 0, "no id is in both accounts: the check would prove nothing")
    finally:
        sim.terminate()
        sim.wait(timeout=15)
    exe = Path(E["MELTANO_SYS_DIR_ROOT"]) / "loaders/target-postgres/venv/bin/target-postgres"
    tconf = write_json(RUN / "several.target-config.json", {
        "host": "127.0.0.1", "port": int(PG_PORT), "user": PG_USER, "password": "unused-trust-auth",
        "database": PG_DB, "default_target_schema": SEVERAL_SCHEMA, "load_method": "upsert",
        "add_record_metadata": True, "validate_records": True})
    t = run([exe, "--config", tconf], "several-accounts-target", input=p.stdout, timeout=600)
    need_rc(t)
    need(not re.search(r"Traceback|Could not convert", t.stderr), f"errors in the target's log (log {t.log})")
    got = []
    for s in streams:
        rows = pg(f"select account_id, count(*) from {SEVERAL_SCHEMA}.\"{s}\" group by account_id order by 1")
        per = {int(a): int(n) for a, n in (line.split("|") for line in rows.splitlines())}
        want = wants[s]
        need(per == want, f"{s}: rows per account {per}, Harvest has {want}")
        keys = pg(f"select kcu.column_name from information_schema.table_constraints tc "
                  f"join information_schema.key_column_usage kcu on tc.constraint_name = kcu.constraint_name "
                  f"and tc.table_schema = kcu.table_schema where tc.table_schema = '{SEVERAL_SCHEMA}' "
                  f"and tc.table_name = '{s}' and tc.constraint_type = 'PRIMARY KEY' order by kcu.ordinal_position").split()
        need(sorted(keys) == ["account_id", "id"], f"{s}: primary key {keys}")
        got.append(f"{s} {sum(per.values())}")
    return f"{overlap} ids in both accounts; " + ", ".join(got) + " rows, as Harvest's two accounts hold"


# ---------------------------------------------------------------- summary

failed, skipped = RESULTS["failed"], RESULTS["skipped"]
if failed or skipped:
    print(f"\nfailed: {', '.join(failed) or '-'}; skipped: {', '.join(skipped) or '-'}; logs in {LOGS}")
print(f"ecosystem: {RESULTS['passed']} passed, {len(failed) + len(skipped)} failed")
sys.exit(1 if failed or skipped else 0)
