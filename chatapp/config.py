"""Settings, read from the environment once at start-up.

Every default runs offline: with nothing set, chatapp answers with the built-in
demo model. A `.env` file in the working directory is honoured the way
`flask run` honours it (python-dotenv), without overriding real variables.
A bad value stops start-up with a message naming the variable, rather than
surfacing later as a confusing stream error.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from dotenv import find_dotenv, load_dotenv

from .llm.completion_events import MAX_DELTA_CHARS
from .llm.demo_backend import DEMO_MODEL
from .llm.event_stream_lines import MAX_LINE_BYTES

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
BACKENDS = ("openai", "demo")

T = TypeVar("T", int, float)


class ConfigError(ValueError):
    """An environment variable holds a value chatapp cannot use."""


@dataclass(frozen=True)
class Settings:
    backend: str = "demo"
    # repr=False keeps the key out of any log line or traceback that prints the settings.
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    model: str = DEMO_MODEL
    # The models a request may name; empty means any name is passed to the upstream.
    models: tuple[str, ...] = ()

    max_messages: int = 100
    max_message_chars: int = 32_000
    max_conversation_chars: int = 200_000
    max_body_bytes: int = 1_048_576
    max_tokens_cap: int = 32_768

    upstream_connect_timeout_s: float = 10.0
    upstream_idle_s: float = 60.0
    upstream_max_retries: int = 2
    heartbeat_s: float = 15.0
    max_stream_s: float = 600.0
    write_timeout_s: float = 30.0
    # What one upstream answer may make a worker hold: a line of its stream, a text or reasoning
    # delta (llm/sse_lines.py and llm/completion_events.py say why no real model comes near them).
    max_upstream_line_bytes: int = MAX_LINE_BYTES
    max_delta_chars: int = MAX_DELTA_CHARS
    # When set, the page asks for this token once and the API answers 401 without it.
    access_token: str | None = field(default=None, repr=False)
    # Signs the session cookie. Unset: a random key per start (gunicorn.conf.py makes one in
    # the master, so that all workers share it), and sessions end with a restart.
    secret_key: str | None = field(default=None, repr=False)
    cookie_secure: bool = False

    # Streams a client address may start, in Flask-Limiter's notation ("" turns it off),
    # counted in memory (per worker) or in Redis ("redis://host:6379/0", shared).
    rate_limit: str = "30/minute"
    ratelimit_storage_uri: str = "memory://"

    # Proxies in front of the app (nginx: 1) whose X-Forwarded-For/-Proto/-Host are trusted,
    # so that limits count real client addresses. 0: use the socket's peer address.
    trusted_proxies: int = 0

    # Concurrent streams per worker and per client address (0: no cap).
    max_streams_per_worker: int = 1000
    max_streams_per_client: int = 20

    # GET /debug/stats (live streams, greenlets): for tests and load runs, never in production.
    debug_stats: bool = False
    # chatapp's own log level (gunicorn's is GUNICORN_LOGLEVEL).
    log_level: str = "INFO"

    # Where conversations are kept: None is a SQLite file in Flask's instance folder.
    # repr=False: a URL may hold a password.
    database_url: str | None = field(default=None, repr=False)
    # A streaming answer is saved at most this often (and at its end), never per token.
    checkpoint_s: float = 1.0
    # How long the model server's list of models (GET /v1/models) is reused.
    models_cache_s: float = 300.0

    # Redis shared by every worker and machine (stop, caps, answer logs, rate limits). None: one
    # process holds it all, and gunicorn runs a single worker (gunicorn.conf.py).
    # repr=False: a URL may hold a password.
    redis_url: str | None = field(default=None, repr=False)
    # An ended answer can be reattached to (GET /api/streams/<id>) for this long.
    stream_retention_s: float = 300.0
    # A stored conversation's answer nobody has read for this long is ended (0: never).
    detached_max_s: float = 0.0

    demo_tokens_per_s: float = 30.0
    demo_first_token_s: float = 0.4

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `environ` (default: the process environment plus `.env`)."""
        if environ is None:
            # usecwd: the .env of the directory the app runs from, as `flask run` finds it.
            load_dotenv(find_dotenv(usecwd=True), override=False)
            environ = os.environ
        env = _Reader(environ)

        api_key = env.text("OPENAI_API_KEY")
        base_url = env.text("OPENAI_BASE_URL")
        backend = env.text("CHATAPP_BACKEND") or ("openai" if api_key or base_url else "demo")
        if backend not in BACKENDS:
            raise ConfigError(f"CHATAPP_BACKEND must be one of {', '.join(BACKENDS)}, got {backend!r}")

        models = tuple(m.strip() for m in (env.text("CHATAPP_MODELS") or "").split(",") if m.strip())
        default_model = DEMO_MODEL if backend == "demo" else DEFAULT_OPENAI_MODEL
        model = env.text("CHATAPP_MODEL") or (models[0] if models else default_model)
        if models and model not in models:
            raise ConfigError(f"CHATAPP_MODEL {model!r} is not in CHATAPP_MODELS ({', '.join(models)})")

        redis_url = _redis_url(env.text("CHATAPP_REDIS_URL"))
        return cls(
            backend=backend,
            openai_api_key=api_key,
            openai_base_url=base_url,
            model=model,
            models=models,
            max_messages=env.number("CHATAPP_MAX_MESSAGES", int, cls.max_messages),
            max_message_chars=env.number("CHATAPP_MAX_MESSAGE_CHARS", int, cls.max_message_chars),
            max_conversation_chars=env.number(
                "CHATAPP_MAX_CONVERSATION_CHARS", int, cls.max_conversation_chars
            ),
            max_body_bytes=env.number("CHATAPP_MAX_BODY_BYTES", int, cls.max_body_bytes),
            max_tokens_cap=env.number("CHATAPP_MAX_TOKENS_CAP", int, cls.max_tokens_cap),
            upstream_connect_timeout_s=env.number(
                "CHATAPP_UPSTREAM_CONNECT_TIMEOUT_S", float, cls.upstream_connect_timeout_s
            ),
            upstream_idle_s=env.number("CHATAPP_UPSTREAM_IDLE_S", float, cls.upstream_idle_s),
            upstream_max_retries=env.number(
                "CHATAPP_UPSTREAM_MAX_RETRIES", int, cls.upstream_max_retries, zero_ok=True
            ),
            heartbeat_s=env.number("CHATAPP_HEARTBEAT_S", float, cls.heartbeat_s),
            max_stream_s=env.number("CHATAPP_MAX_STREAM_S", float, cls.max_stream_s),
            write_timeout_s=env.number("CHATAPP_WRITE_TIMEOUT_S", float, cls.write_timeout_s),
            max_upstream_line_bytes=_at_least(
                "CHATAPP_MAX_UPSTREAM_LINE_BYTES",
                env.number("CHATAPP_MAX_UPSTREAM_LINE_BYTES", int, cls.max_upstream_line_bytes),
                MIN_UPSTREAM_LINE_BYTES,
                "an ordinary chunk line is a few hundred bytes",
            ),
            max_delta_chars=_at_least(
                "CHATAPP_MAX_DELTA_CHARS",
                env.number("CHATAPP_MAX_DELTA_CHARS", int, cls.max_delta_chars),
                MIN_DELTA_CHARS,
                "a server may send several tokens in one delta",
            ),
            rate_limit=_rate_limit(environ.get("CHATAPP_RATE_LIMIT", cls.rate_limit).strip()),
            ratelimit_storage_uri=_storage_uri(
                env.text("CHATAPP_RATELIMIT_STORAGE_URI")
                or _shared_limits(redis_url)
                or cls.ratelimit_storage_uri
            ),
            trusted_proxies=env.number("CHATAPP_TRUSTED_PROXIES", int, cls.trusted_proxies, zero_ok=True),
            access_token=env.text("CHATAPP_ACCESS_TOKEN"),
            secret_key=env.text("SECRET_KEY"),
            cookie_secure=env.flag("CHATAPP_COOKIE_SECURE"),
            max_streams_per_worker=env.number(
                "CHATAPP_MAX_STREAMS_PER_WORKER", int, cls.max_streams_per_worker, zero_ok=True
            ),
            max_streams_per_client=env.number(
                "CHATAPP_MAX_STREAMS_PER_CLIENT", int, cls.max_streams_per_client, zero_ok=True
            ),
            debug_stats=env.flag("CHATAPP_DEBUG_STATS"),
            log_level=_log_level(env.text("CHATAPP_LOG_LEVEL") or cls.log_level),
            database_url=_database_url(env.text("DATABASE_URL")),
            checkpoint_s=env.number("CHATAPP_CHECKPOINT_S", float, cls.checkpoint_s),
            models_cache_s=env.number("CHATAPP_MODELS_CACHE_S", float, cls.models_cache_s, zero_ok=True),
            redis_url=redis_url,
            stream_retention_s=env.number("CHATAPP_STREAM_RETENTION_S", float, cls.stream_retention_s),
            detached_max_s=env.number("CHATAPP_DETACHED_MAX_S", float, cls.detached_max_s, zero_ok=True),
            demo_tokens_per_s=env.number("CHATAPP_DEMO_TOKENS_PER_S", float, cls.demo_tokens_per_s),
            demo_first_token_s=env.number(
                "CHATAPP_DEMO_FIRST_TOKEN_S", float, cls.demo_first_token_s, zero_ok=True
            ),
        )


