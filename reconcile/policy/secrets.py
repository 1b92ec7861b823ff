"""Secret references and their lazy, leak-proof resolution.

Policies in the repo-of-record only *reference* secrets (``{env: NAME}``, ``{file: PATH}``,
``{kubernetes: {namespace, name, key}}``, ``{dockerConfig: PATH}``).  A :class:`SecretResolver`
turns a :class:`SecretRef` into a :class:`Secret` at the moment of use.

Leak-proofing rules followed throughout this module:

* A resolved value only ever lives inside a :class:`Secret`, whose string value is ``"***"``.
* Error messages name the reference (``SecretRef.describe()``) and the purpose, never content.
* Errors are raised *outside* ``except`` blocks, so ``__cause__`` and ``__context__`` are both
  ``None``: the original exception (``UnicodeDecodeError.object``, ``JSONDecodeError.doc``,
  ``ApiException.body``...) may carry the secret bytes.
* Code that touches raw content runs in helpers that *return* a :class:`SecretProblem` instead of
  raising, so the frames left in an error's traceback hold no raw content either (tools such
  as Sentry capture frame locals).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn, TypeGuard
from urllib.parse import quote

__all__ = [
    "MAX_SECRET_BYTES",
    "BasicCredentials",
    "KubernetesReader",
    "Secret",
    "SecretError",
    "SecretProblem",
    "SecretRef",
    "SecretResolver",
    "SecretSource",
    "normalize_registry_host",
    "redact",
]

log = logging.getLogger(__name__)

MASK = "***"
MAX_SECRET_BYTES = 1024 * 1024

SecretSource = Literal["env", "file", "kubernetes", "dockerConfig"]
KubernetesReader = Callable[[str, str, str], bytes]

_SOURCES: tuple[SecretSource, ...] = ("env", "file", "kubernetes", "dockerConfig")


def _is_source(name: object) -> TypeGuard[SecretSource]:
    return name in _SOURCES


_DOCKER_HUB = "docker.io"
_DOCKER_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})


# Every value a Secret has held in this process, so sinks such as the audit store can redact
# one that escaped its wrapper (e.g. quoted in an HTTP error). Shorter values would redact noise.
MIN_REDACTED_LENGTH = 4
_KNOWN_VALUES: set[str] = set()


_PATTERN: tuple[int, re.Pattern[str] | None] = (0, None)  # (how many values it covers, the alternation)


def redact(text: str) -> str:
    """``text`` with every secret value this process has resolved replaced by ``***``."""
    global _PATTERN
    if not _KNOWN_VALUES or not text:
        return text
    covered, pattern = _PATTERN
    if pattern is None or covered != len(_KNOWN_VALUES):  # values are only ever added
        values = sorted(_KNOWN_VALUES, key=len, reverse=True)  # the longest first: no half-masked value
        pattern = re.compile("|".join(map(re.escape, values)))
        _PATTERN = (len(values), pattern)
    return pattern.sub(MASK, text)


def _forms(value: str) -> set[str]:
    """``value`` as it may appear when a server or a library echoes it: as is, percent-encoded (a
    URL, a form body) and JSON-escaped (an error document)."""
    return {value, quote(value, safe=""), json.dumps(value)[1:-1]}


class Secret(str):
    """A string whose visible value is ``"***"``; the real value is only given by :meth:`reveal`.

    Because the ``str`` payload *is* ``"***"``, every generic path (``str``, ``repr``, f-strings,
    ``format``, ``%``, ``json.dumps``, logging, concatenation, slicing, ``len``) sees the mask.
    Consequently ``len(secret) == 3`` and ``in``/ordering/``str`` methods act on ``"***"``;
    use ``reveal()`` explicitly where the real value is needed (e.g. an HTTP auth header).

    Equality is only true between two Secrets with the same real value (constant time); a Secret
    never equals a plain ``str``, not even ``"***"``.  Pickling raises ``TypeError`` so a value
    cannot land in a pickle, a cache file or a multiprocessing queue.
    """

    __slots__ = ("__value",)
    __value: str

    def __new__(cls, value: str) -> Secret:
        if isinstance(value, Secret):
            value = value.reveal()
        elif not isinstance(value, str):
            raise TypeError(f"a Secret wraps a str, not {type(value).__name__}")
        self = super().__new__(cls, MASK)
        # A plain (exact) str copy, so no str subclass with its own __repr__ can sneak in.
        self.__value = str.__str__(value)
        if len(value) >= MIN_REDACTED_LENGTH:
            _KNOWN_VALUES.update(_forms(self.__value))
        return self

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # Subclasses inherit all masking; nothing to register, only keep the hook cooperative.
        super().__init_subclass__(**kwargs)

    def reveal(self) -> str:
        """Return the real value. Call this only at the point of use."""
        return self.__value

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return f"{type(self).__name__}({MASK!r})"

    def __format__(self, format_spec: str) -> str:
        return format(MASK, format_spec)

    def __bool__(self) -> bool:
        return bool(self.__value)

    def __eq__(self, other: object) -> bool:
        # False rather than NotImplemented: str's reflected __eq__ would compare "***" payloads.
        if not isinstance(other, Secret):
            return False
        # bytes, because compare_digest rejects non-ASCII str.
        return hmac.compare_digest(self.__value.encode(), other.reveal().encode())

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash((Secret, self.__value))

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __reduce_ex__(self, protocol: Any) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")

    def __getstate__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled")


@dataclass(frozen=True, slots=True)
class SecretRef:
    """Where a secret lives. Holds no secret material, so its repr is safe."""

    source: SecretSource
    env: str | None = None
    path: str | None = None
    namespace: str | None = None
    name: str | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        required = {
            "env": ("env",),
            "file": ("path",),
            "dockerConfig": ("path",),
            "kubernetes": ("namespace", "name", "key"),
        }.get(self.source)
        if required is None:
            raise ValueError(f"unknown secret source; expected one of {', '.join(_SOURCES)}")
        for field_name in ("env", "path", "namespace", "name", "key"):
            value = getattr(self, field_name)
            if field_name in required:
                if not isinstance(value, str) or not value:
                    raise ValueError(
                        f"a {self.source} secret reference needs a non-empty string {field_name}"
                    )
            elif value is not None:
                raise ValueError(f"a {self.source} secret reference takes no {field_name}")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SecretRef:
        """Build a reference from its (schema-validated) policy form.

        Error messages mention key names only, never values: a user who mistakenly inlined a
        secret must not see it echoed into CI logs.
        """
        if not isinstance(data, Mapping):
            raise ValueError("a secret reference must be a mapping")
        one_key = f"a secret reference must have exactly one key, one of {', '.join(_SOURCES)}"
        if len(data) != 1:
            raise ValueError(one_key)
        ((source, value),) = data.items()
        if not _is_source(source):
            raise ValueError(one_key)
        if source == "kubernetes":
            if not isinstance(value, Mapping) or set(value) != {"namespace", "name", "key"}:
                raise ValueError(
                    "a kubernetes secret reference needs exactly namespace, name and key"
                )
            return cls(
                source="kubernetes",
                namespace=value["namespace"],
                name=value["name"],
                key=value["key"],
            )
        if not isinstance(value, str) or not value:
            raise ValueError(f"a {source} secret reference needs a non-empty string")
        if source == "env":
            return cls(source="env", env=value)
        return cls(source=source, path=value)

    def describe(self) -> str:
        """A safe, human-readable description, e.g. ``kubernetes:ns/name#key``."""
        if self.source == "env":
            return f"env:{self.env}"
        if self.source == "kubernetes":
            return f"kubernetes:{self.namespace}/{self.name}#{self.key}"
        return f"{self.source}:{self.path}"

    def __str__(self) -> str:
        return self.describe()


