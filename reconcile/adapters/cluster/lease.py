"""A ``coordination.k8s.io/v1`` Lease that lets one run at a time mutate: acquire, renew, release.

The semantics are client-go's leader election (``tools/leaderelection``): the record is the
Lease's ``spec`` (``holderIdentity``, ``leaseDurationSeconds``, ``acquireTime``, ``renewTime`` as
MicroTime, ``leaseTransitions`` incremented when the holder changes); every write is an update
guarded by the ``resourceVersion`` last read, so of two candidates only one wins; release clears
``holderIdentity`` as ``ReleaseOnCancel`` does. One difference: a CronJob's pod is new each run and
has never observed the Lease, so expiry is judged from the record's ``renewTime`` plus
``leaseDurationSeconds`` (client-go measures from when it first saw the record, which a one-shot
job cannot wait for).

Requests go through :class:`~reconcile.adapters.cluster.connection.Connection`: a timeout on each,
one configuration reload on a 401 (a rotated service-account token), and errors that are
:class:`ClusterError` s; a 403 names the rule the Lease needs.
"""

from __future__ import annotations

import copy
import logging
import math
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from reconcile.adapters.cluster.connection import Connection, in_pod, local_configuration, raw_body
from reconcile.adapters.cluster.errors import ClusterError, ConflictError, ForbiddenError, NotFoundError
from reconcile.adapters.cluster.kinds import Resource
from reconcile.policy import model

if TYPE_CHECKING:
    from kubernetes.client import Configuration

log = logging.getLogger(__name__)

LEASE = Resource("Lease", "coordination.k8s.io", "leases", "CoordinationV1Api", "lease", None)
# What a 403 asks for: the Lease's rule, in a Role of the Lease's namespace.
LEASE_RULE = "apiGroups [coordination.k8s.io], resources [leases], verbs [get, create, update]"
MAX_REQUEST_SECONDS = 10.0  # client-go's default RenewDeadline: a renewal must not hang past it


def _utc_now() -> datetime:
    return datetime.now(UTC)


class LeaseHeld(ClusterError):
    """Another live holder has the Lease: ``holder`` until ``expires`` (unless it renews)."""

    def __init__(self, cluster: str, lease: str, holder: str, expires: datetime) -> None:
        super().__init__(cluster, f"lease {lease} is held by {holder} until {_micro_time(expires)}"
                                  " (another run is in progress, or a crashed one's lease has not expired yet)")
        self.lease, self.holder, self.expires = lease, holder, expires


class LeaseLost(ClusterError):
    """The Lease is no longer ours: taken over, expired, or not renewed in time. ``why`` says which."""

    def __init__(self, cluster: str, lease: str, why: str) -> None:
        super().__init__(cluster, f"lease {lease} lost: {why}")
        self.lease, self.why = lease, why


