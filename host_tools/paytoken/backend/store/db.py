"""Engines and migrations: SQLite (WAL, serialized writers) by default, PostgreSQL at scale.

Usage::

    engine = make_engine("sqlite:///paytoken.db")   # or postgresql+psycopg://...
    migrate(engine)                                  # Alembic upgrade to head
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError

from paytoken.backend import BackendError

DEFAULT_URL = "sqlite:///paytoken.db"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def normalize_url(url: str) -> str:
    """Accept a bare file path as SQLite; map ``postgresql://`` to the psycopg 3 driver."""
    if "://" not in url:
        return "sqlite:///" + url
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """An engine for ``url``. SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE``
    transactions, so concurrent writers queue instead of failing with 'database is locked'."""
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BackendError("database URL is not valid") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            raise BackendError("SQLite needs a file (WAL mode), not an in-memory database")
        engine = create_engine(
            parsed, connect_args={"timeout": 60, "check_same_thread": False},
            pool_size=pool_size, max_overflow=pool_size,
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):  # pragma: no cover - exercised via every test
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if parsed.get_backend_name() == "postgresql":
        # A server that does not answer is an error after 10 s, not a hang.
        connect_args: dict = {"connect_timeout": 10}
        threshold = parsed.query.get("prepare_threshold")
        if threshold is not None:  # a psycopg setting, not a libpq one: take it out of the URL
            parsed = parsed.difference_update_query(["prepare_threshold"])
            connect_args["prepare_threshold"] = _prepare_threshold(threshold)
        return create_engine(parsed, pool_size=pool_size, max_overflow=pool_size, connect_args=connect_args)
    raise BackendError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")


def _prepare_threshold(text: str) -> int | None:
    """``?prepare_threshold=none`` turns psycopg's server-side prepared statements off, as
    PgBouncer in transaction mode needs (docs/DEPLOY.md); a number sets the threshold."""
    if text.lower() in ("none", "off", ""):
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    raise BackendError("prepare_threshold in the database URL must be none or a number")


def _alembic_config(connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine) -> str:
    """Run the Alembic migrations up to head; returns the head revision."""
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "head")
    return ScriptDirectory(str(MIGRATIONS)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None before ``db init``)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def require_schema(engine: Engine) -> None:
    """BackendError unless the database is migrated to head."""
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    rev = current_revision(engine)
    if rev != head:
        raise BackendError(
            f"database schema is at {rev or 'nothing'}, expected {head}: run `paytoken db init`"
        )
