"""Chaos on chaoskit: every way a run can end, on the real local lab, with every local fault kind
active at once, and nothing left behind.

Each row runs one experiment that carries all five local fault kinds on different parts of a
3-node lab: 300 ms on the bank-alpha proxy (Toxiproxy), node-1 frozen (cgroup freezer), node-2
isolated (its link cut), a CPU burner co-located on node-3 (an offline cgroup), and one node
added (scale: node-4, a netns with a gateway in HAProxy's rotation and a worker). The row then
ends the run its way (a verdict, a guardrail, signals, SIGKILL, a driver error, Toxiproxy or the
ledger database lost, a full journal disk, a hung platform call, a second run) and checks the
exit code and the verdict. Then `tests/fixtures/residue.py`, which does not use chaoskit's code,
asks Toxiproxy's API, HAProxy's admin socket, /sys/fs/cgroup, `ip link`/`ip netns` and the
process table whether anything is left.

The rows share one lab (module scope); a row that breaks a part of it (Toxiproxy, PostgreSQL)
repairs it before it ends, as an operator would, with the lab's own launcher.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from tests.fixtures.lab import RunningLab, require_lab_tools, start_lab, stop_lab
from tests.fixtures.residue import Baseline, chaoskit_processes, residue
from tests.fixtures.systems import REFERENCE_FILE

pytestmark = [pytest.mark.integration, pytest.mark.root]

FIVE = ("slow-bank", "frozen", "cut-off", "batch", "more")
RUN_TIMEOUT = 240.0  # a run's own bound; the hung-call row needs ~90 s on a busy machine
APPLY_TIMEOUT = 90.0  # all five applied (scale's node joins HAProxy: 2-20 s on a busy machine)
WINDOW = 30  # s, every fault's window in rows that end by themselves: all five must be in
#              place together first (scale's new node took up to ~18 s to join on a busy box)
LONG = 60  # s, rows the test ends itself (a signal, a guardrail, a kill) before this

EXPERIMENT = """\
apiVersion: chaoskit/v1
kind: Experiment
metadata: {{name: {name}}}
system: {system}
target:
  platform: local
  lab: {lab}
  scope: {{nodes: [node-*], proxies: [bank-alpha]}}
phases: {{baseline: 1s, recover: 2s}}
faults:
  - {{name: slow-bank, type: latency, target: {{proxy: bank-alpha}}, latency: 300ms,
     duration: {d}s}}
  - {{name: frozen, type: node-loss, mode: freeze, target: {{node: node-1}},
     recovery_timeout: 5s, duration: {d}s}}
  - {{name: cut-off, type: node-loss, mode: isolate, target: {{node: node-2}},
     recovery_timeout: 5s, duration: {d}s}}
  - {{name: batch, type: colocate, work: burner, cpu: 1, lifetime: 120s,
     target: {{node: node-3}}, duration: {d}s}}
  - {{name: more, type: scale, nodes: 1, drain: 1s, join_timeout: {join}s, duration: {d}s}}
{faults}hypothesis:
  - name: entry-answers
    probe: {{type: http, url: "{entry}/healthz", measure: ok, timeout: 2s, interval: 500ms}}
    expect: ">= 1"
    aggregate: p50
    phases: [during, after]
{items}guardrails:
  - name: books-unbalanced
    probe: {{type: money, check: books-balance, interval: 500ms}}
    abort_when: "> 0"
"""


def require_root() -> None:
    if os.geteuid() == 0:
        return
    message = "netns nodes, cgroups and tmpfs mounts need root"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message + " (CI must run this as root)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def matrix_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """A 3-node netns lab of this module's own: its rows stop Toxiproxy and PostgreSQL."""
    require_root()
    require_lab_tools()
    running = start_lab(tmp_path_factory.mktemp("chaos-lab"), nodes=3, mode="netns")
    try:
        yield running
    finally:
        stop_lab(running)


