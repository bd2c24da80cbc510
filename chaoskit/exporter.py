"""chaoskit's own Prometheus metrics for game-day dashboards: phase, faults, trips, verdicts."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, push_to_gateway, start_http_server

from chaoskit.journal import Record

PHASES = ("preflight", "baseline", "inject", "recover", "rollback")


class RunExporter:
    """Folds journal records into metrics; serves them on a port and/or pushes them."""

    def __init__(self, experiment: str, port: int | None = None,
                 pushgateway: str | None = None, address: str = "127.0.0.1") -> None:
        self.experiment = experiment
        self._types: dict[str, str] = {}  # applied fault -> its type label
        self.pushgateway = pushgateway
        self.registry = CollectorRegistry()
        labels = ["experiment"]
        self.phase = Gauge("chaoskit_experiment_phase", "1 for the run's current phase",
                           labels + ["phase"], registry=self.registry)
        self.active = Gauge("chaoskit_active_faults", "1 while a fault is applied",
                            labels + ["fault", "type"], registry=self.registry)
        self.trips = Counter("chaoskit_guardrail_trips_total", "guardrails that aborted a run",
                             labels + ["guardrail"], registry=self.registry)
        self.verdicts = Counter("chaoskit_verdicts_total", "finished runs by status",
                                labels + ["status"], registry=self.registry)
        self.probe = Gauge("chaoskit_probe_value", "latest value of each probe",
                           labels + ["probe", "role"], registry=self.registry)
        self.server: Any = start_http_server(port, address, self.registry) if port else None
        self._wanted, self._closing = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._pusher, name="chaoskit-pushgateway",
                                        daemon=True)
        if pushgateway:
            self._thread.start()

    def __call__(self, record: Record) -> None:
        kind, exp = record["kind"], self.experiment
        if kind == "phase":
            for phase in PHASES:
                self.phase.labels(exp, phase).set(1.0 if phase == record["phase"] else 0.0)
            self._push()
        elif kind == "applied":
            self._types[record["fault"]] = record.get("type", "")
            self.active.labels(exp, record["fault"], self._types[record["fault"]]).set(1)
            self._push()
        elif kind == "reverted" and record["fault"] in self._types:
            self.active.labels(exp, record["fault"], self._types[record["fault"]]).set(0)
            self._push()
        elif kind == "guardrail":
            self.trips.labels(exp, record["name"]).inc()
        elif kind == "sample" and record.get("value") is not None:
            self.probe.labels(exp, record["name"], record.get("role", "")).set(record["value"])
        elif kind == "result":
            self.verdicts.labels(exp, record["status"]).inc()
            self._push()

    def _push(self) -> None:
        """Ask the pusher thread for a push: never a network call on the run's event loop."""
        if self.pushgateway:
            self._wanted.set()

    def _pusher(self) -> None:
        """Pushes whenever asked; a push asked for before close still goes out."""
        while True:
            if not self._wanted.wait(0.2):
                if self._closing.is_set():
                    return
                continue
            self._wanted.clear()
            with contextlib.suppress(OSError):  # a dashboard outage must not fail a game day
                push_to_gateway(str(self.pushgateway), job="chaoskit", registry=self.registry,
                                grouping_key={"experiment": self.experiment}, timeout=2)

    def close(self) -> None:
        if self.pushgateway and self._thread.is_alive():
            self._closing.set()
            self._thread.join(timeout=5)
        if self.server is not None:
            server, thread = self.server
            server.shutdown()
            thread.join(timeout=2)


class Observers:
    """Fan one journal record out to several observers (display, exporter)."""

    def __init__(self, *observers: Any) -> None:
        self.observers = [o for o in observers if o is not None]

    def __call__(self, record: Record) -> None:
        for observer in self.observers:
            observer(record)

    def close(self) -> None:
        for observer in self.observers:
            observer.close()
