"""GraphQL client for the CatalysisHub Surface Reactions API: key header, rate limit, budget, retries.

The API key (env ``CATHUB_API_KEY``) travels only in the ``X-API-Key`` header of a POST; it is never logged,
never written to disk, and redacted from every error message. Redirects are refused so the key never reaches
another host.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from calculators.files import atomic_write_json

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api-catalysis-hub.slac.stanford.edu"
PAGE_SIZE = 200  # the API caps `first` at 200
DEFAULT_DAILY_BUDGET = 450  # requests/UTC day: a margin below the ~500/day that gets accounts suspended
MAX_REQUESTS_PER_MINUTE = 10.0  # the API's documented limit; faster clients get their account suspended
MAX_DAILY_BUDGET = 500  # requests/UTC day the API allows before suspending the account
_KEY_RE = re.compile(r"[\x21-\x7e]+")  # visible ASCII: what an HTTP header value can carry unchanged
OFFLINE_HINT = "offline: use --data-file or the cache"
KEY_HINT = "set CATHUB_API_KEY (get a key at <base>/auth/login)"


class CatHubError(RuntimeError):
    """Any failure talking to CatalysisHub (message already redacted)."""


class AuthError(CatHubError):
    """401/403 or no key: the request was not authorised."""


class OfflineError(CatHubError):
    """The API cannot be reached (no network, DNS failure, refused connection)."""


class NotFoundError(CatHubError):
    """The pubId is unknown or the query returned nothing."""


class BudgetExceeded(CatHubError):
    """The per-run or daily request budget is spent."""


class RateLimited(CatHubError):
    """429 after all retries."""


def check_api_key(key: str) -> None:
    """`AuthError` unless `key` is one token of visible ASCII characters (what an HTTP header carries). The
    message says what is wrong (a newline, a space, a non-ASCII character) but never shows the key."""
    if _KEY_RE.fullmatch(key):
        return
    bad = next(c for c in key if not _KEY_RE.fullmatch(c))
    what = {"\n": "a newline", "\r": "a carriage return", " ": "a space", "\t": "a tab"}.get(
        bad, f"the character U+{ord(bad):04X}" + (" (not ASCII)" if ord(bad) > 0x7E else " (a control character)")
    )
    raise AuthError(
        f"CATHUB_API_KEY contains {what} at position {key.index(bad) + 1} of {len(key)}: an API key is one token "
        "of visible ASCII characters. Check how it was set (a pasted line break, quotes, a copied non-ASCII "
        "character); the key itself is not shown"
    )


def check_rate(requests_per_minute: float, daily_budget: int | None = None) -> None:
    """`ValueError` unless 0 < requests_per_minute ≤ MAX_REQUESTS_PER_MINUTE and, when given, 0 < daily_budget ≤
    MAX_DAILY_BUDGET: CatalysisHub suspends accounts above its limits (~10 requests/minute, ~500/day)."""
    rpm = float(requests_per_minute)
    if not (math.isfinite(rpm) and 0 < rpm <= MAX_REQUESTS_PER_MINUTE):
        raise ValueError(
            f"request rate must be above 0 and at most {MAX_REQUESTS_PER_MINUTE:g} per minute (CatalysisHub's "
            f"documented limit; it suspends accounts above it), got {requests_per_minute}"
        )
    if daily_budget is not None and not 0 < daily_budget <= MAX_DAILY_BUDGET:
        raise ValueError(
            f"daily budget must be between 1 and {MAX_DAILY_BUDGET} requests (CatalysisHub suspends accounts above "
            f"~500 a day), got {daily_budget}"
        )


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced by ``***``."""
    if secret:
        text = text.replace(secret, "***")
    return text


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None  # urllib then raises HTTPError(3xx)


def _utc_day() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")