class LeaseLock:
    """The Lease ``namespace/name`` for ``identity`` (the pod's name), valid ``duration`` after each
    renewal. ``configuration`` gives the client configuration (default: the pod's service account
    when ``KUBERNETES_SERVICE_HOST`` is set, else the kubeconfig); ``clock`` gives the time written
    to and compared with the Lease (UTC)."""

    def __init__(self, namespace: str, name: str, identity: str, *, duration: timedelta = timedelta(seconds=60),
                 configuration: Callable[[], Configuration] | None = None,
                 clock: Callable[[], datetime] = _utc_now) -> None:
        if duration < timedelta(seconds=1):
            raise ValueError("a Lease lasts at least one second (leaseDurationSeconds is a positive integer)")
        if not identity:
            raise ValueError("a Lease holder needs an identity")
        self.namespace, self.name, self.identity, self.duration = namespace, name, identity, duration
        self.cluster = "in-cluster" if in_pod() else "kubeconfig"  # named in errors
        self._configuration = configuration or (lambda: local_configuration(self.cluster))
        self._clock = clock
        self._lock = threading.RLock()  # one request at a time: the renewal thread and the caller
        self._state = threading.RLock()  # the fields below; check() takes only this (never waits on a request)
        self._connection: Connection | None = None
        self._lease: dict[str, Any] | None = None  # the object as our last write left it
        self._renewed: datetime | None = None  # clock time of the last successful write
        self._lost: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None

    def __repr__(self) -> str:
        state = "lost" if self._lost else "held" if self._lease is not None else "not held"
        return f"LeaseLock({self.namespace}/{self.name}, identity={self.identity!r}, {state})"

    @property
    def seconds(self) -> int:
        """``spec.leaseDurationSeconds``: the duration, rounded to whole seconds."""
        return max(1, round(self.duration.total_seconds()))

    @property
    def where(self) -> str:
        return f"{self.namespace}/{self.name}"

    # -- the three operations ---------------------------------------------------------------------

    def acquire(self) -> None:
        """Create the Lease, or take it over if it is released, expired or already ours. Raises
        :class:`LeaseHeld` if another live holder has it (also when another candidate's write
        won the race: a 409), :class:`ClusterError` if the API server cannot be asked."""
        with self._lock:
            now = self._clock()
            try:
                current = self._get()
            except NotFoundError:
                self._create(now)
                return
            spec = _spec(current)
            holder = _holder(spec)
            ours = holder == self.identity
            expires = _expires(spec)
            if holder and not ours and expires is not None and expires >= now:
                raise LeaseHeld(self.cluster, self.where, holder, expires)
            transitions = _int(spec.get("leaseTransitions"))
            record = self._record(now, acquired=spec.get("acquireTime") if ours else None,
                                  transitions=transitions if ours else transitions + 1)
            try:
                updated = self._update(current, record)
            except ConflictError:
                raise self._race_lost(now) from None
            if not ours:
                log.info("lease %s: taken over from %s (transition %d)", self.where, holder or "nobody",
                         transitions + 1)
            self._hold(updated, now)

    def renew(self) -> None:
        """Write a new ``renewTime`` if the Lease is still ours. Raises :class:`LeaseLost` if it
        is not (another holder, or not renewed within the duration), :class:`ClusterError` if this
        attempt failed but the Lease may still be ours."""
        with self._lock:
            self._check_held()
            assert self._lease is not None and self._renewed is not None
            now = self._clock()
            record = self._record(now, acquired=_spec(self._lease).get("acquireTime"),
                                  transitions=_int(_spec(self._lease).get("leaseTransitions")))
            try:
                try:
                    updated = self._update(self._lease, record)
                except ConflictError:
                    # Someone wrote it since our last write (client-go's slow path: read, then check).
                    current = self._get()
                    holder = _holder(_spec(current))
                    if holder != self.identity:
                        why = f"taken over by {holder}" if holder else "released by another writer"
                        raise self._mark_lost(why) from None
                    updated = self._update(current, record)
            except LeaseLost:
                raise
            except NotFoundError:
                raise self._mark_lost("the Lease was deleted") from None
            except ClusterError as exc:
                if now - self._renewed > self.duration:
                    raise self._mark_lost(f"not renewed for {_seconds(now - self._renewed)} (lease duration "
                                          f"{_seconds(self.duration)}): {exc.problem}") from None
                raise
            self._hold(updated, now, renewal=True)

    def release(self) -> None:
        """Give the Lease up, as client-go's ReleaseOnCancel does (holder cleared, duration 1s), so
        the next run acquires it at once. Best effort: never raises; logs a failure (the Lease
        then expires on its own)."""
        self._stop_renewing()
        with self._lock:
            with self._state:
                lease, self._lease = self._lease, None
                lost = self._lost
            if lease is None or lost is not None:
                return  # never ours, or no longer: someone else's to keep
            now = self._clock()
            record = {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": _micro_time(now),
                      "renewTime": _micro_time(now), "leaseTransitions": _int(_spec(lease).get("leaseTransitions"))}
            try:
                self._update(lease, record)
            except ClusterError as exc:
                log.warning("lease %s: not released (it expires %s after its last renewal): %s", self.where,
                            _seconds(self.duration), exc)
            except Exception as exc:  # release runs in finally blocks: it must not mask what happened
                log.warning("lease %s: not released (%s)", self.where, type(exc).__name__)
            else:
                log.info("lease %s: released", self.where)
            finally:
                with self._state:
                    self._lost = "released"

    @contextmanager
    def held(self) -> Iterator[LeaseLock]:
        """Acquire, renew every third of the duration in a daemon thread while the block runs,
        release at its end. Inside, :meth:`check` before each mutation: it raises once renewal
        has failed or the Lease was lost."""
        self.acquire()
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name=f"lease-{self.name}", daemon=True)
        self._renewer.start()
        try:
            yield self
        finally:
            self.release()

    def check(self) -> None:
        """Raise :class:`LeaseLost` (saying why) if the Lease was lost or renewal failed since
        :meth:`acquire`, or if the last renewal is older than the duration (another candidate may
        take it over now). No request, and it never waits for one: cheap enough before every
        mutation."""
        self._check_held()

    # -- internals ---------------------------------------------------------------------------------

    def _check_held(self) -> None:
        with self._state:
            if self._lost is not None:
                raise LeaseLost(self.cluster, self.where, self._lost)
            if self._lease is None or self._renewed is None:
                raise LeaseLost(self.cluster, self.where, "not acquired")
            age = self._clock() - self._renewed
            if age > self.duration:
                raise self._mark_lost(f"not renewed for {_seconds(age)} (lease duration {_seconds(self.duration)})")

    def _mark_lost(self, why: str) -> LeaseLost:
        with self._state:
            if self._lost is None:
                log.error("lease %s: lost: %s", self.where, why)
                self._lost = why
            return LeaseLost(self.cluster, self.where, self._lost)

    def _renew_loop(self) -> None:
        interval = self.duration.total_seconds() / 3
        while not self._stop.wait(interval):
            try:
                self.renew()
            except LeaseLost:
                return  # logged when marked; check() raises from now on
            except ClusterError as exc:
                log.warning("lease %s: renewal failed (retrying in %ss): %s", self.where, f"{interval:g}", exc)
            except Exception as exc:  # a daemon thread's exception would only be printed
                log.warning("lease %s: renewal failed (%s)", self.where, type(exc).__name__)

    def _stop_renewing(self) -> None:
        self._stop.set()
        renewer, self._renewer = self._renewer, None
        if renewer is not None and renewer is not threading.current_thread():
            renewer.join(timeout=self._request_seconds() * 2 + 1)

    def _hold(self, lease: dict[str, Any], now: datetime, *, renewal: bool = False) -> None:
        with self._state:
            if renewal and self._lost is not None:
                return  # check() gave it up while the renewal was in flight: lost stays lost
            self._lease, self._renewed, self._lost = lease, now, None

    def _record(self, now: datetime, *, acquired: Any, transitions: int) -> dict[str, Any]:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": self.seconds,
                "acquireTime": acquired if isinstance(acquired, str) and acquired else _micro_time(now),
                "renewTime": _micro_time(now), "leaseTransitions": transitions}

    def _race_lost(self, now: datetime) -> ClusterError:
        """After a 409 on acquire: another candidate wrote first. Says who, if a read can tell."""
        try:
            spec = _spec(self._get())
        except ClusterError:
            return LeaseHeld(self.cluster, self.where, "another candidate", now + self.duration)
        holder = _holder(spec)
        if not holder or holder == self.identity:
            holder = "another candidate"
        return LeaseHeld(self.cluster, self.where, holder, _expires(spec) or now + self.duration)

    def _create(self, now: datetime) -> None:
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._record(now, acquired=None, transitions=0)}
        try:
            created = self._call("create", "create_namespaced_lease", body=raw_body("V1Lease", body))
        except ConflictError:  # 409 AlreadyExists: another candidate created it first
            raise self._race_lost(now) from None
        log.info("lease %s: created, held by %s", self.where, self.identity)
        self._hold(created, now)

    def _get(self) -> dict[str, Any]:
        found: dict[str, Any] = self._call("get", "read_namespaced_lease", name=self.name)
        return found

    def _update(self, lease: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        # PUT with the resourceVersion read: a 409 if anyone wrote since (leaselock.go's Update).
        body = copy.deepcopy(lease)
        body["spec"] = {**_spec(lease), **spec}
        updated: dict[str, Any] = self._call("update", "replace_namespaced_lease", name=self.name,
                                             body=raw_body("V1Lease", body))
        return updated

    def _call(self, verb: str, method: str, **arguments: Any) -> Any:
        try:
            return self._client().call(LEASE, verb, method, namespace=self.namespace,
                                       timeout=self._request_seconds(), **arguments)
        except ForbiddenError as exc:
            raise ForbiddenError(
                self.cluster, verb=exc.verb, group=exc.group, resource=exc.resource, namespace=self.namespace,
                hint=f"the Lease needs a Role in namespace {self.namespace} with {LEASE_RULE}, bound to it") from None
        except NotFoundError as exc:
            if verb == "create":  # the namespace is missing
                raise ClusterError(self.cluster, f"lease {self.where}: cannot create it: {exc.problem}",
                                   status=404) from None
            raise

    def _client(self) -> Connection:
        if self._connection is None:
            timeout = timedelta(seconds=self._request_seconds())
            # Connection only reads the name and timeout of its Cluster.
            self._connection = Connection(model.Cluster(name=self.cluster, in_cluster=in_pod(), kubeconfig=None,
                                                        timeout=timeout), self._configuration)
        return self._connection

    def _request_seconds(self) -> float:
        return min(MAX_REQUEST_SECONDS, max(self.duration.total_seconds() / 3, 1.0))

    def close(self) -> None:
        """Release if still held, and close the connection."""
        self.release()
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _spec(lease: dict[str, Any]) -> dict[str, Any]:
    spec = lease.get("spec")
    return spec if isinstance(spec, dict) else {}


def _holder(spec: dict[str, Any]) -> str:
    holder = spec.get("holderIdentity")
    return holder if isinstance(holder, str) else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _expires(spec: dict[str, Any]) -> datetime | None:
    """``renewTime + leaseDurationSeconds``; None when either is missing or unreadable (expired)."""
    renewed = _parse_time(spec.get("renewTime"))
    seconds = spec.get("leaseDurationSeconds")
    if renewed is None or not isinstance(seconds, int) or isinstance(seconds, bool):
        return None
    return renewed + timedelta(seconds=seconds)


def _micro_time(moment: datetime) -> str:
    # metav1.MicroTime: RFC 3339 with microseconds, in UTC ("2006-01-02T15:04:05.000000Z07:00").
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _seconds(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    return f"{math.floor(seconds)}s" if seconds >= 10 else f"{seconds:.1f}s"