# Below these, ordinary answers would end in `upstream_malformed`: refused at start-up instead.
MIN_UPSTREAM_LINE_BYTES = 4096
MIN_DELTA_CHARS = 1024


def _at_least(name: str, value: int, floor: int, why: str) -> int:
    if value < floor:
        raise ConfigError(f"{name} must be at least {floor} ({why}), got {value}")
    return value


DATABASE_SCHEMES = ("sqlite", "postgresql")


def _database_url(raw: str | None) -> str | None:
    scheme = (raw or "").split("://", 1)[0].split("+", 1)[0]
    if raw is not None and ("://" not in raw or scheme not in DATABASE_SCHEMES):
        raise ConfigError(
            "DATABASE_URL must be sqlite:///<path> or postgresql+psycopg://user:password@host:port/db"
        )
    return raw


REDIS_SCHEMES = ("redis", "rediss", "unix")


def _redis_url(raw: str | None) -> str | None:
    if raw is not None and raw.split("://", 1)[0] not in REDIS_SCHEMES:
        raise ConfigError(
            "CHATAPP_REDIS_URL must be redis://[:password@]host:port/db (or rediss://, unix://)"
        )
    return raw


def _shared_limits(redis_url: str | None) -> str | None:
    """With Redis configured, rate limits count in it too (unless told otherwise)."""
    return redis_url if redis_url is not None and redis_url.startswith(("redis://", "rediss://")) else None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in LOG_LEVELS:
        raise ConfigError(f"CHATAPP_LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, got {raw!r}")
    return level