class CatHubClient:
    """POSTs GraphQL queries to ``<base_url>/graphql``.

    Rate limit: at most ``requests_per_minute`` (60/rpm s between requests; above 0 and at most the API's
    documented 10/minute, else `ValueError`). The key must be visible ASCII (`check_api_key`, `AuthError`
    otherwise, never showing it). Budgets: ``max_requests`` for
    this client's lifetime and ``daily_budget`` per UTC day (counted in ``budget_file`` when given, a file
    holding only a date and a count). ``clock``/``sleep``/``today`` are injectable for fast tests. Retries:
    429, 5xx and timeouts are retried up to ``max_retries`` times with exponential back-off
    (``backoff_s`` · 2^attempt, or the
    server's Retry-After when larger); every attempt counts against the budgets.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        requests_per_minute: float = 10.0,
        daily_budget: int = DEFAULT_DAILY_BUDGET,
        max_requests: int | None = None,
        max_retries: int = 4,
        backoff_s: float = 10.0,
        timeout_s: float = 120.0,
        budget_file: str | Path | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        today: Callable[[], str] = _utc_day,
    ) -> None:
        self.base_url = (base_url or os.environ.get("CATHUB_API_URL") or DEFAULT_BASE_URL).rstrip("/")
        key = api_key if api_key is not None else os.environ.get("CATHUB_API_KEY", "")
        self._key = key.strip() or None
        if self._key is not None:
            check_api_key(self._key)
        check_rate(requests_per_minute, daily_budget)
        self.min_interval_s = 60.0 / requests_per_minute
        self.daily_budget = daily_budget
        self.max_requests = max_requests
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        self.budget_file = Path(budget_file) if budget_file else None
        self._clock, self._sleep, self._today = clock, sleep, today
        self._last: float | None = None
        self.requests_made = 0
        self._opener = urllib.request.build_opener(_NoRedirect)

    def __repr__(self) -> str:
        return f"CatHubClient(base_url={self.base_url!r}, key={'set' if self._key else 'unset'})"

    @property
    def has_key(self) -> bool:
        """True when an API key is configured."""
        return self._key is not None

    # ------------------------------------------------------------------ budget
    def _daily_count(self) -> int:
        if self.budget_file is None or not self.budget_file.exists():
            return 0
        try:
            d = json.loads(self.budget_file.read_text())
        except (OSError, ValueError):
            return 0
        return int(d.get("count", 0)) if d.get("day") == self._today() else 0

    def _count_request(self) -> None:
        self.requests_made += 1
        if self.budget_file is None:
            return
        atomic_write_json(self.budget_file, {"day": self._today(), "count": self._daily_count() + 1}, fsync=True)

    def requests_left_today(self) -> int:
        """Requests still allowed today by ``daily_budget`` (counted in ``budget_file``, else this client)."""
        used = self._daily_count() if self.budget_file else self.requests_made
        return max(0, self.daily_budget - used)

    def _check_budget(self) -> None:
        if self.max_requests is not None and self.requests_made >= self.max_requests:
            raise BudgetExceeded(
                f"request budget of this run ({self.max_requests}) is spent; rerun to resume from the cache"
            )
        if self.requests_left_today() <= 0:
            raise BudgetExceeded(
                f"daily request budget ({self.daily_budget}) is spent; CatalysisHub suspends accounts above "
                "~500 requests/day. Resume tomorrow (the cache keeps everything fetched so far)."
            )

    # ------------------------------------------------------------------ transport
    def _wait_turn(self) -> None:
        if self._last is not None and self.min_interval_s > 0:
            wait = self.min_interval_s - (self._clock() - self._last)
            if wait > 0:
                self._sleep(wait)
        self._last = self._clock()

    def _post_once(self, query: str) -> tuple[int, dict[str, str], bytes]:
        body = json.dumps({"query": query}).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self._key:
            headers["X-API-Key"] = self._key
        req = urllib.request.Request(f"{self.base_url}/graphql", data=body, headers=headers, method="POST")
        try:
            with self._opener.open(req, timeout=self.timeout_s) as resp:
                return resp.status, dict(resp.headers.items()), resp.read()
        except urllib.error.HTTPError as exc:
            data = exc.read() if exc.fp is not None else b""
            return exc.code, dict(exc.headers.items()) if exc.headers else {}, data

    def query(self, query: str) -> dict[str, Any]:
        """Run one GraphQL query and return its ``data`` object (raises a CatHubError subclass on failure)."""
        if not self._key:
            raise AuthError(f"no CatalysisHub API key: {KEY_HINT}; or, {OFFLINE_HINT}")
        attempt = 0
        while True:
            self._check_budget()
            self._wait_turn()
            self._count_request()
            try:
                status, headers, raw = self._post_once(query)
            except (ValueError, UnicodeError) as exc:  # never echo the exception: it may quote the key header
                if isinstance(exc, UnicodeError) or "header" in str(exc).lower():
                    raise AuthError("the API key could not be sent in an HTTP header (invalid characters)") from None
                raise CatHubError(redact(f"invalid request to {self.base_url}: {exc}", self._key)) from None
            except TimeoutError as exc:
                status, headers, raw = -1, {}, str(exc).encode()
            except (urllib.error.URLError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                if not isinstance(reason, TimeoutError):
                    raise OfflineError(
                        redact(
                            f"cannot reach {self.base_url} ({type(exc).__name__}: {reason}); {OFFLINE_HINT}",
                            self._key,
                        )
                    ) from None
                status, headers, raw = -1, {}, str(reason).encode()
            if status == 200:
                return self._decode(raw)
            if status == 401:
                raise AuthError(f"CatalysisHub rejected the API key (401): {KEY_HINT}")
            if status == 403:
                raise AuthError(
                    "CatalysisHub refused the request (403): the key is not allowed or the account is "
                    "suspended (too many requests/day?); check the account, or set CATHUB_API_KEY to "
                    "another key"
                )
            if 300 <= status < 400:
                raise CatHubError(
                    f"CatalysisHub answered a redirect ({status}) for {self.base_url}; not following it. "
                    "The base URL may be outdated: set CATHUB_API_URL"
                )
            retryable = status == 429 or status >= 500 or status == -1
            if not retryable or attempt >= self.max_retries:
                what = "timed out" if status == -1 else f"HTTP {status}"
                snippet = raw[:300].decode("utf-8", "replace")
                cls = RateLimited if status == 429 else CatHubError
                raise cls(
                    redact(
                        f"CatalysisHub request failed ({what}) after {attempt + 1} attempt(s): {snippet}",
                        self._key,
                    )
                )
            delay = self.backoff_s * (2**attempt)
            retry_after = {k.lower(): v for k, v in headers.items()}.get("retry-after")
            if retry_after:
                with contextlib.suppress(ValueError):
                    delay = max(delay, float(retry_after))
            log.warning("CatalysisHub %s; retry %d/%d in %.1f s", status, attempt + 1, self.max_retries, delay)
            self._sleep(delay)
            attempt += 1

    def _decode(self, raw: bytes) -> dict[str, Any]:
        try:
            payload = json.loads(raw)
        except ValueError:
            raise CatHubError(
                redact(f"CatalysisHub answered non-JSON: {raw[:200].decode('utf-8', 'replace')}", self._key)
            ) from None
        errors = payload.get("errors")
        if payload.get("data") is None or errors:
            msgs = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors or [])
            raise CatHubError(redact(f"CatalysisHub GraphQL error: {msgs or 'no data'}", self._key))
        return payload["data"]

    # ------------------------------------------------------------------ queries
    def reactions_page(self, pub_id: str, after: str | None = None, first: int = PAGE_SIZE) -> dict[str, Any]:
        """One metadata page ``{totalCount, pageInfo, edges}`` ordered by id, after cursor ``after``."""
        after_arg = f", after: {json.dumps(after)}" if after else ""
        q = (
            f"{{ reactions(pubId: {json.dumps(pub_id)}, first: {min(int(first), PAGE_SIZE)}{after_arg}, "
            'order: "id") { totalCount pageInfo { hasNextPage endCursor } edges { node { '
            "id Equation reactants products sites reactionEnergy activationEnergy chemicalComposition "
            "surfaceComposition facet dftCode dftFunctional pubId "
            "reactionSystems { name aseId energyCorrection } "
            "} } } }"
        )
        return self.query(q)["reactions"]

    def system(self, ase_id: str) -> dict[str, Any]:
        """One structure by aseId: ``{uniqueId, energy, constraints, InputFile}`` (InputFile: ASE-db JSON)."""
        q = (
            f"{{ systems(first: 1, uniqueId: {json.dumps(ase_id)}) {{ edges {{ node {{ "
            'uniqueId energy constraints InputFile(format: "json") } } } }'
        )
        edges = self.query(q)["systems"]["edges"]
        if not edges:
            raise NotFoundError(f"no system with aseId {ase_id!r} on CatalysisHub")
        return edges[0]["node"]
