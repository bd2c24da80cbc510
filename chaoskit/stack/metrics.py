"""The stack's Prometheus metrics: one registry per process, names fixed by the contract."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5,
                   1.0, 2.5, 5.0, 10.0)
# lag = completed_at - due_at in real seconds: negative is early, so buckets span both sides
LAG_BUCKETS = (-3600.0, -600.0, -300.0, -120.0, -60.0, -30.0, -10.0, -5.0, -1.0, 0.0, 1.0, 5.0,
               10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 3600.0)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class StackMetrics:
    """Every metric of the contract, each labelled with the node it runs on."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.request_duration = Histogram(
            "payments_request_duration_seconds", "HTTP request latency",
            ["node", "service", "route", "status"], buckets=LATENCY_BUCKETS, registry=r)
        self.schedule_lag = Histogram(
            "payments_schedule_lag_seconds", "completed_at - due_at (real s; <=0 is on time)",
            ["node", "flow"], buckets=LAG_BUCKETS, registry=r)
        self.flows_completed = Counter(
            "payments_flows_completed", "flows completed", ["node", "flow", "on_time"], registry=r)
        self.deadline_misses = Counter(
            "payments_deadline_misses", "flows completed after their due time",
            ["node", "flow"], registry=r)
        self.queue_depth = Gauge(
            "payments_queue_depth", "pending flows", ["node", "flow"], registry=r)
        self.overdue = Gauge(
            "payments_overdue_flows", "pending flows already past their due time",
            ["node", "flow"], registry=r)
        self.lease_takeovers = Counter(
            "payments_lease_takeovers", "claims of flows whose previous lease expired",
            ["node"], registry=r)
        self.fenced_completions = Counter(
            "payments_fenced_completions", "completions refused because the lease moved on",
            ["node"], registry=r)
        self.leader_changes = Counter(
            "payments_leader_changes", "times this instance became leader", ["node"], registry=r)
        self.window_open_lag = Histogram(
            "payments_window_open_lag_seconds", "opened_at - opens_at of final-payment windows",
            ["node"], buckets=LATENCY_BUCKETS, registry=r)
        self.is_leader = Gauge("payments_is_leader", "1 while leader", ["node"], registry=r)
        self.leases_held = Gauge("payments_leases_held", "work leases this worker holds now",
                                 ["node"], registry=r)
        self.bank_call_duration = Histogram(
            "payments_bank_call_duration_seconds", "bank channel call latency",
            ["node", "bank", "outcome"], buckets=LATENCY_BUCKETS, registry=r)
        self.offline_progress = Gauge(
            "payments_offline_progress_ratio", "share of units done", ["node", "job"], registry=r)
        self.offline_units = Counter(
            "payments_offline_units", "offline units done", ["node", "job"], registry=r)
        self.is_leader.labels(node).set(0)
        self.lease_takeovers.labels(node)
        self.leader_changes.labels(node)

    def observe_request(self, service: str, route: str, status: int, seconds: float) -> None:
        self.request_duration.labels(self.node, service, route, str(status)).observe(seconds)

    def observe_completion(self, flow: str, lag_seconds: float, newly_missed: bool) -> None:
        """A completed flow; a late one counts as a miss unless a sweep counted it already."""
        on_time = lag_seconds <= 0
        self.schedule_lag.labels(self.node, flow).observe(lag_seconds)
        self.flows_completed.labels(self.node, flow, "true" if on_time else "false").inc()
        if newly_missed:
            self.deadline_misses.labels(self.node, flow).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