# -- one run through the CLI, as a user starts it ------------------------------------------------
def records_of(path: Path) -> list[dict]:
    """A journal's records (a torn last line, as a full disk leaves it, is skipped)."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            found.append(json.loads(line))
    return found


class Runner:
    """`chaoskit run` in its own session (a Ctrl-C reaches its group, never the test)."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path, out: Path,
                 name: str) -> None:
        self.out, self.name, self.log = out, name, log
        self._earlier = set(out.glob(f"{name}-*/journal.jsonl"))  # another run's, not ours
        self.started = time.monotonic()
        with open(log, "w") as handle:
            self.process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                            env=env, start_new_session=True)
        self._journal: Path | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    def journal(self, timeout: float = 60.0) -> Path:
        deadline = time.monotonic() + timeout
        while self._journal is None:
            found = sorted(set(self.out.glob(f"{self.name}-*/journal.jsonl")) - self._earlier)
            if found:
                self._journal = found[0]
                break
            assert self.process.poll() is None, f"the run ended early:\n{self.output()}"
            assert time.monotonic() < deadline, "the run never opened its journal"
            time.sleep(0.05)
        return self._journal

    def records(self) -> list[dict]:
        return records_of(self.journal())

    def wait_for(self, check: Callable[[list[dict]], bool], what: str,
                 timeout: float = APPLY_TIMEOUT) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            found = self.records()
            if check(found):
                return found
            assert self.process.poll() is None, f"the run ended before {what}:\n{self.output()}"
            assert time.monotonic() < deadline, f"not within {timeout:g}s: {what}"
            time.sleep(0.05)

    def wait_applied(self, faults: tuple[str, ...] = FIVE) -> list[dict]:
        """Until every named fault is applied (the journal says so; the audit checks)."""
        found = self.wait_for(lambda rs: set(faults) <= applied(rs), f"{faults} applied")
        print(f"\n  {self.name}: {len(faults)} faults applied {self.age()}s after the start")
        assert not reverted(found), (f"a fault's window ended before all {len(faults)} were in "
                                     "place: the machine is slower than the row's duration")
        return found

    def age(self) -> str:
        return f"{time.monotonic() - self.started:.1f}"

    def watchdog(self) -> int:
        journal = self.journal()
        deadline = time.monotonic() + 10
        while True:
            for pid in chaoskit_processes(journal.parent, "chaoskit.engine.watchdog"):
                return pid
            assert time.monotonic() < deadline, "the run has no watchdog"
            time.sleep(0.05)

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        try:
            code = self.process.wait(timeout)
            print(f"  {self.name}: exit {code} {self.age()}s after the start")
            return code
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"the run did not end in {timeout:g}s:\n{self.output()}"
                                 ) from None

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def applied(records: list[dict]) -> set[str]:
    return {r["fault"] for r in records if r["kind"] == "applied"}


def reverted(records: list[dict]) -> set[str]:
    return {r["fault"] for r in records if r["kind"] == "reverted"}


def closing(records: list[dict]) -> dict:
    assert records and records[-1]["kind"] == "result", "the journal was not closed"
    return records[-1]


# -- what a run looks like while its faults are in place (the audit must see each) -----------------
def active_kinds(findings: list[str], base: Baseline) -> set[str]:
    """Which of the five fault kinds the independent audit sees in place."""
    veth2 = base.veths[1]
    kinds = set()
    for line in findings:
        if line.startswith("Toxiproxy: toxic") and "bank-alpha" in line:
            kinds.add("latency")
        if "freezer: node node-1 is FROZEN" in line:
            kinds.add("freeze")
        if line.startswith(f"link {veth2} is down"):
            kinds.add("isolate")
        if "offline/batch work" in line or "left under node node-3" in line:
            kinds.add("colocate")
        if "HAProxy: extra server node-4" in line:
            kinds.add("scale")
    return kinds


ALL_KINDS = {"latency", "freeze", "isolate", "colocate", "scale"}


# -- the lab's parts a row breaks, and their repair ------------------------------------------------
def lab_process(lab: RunningLab, process_id: str) -> dict:
    state = json.loads((Path(lab.dir) / "state.json").read_text())
    return next(p for p in state["processes"] if p["id"] == process_id)


def gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def wait_gone(pid: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not gone(pid):
        assert time.monotonic() < deadline, f"process {pid} did not exit"
        time.sleep(0.05)


def relaunch(lab: RunningLab, process_id: str) -> None:
    """Start a lab's host process again from its record, as `lab up` started it."""
    from chaoskit.lab import nodes, processes, state

    with state.locked(Path(lab.dir)):
        current = state.load(Path(lab.dir))
        record = current.process(process_id)
        assert record is not None
        if processes.alive(record.pid, record.started):
            return
        nodes.launch(current, record)
        state.save(current)


def restart_toxiproxy(lab: RunningLab) -> None:
    """Toxiproxy keeps its proxies in memory: a new server gets the lab's proxies again."""
    from chaoskit import toxiproxy

    relaunch(lab, "toxiproxy")
    api = lab.state.toxiproxy_api
    toxiproxy.wait_ready(api, 15.0)
    server = toxiproxy.ToxiproxyServer(api)
    for name, proxy in lab.state.proxies.items():
        server.ensure_proxy(name, proxy["listen"], proxy["upstream"])


def restart_postgres(lab: RunningLab) -> None:
    relaunch(lab, "postgres")
    deadline = time.monotonic() + 60
    while True:
        try:
            with psycopg.connect(lab.state.postgres_url, connect_timeout=2) as db:
                db.execute("SELECT count(*) FROM ledger_entries")
            return
        except psycopg.Error:
            assert time.monotonic() < deadline, "the lab's PostgreSQL did not come back"
            time.sleep(0.2)


# -- the matrix's per-row tools --------------------------------------------------------------------
@dataclass
class Matrix:
    lab: RunningLab
    base: Baseline
    tmp: Path
    cleanups: list[Callable[[], None]] = field(default_factory=list)  # after any heal

    @property
    def runs(self) -> Path:
        return self.tmp / "runs"

    def env(self) -> dict[str, str]:
        return {**os.environ, "CHAOSKIT_CLAIMS": str(self.tmp / "claims"),
                "CHAOSKIT_JOURNAL_FALLBACK": str(self.tmp / "fallback")}

    def experiment(self, name: str, seconds: float, *, faults: str = "", items: str = ""
                   ) -> Path:
        path = self.tmp / f"{name}.yaml"
        path.write_text(EXPERIMENT.format(name=name, system=REFERENCE_FILE, lab=self.lab.dir,
                                          entry=self.lab.state.entry_url, d=f"{seconds:g}",
                                          join=APPLY_TIMEOUT, faults=faults, items=items))
        return path

    def start(self, spec: Path, out: Path | None = None, tag: str = "") -> Runner:
        """The run's history stays off `out` (SQLite waits 30 s for a full disk to free up)."""
        out = out or self.runs
        command = [sys.executable, "-m", "chaoskit.cli", "run", str(spec), "--seed", "7",
                   "--display", "plain", "--no-report", "--out", str(out),
                   "--history", str(self.tmp / "history")]
        log = self.tmp / f"{spec.stem}{tag}.log"
        return Runner(command, self.env(), log, out, spec.stem)

    def recover(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "chaoskit.cli", "recover", *args],
                              capture_output=True, text=True, timeout=RUN_TIMEOUT,
                              env=self.env())

    def residue(self) -> list[str]:
        return residue(self.base, self.tmp)

    def heal(self) -> None:
        """After a failed row: put the lab back for the next ones (best effort)."""
        for pid in chaoskit_processes(self.tmp, "chaoskit.cli"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for process_id in ("toxiproxy", "postgres"):
            with contextlib.suppress(ProcessLookupError):
                os.kill(lab_process(self.lab, process_id)["pid"], signal.SIGCONT)
        with contextlib.suppress(Exception):
            restart_toxiproxy(self.lab)
        with contextlib.suppress(Exception):
            restart_postgres(self.lab)
        for out in {p.parent.parent for p in self.tmp.rglob("journal.jsonl")}:
            self.recover("--force", "--out", str(out))


@pytest.fixture(scope="module")
def clean_lab(matrix_lab: RunningLab) -> Baseline:
    """What the lab is made of, read once while it is known to be clean."""
    return Baseline.of(matrix_lab.dir)


@pytest.fixture
def matrix(matrix_lab: RunningLab, clean_lab: Baseline, tmp_path: Path) -> Iterator[Matrix]:
    base = clean_lab
    before = residue(base, tmp_path)
    assert before == [], f"the lab is not clean before the row: {before}"
    m = Matrix(matrix_lab, base, tmp_path)
    try:
        yield m
    finally:
        try:
            if m.residue():
                m.heal()
        finally:
            for cleanup in m.cleanups:
                cleanup()


def assert_result(records: list[dict], status: str, code: int) -> dict:
    result = closing(records)
    assert (result["status"], result["exit_code"]) == (status, code), result
    assert result["audit"]["clean"], result["audit"]
    assert result.get("outstanding") in ([], None), result
    return result


def assert_all_reverted(records: list[dict], faults: tuple[str, ...] = FIVE) -> None:
    assert set(faults) <= applied(records), applied(records)
    assert set(faults) <= reverted(records), f"not reverted: {set(faults) - reverted(records)}"


# -- the rows --------------------------------------------------------------------------------------
def row_held(m: Matrix) -> None:
    run = m.start(m.experiment("held", WINDOW))
    run.wait_applied()
    assert run.wait() == 0, run.output()
    records = run.records()
    assert_all_reverted(records)
    result = assert_result(records, "held", 0)
    assert {v["status"] for v in result["verdicts"]} == {"held"}


BANK_FAST = """\
  - name: bank-alpha-fast
    probe: {{type: http, url: "http://{listen}/healthz", measure: latency, timeout: 2s,
            interval: 250ms}}
    expect: "<= 100ms"
    aggregate: p50
    phases: [during]
"""


def row_failed(m: Matrix) -> None:
    listen = m.lab.state.proxies["bank-alpha"]["listen"]
    run = m.start(m.experiment("failed", WINDOW, items=BANK_FAST.format(listen=listen)))
    run.wait_applied()
    assert run.wait() == 1, run.output()
    records = run.records()
    assert_all_reverted(records)
    result = assert_result(records, "failed", 1)
    failing = [v for v in result["verdicts"] if v["status"] == "failed"]
    assert [v["item"] for v in failing] == ["bank-alpha-fast"], result["verdicts"]
    assert failing[0]["observed"] >= 0.3  # the 300 ms toxic, seen from outside
    assert "bank-alpha-fast" in run.output()


@contextlib.contextmanager
def unbalanced_books(m: Matrix) -> Iterator[Callable[[], None]]:
    """Money at risk, for real: one ledger leg without its other half (removed afterwards)."""
    flow = f"chaos-on-chaoskit-{uuid.uuid4().hex[:8]}"

    def unbalance() -> None:
        with psycopg.connect(m.lab.state.postgres_url, autocommit=True) as db:
            db.execute("INSERT INTO flows (id, kind, status, amount, currency, merchant) "
                       "VALUES (%s, 'payment', 'completed', 1.00, 'CNY', 'm-chaos')", (flow,))
            db.execute("INSERT INTO ledger_entries (flow_id, account, amount, currency) "
                       "VALUES (%s, 'merchant:m-chaos', 1.00, 'CNY')", (flow,))
    try:
        yield unbalance
    finally:
        with psycopg.connect(m.lab.state.postgres_url, autocommit=True) as db:
            db.execute("DELETE FROM ledger_entries WHERE flow_id = %s", (flow,))
            db.execute("DELETE FROM flows WHERE id = %s", (flow,))


def row_guardrail_abort(m: Matrix) -> None:
    run = m.start(m.experiment("guardrail", LONG))
    with unbalanced_books(m) as unbalance:
        run.wait_applied()
        unbalance()
        assert run.wait() == 3, run.output()
    records = run.records()
    assert_all_reverted(records)
    result = assert_result(records, "aborted", 3)
    assert result["abort"]["by"] == "guardrail", result["abort"]
    trip = next(r for r in records if r["kind"] == "guardrail")
    assert trip["name"] == "books-unbalanced" and trip["value"] >= 1, trip


def _interrupted(m: Matrix, name: str, sig: signal.Signals, times: int, code: int) -> None:
    run = m.start(m.experiment(name, LONG))
    run.wait_applied()
    os.killpg(run.pid, sig)  # as a terminal's Ctrl-C (or a supervisor) reaches the group
    if times == 2:  # again, while the first one's rollback is reverting
        run.wait_for(lambda rs: any(r["kind"] == "abort" for r in rs), "the abort")
        os.killpg(run.pid, sig)
    assert run.wait() == code, run.output()
    records = run.records()
    assert_all_reverted(records)
    result = assert_result(records, "interrupted", code)
    assert result["abort"] == {"reason": f"interrupted by {sig.name}", "by": "signal"}
    if times == 2:
        assert any(r["kind"] == "event" and f"{sig.name} again" in r["message"]
                   for r in records), "the second signal was not seen"


def row_sigint(m: Matrix) -> None:
    _interrupted(m, "sigint", signal.SIGINT, 1, 130)


def row_sigint_twice(m: Matrix) -> None:
    _interrupted(m, "sigint-twice", signal.SIGINT, 2, 130)


def row_sigterm(m: Matrix) -> None:
    _interrupted(m, "sigterm", signal.SIGTERM, 1, 143)


def _wait_closed(run: Runner, journal: Path | None = None, timeout: float = 120.0
                 ) -> list[dict]:
    deadline = time.monotonic() + timeout
    path = journal or run.journal()
    while not (records_of(path) and records_of(path)[-1]["kind"] == "result"):
        assert time.monotonic() < deadline, "nobody closed the journal"
        time.sleep(0.05)
    return records_of(path)


def _no_watchdog_left(run: Runner, where: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while chaoskit_processes(where, "chaoskit.engine.watchdog"):
        assert time.monotonic() < deadline, f"the watchdog did not exit:\n{run.output()}"
        time.sleep(0.05)


def row_sigkill_runner(m: Matrix) -> None:
    run = m.start(m.experiment("sigkill", LONG))
    run.wait_applied()
    run.watchdog()
    killed = time.monotonic()
    os.kill(run.pid, signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    records = _wait_closed(run)
    print(f"\nwatchdog: runner SIGKILLed -> journal closed, 5 faults reverted on the real lab in "
          f"{time.monotonic() - killed:.2f}s")
    _no_watchdog_left(run, run.journal().parent)
    assert_all_reverted(records)
    result = assert_result(records, "crashed", 4)
    assert result["recovered_by"].startswith("watchdog: runner process"), result


def row_sigkill_runner_and_watchdog(m: Matrix) -> None:
    run = m.start(m.experiment("sigkill-both", LONG))
    run.wait_applied()
    watchdog = run.watchdog()
    os.kill(run.pid, signal.SIGSTOP)  # no heartbeat thread left to start a new watchdog
    os.kill(watchdog, signal.SIGKILL)
    os.kill(run.pid, signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    wait_gone(watchdog)
    time.sleep(1.0)  # nothing reverts now: prove it, the faults are all still in place
    left = m.residue()
    assert active_kinds(left, m.base) == ALL_KINDS, left
    assert reverted(run.records()) == set()
    done = m.recover("--out", str(m.runs))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"recovered run {run.journal().parent.name}" in done.stdout
    assert all(f"reverted: {name}" in done.stdout for name in FIVE), done.stdout
    records = run.records()
    assert_all_reverted(records)
    result = assert_result(records, "crashed", 4)
    assert result["recovered_by"] == "chaoskit recover"


FAILS_TO_START = """\
  - {name: nightly-job, type: colocate, work: reconciliation, target: {node: node-3},
     start_timeout: 1ms, start: 15s, duration: 10s}
"""


def row_driver_exception(m: Matrix) -> None:
    """A real driver raising mid-inject: the reconciliation job cannot report progress within
    its 1 ms start_timeout; the colocate driver raises FaultError while the five are in."""
    run = m.start(m.experiment("driver-exception", WINDOW, faults=FAILS_TO_START))
    run.wait_applied()
    assert run.wait() == 4, run.output()
    records = run.records()
    assert_all_reverted(records)
    failed = next(r for r in records if r["kind"] == "inject-failed")
    assert failed["fault"] == "nightly-job", failed
    assert applied(records[:records.index(failed)]) == set(FIVE), "raised before all five"
    assert not reverted(records[:records.index(failed)]), "raised after a revert"
    assert "did not report progress within 0.001s" in failed["error"]
    result = assert_result(records, "error", 4)
    assert "did not report progress" in result["error"]


def row_second_run(m: Matrix) -> None:
    """The same experiment again while the first run holds its targets: refused before it
    injects anything, naming the live run; the first run's five faults stay exactly as they
    were (its own rollback, on SIGTERM, then leaves nothing)."""
    spec = m.experiment("second-run", LONG)
    first = m.start(spec)
    first.wait_applied()
    holder = first.journal().parent.name
    second = m.start(spec, tag="-second")
    assert second.wait() == 4, second.output()
    assert f"held by live run {holder}" in second.output()
    assert "intent" not in {r["kind"] for r in second.records()}  # nothing injected
    assert_result(second.records(), "error", 4)
    present = m.residue()  # the first run's faults untouched by the refused one
    assert active_kinds(present, m.base) == ALL_KINDS, present
    assert not reverted(first.records())
    os.killpg(first.pid, signal.SIGTERM)
    assert first.wait() == 143, first.output()
    records = first.records()
    assert_all_reverted(records)
    assert_result(records, "interrupted", 143)


def row_toxiproxy_restarted(m: Matrix) -> None:
    """Toxiproxy SIGKILLed under the run and started again (with the lab's proxies): its
    toxics die with it; the run's revert finds nothing of its own to remove, says the fault was
    gone before its window ended, and the run is inconclusive (the system was not tested under
    it for its whole window), never a pass."""
    run = m.start(m.experiment("toxiproxy-restarted", WINDOW))
    run.wait_applied()
    toxiproxy = lab_process(m.lab, "toxiproxy")["pid"]
    os.kill(toxiproxy, signal.SIGKILL)
    wait_gone(toxiproxy)
    time.sleep(1.0)
    restart_toxiproxy(m.lab)
    assert run.wait() == 5, run.output()
    records = run.records()
    assert_all_reverted(records)
    assert_result(records, "inconclusive", 5)
    slow = next(r for r in records if r["kind"] == "reverted" and r["fault"] == "slow-bank")
    assert slow["facts"]["removed_toxics"] == [], slow  # gone with the server it was on
    assert slow["facts"]["vanished"], slow
    (held,) = [p for p in records[-1]["preconditions"] if p["name"] == "faults-held"]
    assert not held["met"] and "slow-bank" in held["detail"]


def row_ledger_db_down(m: Matrix) -> None:
    """PostgreSQL shut down hard (SIGQUIT: immediate) under the run: the books guardrail can no
    longer be read and aborts it, blind guardrails failing closed."""
    run = m.start(m.experiment("ledger-db-down", LONG))
    run.wait_applied()
    postgres = lab_process(m.lab, "postgres")["pid"]
    try:
        os.kill(postgres, signal.SIGQUIT)
        assert run.wait() == 3, run.output()
    finally:
        wait_gone(postgres)
        restart_postgres(m.lab)
    records = run.records()
    assert_all_reverted(records)
    result = assert_result(records, "aborted", 3)
    blind = next(r for r in records if r["kind"] == "guardrail-blind")
    assert blind["name"] == "books-unbalanced", blind
    assert "could not be read 3 times" in result["abort"]["reason"]


def small_disk(m: Matrix, size: str = "4m") -> Path:
    """A 4 MiB tmpfs of the row's own, unmounted when the row is over (after any heal: the
    journals on it are what `recover` needs)."""
    where = m.tmp / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "chaoskit-full", str(where)],
                   check=True)
    m.cleanups.append(lambda: subprocess.run(["umount", "-l", str(where)], check=False))
    return where


def fill(disk: Path) -> None:
    with open(disk / "filler", "wb") as out, contextlib.suppress(OSError):
        while True:
            out.write(b"\0" * 65536)
            out.flush()


def _fallback(m: Matrix, run: Runner) -> list[dict]:
    """The records that went to the fallback (the runner's file, and the watchdog's if it
    recovered), in the order they were written."""
    files = (m.tmp / "fallback").glob(f"chaoskit-journal-{run.journal().parent.name}-*")
    return sorted((r for f in files for r in records_of(f)), key=lambda r: r["ts"])


def row_journal_disk_full(m: Matrix) -> None:
    """--out on a 4 MiB tmpfs, filled once the five are in: the run reverts everything,
    records what it can in the fallback (and says where on stderr), and, with part of its
    record lost, exits 4 without a verdict."""
    disk = small_disk(m)
    run = m.start(m.experiment("disk-full", WINDOW), out=disk)
    run.wait_applied()
    journal = run.journal()
    fill(disk)
    code = run.wait()
    output = run.output()
    assert "cannot write the journal" in output and str(m.tmp / "fallback") in output
    _no_watchdog_left(run, disk)  # dismissed: it cannot see the end in the journal
    fallback = _fallback(m, run)
    records = records_of(journal) + fallback
    assert code == 4, output
    assert_all_reverted(records)
    assert [r["kind"] for r in records].count("result") == 1  # no second, "crashed" one
    result = assert_result(fallback, "error", 4)
    assert "the journal could not be written" in result["error"], result


def row_journal_disk_full_sigkill(m: Matrix) -> None:
    """The journal's disk full, then the runner killed: the watchdog, whose journal and log are
    on that disk too, still reverts everything."""
    disk = small_disk(m)
    run = m.start(m.experiment("disk-full-kill", LONG), out=disk)
    run.wait_applied()
    journal = run.journal()
    fill(disk)
    time.sleep(4.0)  # past the lease's TTL: a starved lease would get the runner killed
    assert run.process.poll() is None, f"the watchdog killed a live runner:\n{run.output()}"
    os.kill(run.pid, signal.SIGKILL)
    assert run.wait() == -signal.SIGKILL
    deadline = time.monotonic() + 120
    while not any(r["kind"] == "result" for r in _fallback(m, run)):
        assert time.monotonic() < deadline, "the watchdog never recorded its recovery"
        time.sleep(0.1)
    _no_watchdog_left(run, disk)
    records = sorted(records_of(journal) + _fallback(m, run), key=lambda r: r["ts"])
    assert_all_reverted(records)
    assert_result(records, "crashed", 4)


def row_hung_platform_call(m: Matrix) -> None:
    """Toxiproxy SIGSTOPped: every call to its API hangs until the client's bound. The latency
    revert times out (each attempt bounded), the other four are reverted regardless, the run
    says what it could not revert (exit 4); once Toxiproxy runs again `recover` finishes."""
    run = m.start(m.experiment("hung-call", WINDOW))
    run.wait_applied()
    toxiproxy = lab_process(m.lab, "toxiproxy")["pid"]
    os.kill(toxiproxy, signal.SIGSTOP)
    try:
        code = run.wait()
    finally:
        os.kill(toxiproxy, signal.SIGCONT)
    assert code == 4, run.output()
    records = run.records()
    assert_all_reverted(records, tuple(f for f in FIVE if f != "slow-bank"))
    result = closing(records)
    assert (result["status"], result["outstanding"]) == ("error", ["slow-bank"]), result
    assert "chaoskit recover" in result["error"]
    assert any(r["kind"] == "revert-failed" and r["fault"] == "slow-bank" for r in records)
    left = m.residue()
    assert active_kinds(left, m.base) == {"latency"} and len(left) == 1, left
    done = m.recover(str(run.journal()))
    assert done.returncode == 0 and "reverted: slow-bank" in done.stdout, done.stdout
    recovered = closing(run.records())
    assert recovered["outstanding"] == [] and recovered["audit"]["clean"], recovered


ROWS: dict[str, Callable[[Matrix], None]] = {
    "held": row_held,
    "failed": row_failed,
    "guardrail-abort": row_guardrail_abort,
    "sigint": row_sigint,
    "sigint-twice": row_sigint_twice,
    "sigterm": row_sigterm,
    "sigkill-runner": row_sigkill_runner,
    "sigkill-runner-and-watchdog-then-recover": row_sigkill_runner_and_watchdog,
    "driver-exception-mid-inject": row_driver_exception,
    "second-run-same-targets": row_second_run,
    "journal-disk-full": row_journal_disk_full,
    "journal-disk-full-then-sigkill": row_journal_disk_full_sigkill,
    "hung-platform-call": row_hung_platform_call,
    "toxiproxy-killed-and-restarted": row_toxiproxy_restarted,
    "ledger-db-down": row_ledger_db_down,
}


@pytest.mark.parametrize("path", list(ROWS))
def test_every_exit_path_leaves_nothing_behind(matrix: Matrix, path: str) -> None:
    started = time.monotonic()
    ROWS[path](matrix)
    left = matrix.residue()
    print(f"\n{path}: {time.monotonic() - started:.1f}s, residue {left or 'none'}")
    assert left == [], left