@dataclass(frozen=True)
class BasicCredentials:
    """A username/password pair, e.g. from a Docker config. Both parts are masked."""

    username: Secret
    password: Secret

    def __post_init__(self) -> None:
        # Plain strs here would defeat the masking of repr/asdict/json.
        if not isinstance(self.username, Secret) or not isinstance(self.password, Secret):
            raise TypeError("BasicCredentials takes Secret username and password")

    def reveal(self) -> tuple[str, str]:
        """``(username, password)`` as plain strings, e.g. for ``requests``' ``auth=``."""
        return self.username.reveal(), self.password.reveal()


class SecretError(Exception):
    """A secret could not be resolved. The message names the reference, never the value."""

    def __init__(
        self, problem: str, *, ref: SecretRef | None = None, purpose: str | None = None
    ) -> None:
        parts = [p for p in (purpose, ref.describe() if ref is not None else None) if p]
        super().__init__(": ".join([*parts, problem]))
        self.problem = problem
        self.ref = ref
        self.purpose = purpose


@dataclass(frozen=True, slots=True)
class SecretProblem:
    """What went wrong, returned (not raised) by helpers that handle raw content."""

    message: str


def normalize_registry_host(value: str) -> str:
    """``https://Index.Docker.io/v1/`` -> ``docker.io``; ``host:5000/path`` -> ``host:5000``."""
    host = value.strip().lower()
    for scheme in ("https://", "http://"):
        if host.startswith(scheme):
            host = host[len(scheme) :]
            break
    host = host.split("/", 1)[0]
    return _DOCKER_HUB if host in _DOCKER_HUB_ALIASES else host


