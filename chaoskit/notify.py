"""The webhook on verdict: one JSON POST, retried with backoff, bounded in time, never raising.

The body is the run's summary (as `chaoskit report --json` prints it) plus `text`, one line a
chat tool shows as is (Slack, Mattermost and most incident tools read `text`). A 2xx answer is
delivered; a 408, 425, 429 or 5xx answer, a refused connection or a timeout is retried after
`backoff`, doubling (a server's Retry-After is honoured up to MAX_RETRY_AFTER); any other answer
(a 4xx, a redirect) is final. Whatever happens is returned, never raised: a webhook must not
fail the run it reports. URLs are shown with their credentials and query masked; credentials
in a URL (https://user:token@host/...) are sent as Basic authorization.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

RETRY_STATUSES = frozenset({408, 425, 429})
MAX_RETRY_AFTER = 10.0
USER_AGENT = "chaoskit-webhook"


@dataclass(frozen=True)
class NotifyResult:
    url: str                 # masked: safe to print
    delivered: bool
    attempts: int
    status: int | None       # the last HTTP status (None: no answer)
    error: str | None        # why the last attempt failed
    seconds: float

    def line(self) -> str:
        tries = f"{self.attempts} attempt{'s' if self.attempts != 1 else ''}"
        if self.delivered:
            return f"webhook {self.url}: delivered (HTTP {self.status}, {tries})"
        return f"webhook {self.url}: NOT delivered after {tries}: {self.error}"


def mask_url(url: str) -> str:
    """The URL without secrets: user info and query replaced by ***, the path kept."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    netloc = ("***@" if parts.username or parts.password else "") + host + port
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "",
                       "***" if parts.fragment else ""))


def _scrub(text: str, url: str) -> str:
    """An error message with the URL and its secrets replaced by the masked URL."""
    text = text.replace(url, mask_url(url))
    try:
        parts = urlsplit(url)
        secrets = [parts.password, parts.username, parts.query, parts.fragment]
    except ValueError:
        secrets = []
    for secret in secrets:
        if secret and len(secret) > 2:
            text = text.replace(secret, "***")
    return text


def message_for(summary: Mapping[str, Any]) -> str:
    """One line for a human: the experiment, its status, and the items that did not hold."""
    status = str(summary.get("status") or "unknown").upper()
    line = f"chaoskit: {summary.get('experiment', '?')} {status}"
    line += f" (run {summary.get('run_id', '?')}, exit {summary.get('exit_code', '?')})"
    misses = [v for v in summary.get("verdicts") or [] if v.get("status") not in ("held", None)]
    details = [f"{v.get('item')} ({v.get('phase')}) {v.get('status')}: observed "
               f"{v.get('observed')}, expected {v.get('expect')}" for v in misses[:5]]
    if len(misses) > 5:
        details.append(f"and {len(misses) - 5} more")
    return line + ("; " + "; ".join(details) if details else "")


def payload(summary: Mapping[str, Any]) -> dict[str, Any]:
    return {"text": message_for(summary), **summary}


def _without_userinfo(url: str) -> tuple[str, dict[str, str]]:
    """urllib does not read credentials from a URL: they become a Basic Authorization header."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    netloc = parts.netloc.rsplit("@", 1)[1]
    userinfo = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
    token = base64.b64encode(userinfo.encode()).decode()
    return urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # a 3xx is an answer: the URL is wrong, and the body must not be re-sent


def _retry_after(error: urllib.error.HTTPError) -> float:
    try:
        return min(float(error.headers.get("Retry-After", "0")), MAX_RETRY_AFTER)
    except (AttributeError, TypeError, ValueError):  # no headers, or an HTTP date
        return 0.0


def _attempt(opener: urllib.request.OpenerDirector, request: urllib.request.Request,
             timeout: float, url: str) -> tuple[int | None, str | None, bool, float]:
    """(status, error, retry?, wait at least) of one POST."""
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(65536)
            return int(response.status), None, False, 0.0
    except urllib.error.HTTPError as exc:
        retry = exc.code in RETRY_STATUSES or exc.code >= 500
        return exc.code, f"HTTP {exc.code} {exc.reason}", retry, _retry_after(exc)
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return None, f"no answer within {timeout:g}s", True, 0.0
        return None, _scrub(f"cannot connect: {exc.reason}", url), True, 0.0
    except TimeoutError:
        return None, f"no answer within {timeout:g}s", True, 0.0
    except Exception as exc:  # whatever else the network does: reported, never raised
        return None, _scrub(f"{type(exc).__name__}: {exc}", url), True, 0.0


def post_verdict(url: str, summary: Mapping[str, Any], *, timeout: float = 5,
                 attempts: int = 3, backoff: float = 0.5,
                 headers: Mapping[str, str] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> NotifyResult:
    """POST the summary as JSON to `url`; at most `attempts` tries, each bounded by `timeout`
    seconds per network step. Returns what happened; never raises for the network or the URL."""
    started = time.monotonic()
    masked = mask_url(url)

    def done(tries: int, status: int | None, error: str | None) -> NotifyResult:
        return NotifyResult(masked, error is None, tries, status, error,
                            round(time.monotonic() - started, 3))

    try:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError(url)
        body = json.dumps(payload(summary), default=str).encode()
        target, auth = _without_userinfo(url)
        request = urllib.request.Request(target, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": USER_AGENT, **auth,
            **(headers or {})})
    except (ValueError, TypeError):
        return done(0, None, "not an http(s) URL: write e.g. https://hooks.example.com/...")
    opener = urllib.request.build_opener(_NoRedirects)
    status, error, tries = None, None, 0
    for tries in range(1, max(1, attempts) + 1):
        status, error, retry, wait = _attempt(opener, request, timeout, url)
        if error is None or not retry or tries >= attempts:
            break
        sleep(max(backoff * 2 ** (tries - 1), wait))
    return done(tries, status, error)