def _rate_limit(raw: str) -> str:
    """Flask-Limiter's notation ("10/minute;200/day"), checked now rather than per request."""
    from limits import parse_many

    if raw:
        try:
            parse_many(raw)
        except ValueError:
            raise ConfigError(
                f"CHATAPP_RATE_LIMIT must look like '30/minute' or '10/minute;200/day', got {raw!r}"
            ) from None
    return raw


# The storages Flask-Limiter offers whose client chatapp installs (redis-py).
RATELIMIT_SCHEMES = ("memory", "redis", "rediss", "redis+unix", "redis+sentinel", "redis+cluster")


def _storage_uri(raw: str) -> str:
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in RATELIMIT_SCHEMES:
        raise ConfigError(
            f"CHATAPP_RATELIMIT_STORAGE_URI must be memory:// or redis://host:port/db, got {raw!r}"
        )
    return raw


class _Reader:
    """Typed access to an environment mapping; empty strings count as unset."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str) -> str | None:
        value = self._environ.get(name, "").strip()
        return value or None

    def flag(self, name: str) -> bool:
        raw = (self.text(name) or "0").lower()
        if raw not in ("0", "1", "true", "false", "yes", "no"):
            raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")
        return raw in ("1", "true", "yes")

    def number(self, name: str, kind: Callable[[str], T], default: T, zero_ok: bool = False) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a {kind.__name__}, got {raw!r}") from None
        if value < 0 or (value == 0 and not zero_ok):
            bound = "0 or more" if zero_ok else "greater than 0"
            raise ConfigError(f"{name} must be {bound}, got {raw!r}")
        return value