def _decode_utf8(data: bytes) -> str | SecretProblem:
    if len(data) > MAX_SECRET_BYTES:
        return SecretProblem(f"is larger than {MAX_SECRET_BYTES // (1024 * 1024)} MiB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return SecretProblem("is not valid UTF-8")


def _strip_value(text: str) -> str | SecretProblem:
    # Exactly one: `echo value > file` adds one; anything more is deliberate content.
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    return text if text else SecretProblem("is empty")


def _read_file(path: Path) -> bytes | SecretProblem:
    try:
        with path.open("rb") as handle:
            # One byte past the limit is enough to tell "too large" without reading it all.
            return handle.read(MAX_SECRET_BYTES + 1)
    except FileNotFoundError:
        return SecretProblem(f"file {path} does not exist")
    except IsADirectoryError:
        return SecretProblem(f"{path} is a directory, not a file")
    except PermissionError:
        return SecretProblem(f"permission denied reading {path}")
    except OSError as exc:
        return SecretProblem(f"cannot read {path}: {exc.strerror or type(exc).__name__}")


def _decode_basic_auth(encoded: object, host: str) -> tuple[str, str] | SecretProblem:
    if not isinstance(encoded, str):
        return SecretProblem(f"the auth entry for {host} is not a string")
    compact = "".join(encoded.split())
    # Tolerate missing padding, as several registries' login tools omit it.
    compact += "=" * (-len(compact) % 4)
    try:
        raw = base64.b64decode(compact, validate=True)
    except ValueError:  # binascii.Error, or non-ASCII input
        return SecretProblem(f"the auth entry for {host} is not valid base64")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return SecretProblem(f"the auth entry for {host} is not valid UTF-8")
    username, colon, password = text.partition(":")
    if not colon:
        return SecretProblem(f"the auth entry for {host} is not of the form base64(username:password)")
    if not username or not password:
        return SecretProblem(f"the auth entry for {host} has an empty username or password")
    return username, password


def _entry_credentials(entry: Mapping[str, Any], host: str) -> tuple[str, str] | SecretProblem | None:
    """Inline credentials of one ``auths`` entry; ``None`` if it has none (helper-managed)."""
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        # Docker's convention for identity (refresh) tokens.
        return "<token>", token
    if entry.get("auth"):
        return _decode_basic_auth(entry["auth"], host)
    username, password = entry.get("username"), entry.get("password")
    if username or password:
        if not (isinstance(username, str) and username and isinstance(password, str) and password):
            return SecretProblem(f"the entry for {host} needs both a username and a password")
        return username, password
    return None


def _docker_credentials(text: str, host: str) -> tuple[str, str] | SecretProblem:
    try:
        config = json.loads(text)
    except json.JSONDecodeError as exc:
        # Position only: JSONDecodeError.doc is the whole file.
        return SecretProblem(f"is not valid JSON (line {exc.lineno}, column {exc.colno})")
    except RecursionError:
        return SecretProblem("is not valid JSON (nested too deeply)")
    if not isinstance(config, dict):
        return SecretProblem("is not a JSON object")
    auths = config.get("auths", {})
    if not isinstance(auths, dict):
        return SecretProblem("has an `auths` that is not an object")

    matching = [
        entry
        for key, entry in auths.items()
        if isinstance(key, str) and normalize_registry_host(key) == host
    ]
    for entry in matching:
        if not isinstance(entry, dict):
            return SecretProblem(f"has an entry for {host} that is not an object")
        # First entry with inline credentials wins, as keys like `docker.io` and
        # `https://index.docker.io/v1/` may both exist, one of them empty (helper-managed).
        found = _entry_credentials(entry, host)
        if found is not None:
            return found

    helpers = config.get("credHelpers")
    helper_keys = helpers if isinstance(helpers, dict) else {}
    uses_helper = any(
        isinstance(key, str) and normalize_registry_host(key) == host for key in helper_keys
    )
    if uses_helper or config.get("credsStore"):
        which = "credHelpers" if uses_helper else "credsStore"
        return SecretProblem(
            f"the credentials for {host} are kept by a Docker credential helper ({which}), "
            f"which is not supported; add an inline `auth` entry for {host} under `auths`"
        )
    # A count, not the keys: this message must not echo any of the file's content.
    return SecretProblem(f"has no credentials for {host} (`auths` has {len(auths)} entries)")


class SecretResolver:
    """Resolves :class:`SecretRef` values lazily; one instance per run.

    Values are cached per reference (and files per path) for the resolver's lifetime, so each
    source is read at most once per run and a run sees one consistent value.
    """

    def __init__(
        self,
        *,
        environ: Mapping[str, str] | None = None,
        base_dir: Path | None = None,
        kubernetes_reader: KubernetesReader | None = None,
    ) -> None:
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._base_dir = Path(base_dir) if base_dir is not None else Path.cwd()
        self._kubernetes_reader: KubernetesReader = kubernetes_reader or _default_kubernetes_reader
        self._values: dict[SecretRef, Secret] = {}
        self._credentials: dict[tuple[SecretRef, str], BasicCredentials] = {}
        self._files: dict[Path, Secret] = {}
        # Reentrant: resolution paths share the file cache under the same lock.
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"SecretResolver(base_dir={str(self._base_dir)!r}, cached={len(self._values)})"

    def resolve(self, ref: SecretRef, *, purpose: str) -> Secret:
        """The value of ``ref``; ``purpose`` (e.g. ``Registry/ci spec.credentials.password``)
        labels error messages."""
        with self._lock:
            cached = self._values.get(ref)
            if cached is not None:
                return cached
            if ref.source == "env":
                value = self._resolve_env(ref, purpose)
            elif ref.source == "file":
                value = self._resolve_file(ref, purpose)
            elif ref.source == "kubernetes":
                value = self._resolve_kubernetes(ref, purpose)
            else:
                raise SecretError(
                    "a dockerConfig reference yields a username/password pair and cannot be "
                    "used where a single secret value is expected",
                    ref=ref,
                    purpose=purpose,
                )
            self._values[ref] = value
            log.debug("resolved secret %s for %s", ref.describe(), purpose)
            return value

    def resolve_docker_config(self, ref: SecretRef, *, host: str, purpose: str) -> BasicCredentials:
        """Credentials for registry ``host`` from the Docker ``config.json`` at ``ref.path``."""
        if ref.source != "dockerConfig":
            raise SecretError(
                "only a dockerConfig reference yields registry credentials",
                ref=ref,
                purpose=purpose,
            )
        wanted = normalize_registry_host(host)
        if not wanted:
            raise SecretError("no registry host given", ref=ref, purpose=purpose)
        with self._lock:
            cached = self._credentials.get((ref, wanted))
            if cached is not None:
                return cached
            text = self._file_text(ref, purpose)
            outcome = _docker_credentials(text.reveal(), wanted)
            if isinstance(outcome, SecretProblem):
                raise SecretError(outcome.message, ref=ref, purpose=purpose) from None
            credentials = BasicCredentials(Secret(outcome[0]), Secret(outcome[1]))
            del outcome  # no plain copy left in this frame
            self._credentials[(ref, wanted)] = credentials
            log.debug("resolved registry credentials for %s from %s", wanted, ref.describe())
            return credentials

    def _resolve_env(self, ref: SecretRef, purpose: str) -> Secret:
        name = ref.env or ""
        value = self._environ.get(name)
        if value is None:
            raise SecretError(f"environment variable {name} is not set", ref=ref, purpose=purpose)
        if not value:
            raise SecretError(f"environment variable {name} is empty", ref=ref, purpose=purpose)
        return Secret(value)

    def file_path(self, ref: SecretRef) -> Path:
        """Where a ``{file: PATH}`` or ``{dockerConfig: PATH}`` reference points, relative paths
        resolved against this resolver's base directory; for readers that must open the file
        themselves (a kubeconfig, whose relative paths resolve next to it)."""
        if ref.source not in ("file", "dockerConfig"):
            raise ValueError(f"a {ref.source} secret reference names no file")
        return self._path(ref)

    def _path(self, ref: SecretRef) -> Path:
        path = Path(ref.path or "")
        return path if path.is_absolute() else self._base_dir / path

    def _file_text(self, ref: SecretRef, purpose: str) -> Secret:
        """The whole file as text, read once per path; errors name the file, not content."""
        path = self._path(ref)
        cached = self._files.get(path)
        if cached is not None:
            return cached
        outcome = _masked_file(path)
        if isinstance(outcome, SecretProblem):
            raise SecretError(outcome.message, ref=ref, purpose=purpose) from None
        self._files[path] = outcome
        return outcome

    def _resolve_file(self, ref: SecretRef, purpose: str) -> Secret:
        outcome = _masked_value(self._file_text(ref, purpose), f"file {self._path(ref)}")
        if isinstance(outcome, SecretProblem):
            raise SecretError(outcome.message, ref=ref, purpose=purpose) from None
        return outcome

    def _resolve_kubernetes(self, ref: SecretRef, purpose: str) -> Secret:
        outcome = _masked_kubernetes(
            self._kubernetes_reader, ref.namespace or "", ref.name or "", ref.key or ""
        )
        if isinstance(outcome, SecretProblem):
            raise SecretError(outcome.message, ref=ref, purpose=purpose) from None
        return outcome


def _default_kubernetes_reader(namespace: str, name: str, key: str) -> bytes:
    # The network lives in the adapters, which pass their reader in (policy imports no adapter).
    raise SecretError("no Kubernetes secret reader is configured for this resolver")


def _masked_file(path: Path) -> Secret | SecretProblem:
    data = _read_file(path)
    if isinstance(data, SecretProblem):
        return data
    text = _decode_utf8(data)
    if isinstance(text, SecretProblem):
        return SecretProblem(f"file {path} {text.message}")
    return Secret(text)


def _masked_value(text: Secret, subject: str) -> Secret | SecretProblem:
    value = _strip_value(text.reveal())
    return SecretProblem(f"{subject} {value.message}") if isinstance(value, SecretProblem) else Secret(value)


def _masked_kubernetes(
    reader: KubernetesReader, namespace: str, name: str, key: str
) -> Secret | SecretProblem:
    try:
        data = reader(namespace, name, key)
    except SecretError as exc:
        return SecretProblem(exc.problem)
    except Exception as exc:
        # Type only: an arbitrary reader's message may quote what it read.
        return SecretProblem(f"the Kubernetes secret reader failed ({type(exc).__name__})")
    if not isinstance(data, bytes | bytearray):
        return SecretProblem("the Kubernetes secret reader did not return bytes")
    text = _decode_utf8(bytes(data))
    if isinstance(text, SecretProblem):
        return SecretProblem(f"the value {text.message}")
    return _masked_value(Secret(text), "the value")
