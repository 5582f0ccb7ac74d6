"""The embedded default: the log and the users in one SQLite file (standard library).

Durability rule: a message is handed to the hub (its echo to the sender, with its
offset, and every delivery) only after the transaction that stored it has committed.
The file runs in WAL mode with ``synchronous=FULL``: each commit waits for the WAL to
reach the disk, so a message whose echo anyone received survives a SIGKILL of the
server and a power cut alike (as far as the disk honours fsync). ``synchronous=NORMAL``
would survive a crash of the process but could lose the last commits on a power cut;
we pay the fsync once per group instead.

Group commit: appends made while a commit is running wait together and go in the next
transaction, so one fsync serves a whole event-loop's worth of senders.

One process owns a file: the connection takes SQLite's exclusive lock at start
(``locking_mode=EXCLUSIVE``), so a second server on the same file is refused with a
clear sentence instead of handing out the same offsets twice.

All SQLite work runs in one worker thread (the event loop never waits on the disk).
Every failure becomes :class:`StoreError` with one pt-BR sentence: at start-up (a file
that cannot be opened or written, a corrupted file, a schema from a newer version), or
for one append (a full disk: the sender gets an error frame and nothing is echoed).

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`): ``meta(key, value)`` holds the
epoch, created with the database, and the newest offset (offsets are never reused, even
when retention trimmed every row); ``messages(offset, kind, sender, recipient, text)``
the newest ``retention`` messages; ``users(name, record, skeleton, registered, used)``
the scrypt records, each name's confusable skeleton (indexed: the look-alike check is
one lookup), when it was registered (Unix seconds) and whether it logged in again since
(a name never used again expires); ``ids(sender, client_id, offset, at, fingerprint)``
the ids of the lines appended in the last :data:`~wslab.chat.rules.wire.RESEND_SECONDS` (Unix
seconds; older ones are deleted with each commit) with what each line said
(:func:`~wslab.chat.rules.messages.fingerprint`), so a line sent again is stored once;
``messages.client_id`` keeps each line's id for its echo and replays. Older files are
upgraded at start: version 1 gains the users' three columns (their names count as
used), version 2 the ids.

Data at rest: the file holds every scrypt record and every private message, so it is
created readable by its owner only (0600, whatever the umask; SQLite creates the
``-wal`` and ``-shm`` files with the database's permissions), and a server that finds
an existing file readable by its group or by others says so once, at start. A file
or folder it cannot write is refused at start with a sentence saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import sqlite3
import stat
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ..errors import ReusedId, StoreError
from ..rules.messages import Kind, Message, fingerprint
from ..rules.names import skeleton
from ..rules.wire import RESEND_SECONDS
from . import Deliver, LogState, Lost, Outage, check_retention

__all__ = ["SCHEMA_VERSION", "SqliteStore"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3

T = TypeVar("T")
Row = tuple[int, str, str, str | None, str, str | None]  # offset ... text, client_id
Line = tuple[str, str, str | None, str, str | None]  # kind, sender, recipient, text, id
Pending = tuple[Line, "asyncio.Future[int]"]  # an append waiting

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE messages (
    offset INTEGER PRIMARY KEY, kind TEXT NOT NULL, sender TEXT NOT NULL,
    recipient TEXT, text TEXT NOT NULL
);
CREATE TABLE users (name TEXT PRIMARY KEY, record TEXT NOT NULL);
"""
# Version 1 -> 2: skeletons, registration times, used flags (old names count as used).
# Version 2 -> 3: the lines' ids.
_UPGRADES = {
    1: """
ALTER TABLE users ADD COLUMN skeleton TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN registered REAL NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN used INTEGER NOT NULL DEFAULT 1;
CREATE INDEX users_skeleton ON users (skeleton);
CREATE INDEX users_unused ON users (used, registered);
""",
    2: """
ALTER TABLE messages ADD COLUMN client_id TEXT;
CREATE TABLE ids (
    sender TEXT NOT NULL, client_id TEXT NOT NULL, offset INTEGER NOT NULL, at REAL NOT NULL,
    fingerprint TEXT NOT NULL, PRIMARY KEY (sender, client_id)
) WITHOUT ROWID;
CREATE INDEX ids_at ON ids (at);
""",
}
_COLUMNS = "offset, kind, sender, recipient, text, client_id"


def _sentence(path: str, error: sqlite3.Error) -> str:
    """One pt-BR sentence for a SQLite failure, saying what to do."""
    text = str(error).lower()
    if "locked" in text or "busy" in text:
        return f"O banco '{path}' está em uso por outro processo (outro servidor?): pare-o ou use outro --db."
    if "full" in text:
        return f"Disco cheio: o banco '{path}' não pôde guardar a mensagem; libere espaço."
    if "readonly" in text or "read-only" in text:
        return f"O banco '{path}' é somente leitura: dê permissão de escrita ou use outro --db."
    if "unable to open" in text:
        return f"Não consegui abrir o banco '{path}': a pasta existe e tem permissão de escrita?"
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return f"O banco '{path}' está corrompido (ou não é um banco SQLite): restaure uma cópia ou use outro --db."
    return f"Falha no banco '{path}': {error}."


def _private_file(path: str) -> None:
    """Create ``path`` as 0600 if it is missing; warn about an existing file that its
    group or others may read; refuse, with a sentence, a file or folder it cannot write
    (SQLite would only say "disk I/O error" or "readonly database" later)."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = os.stat(path).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            logger.warning(
                "o banco '%s' pode ser lido por outros usuários desta máquina (permissões "
                "%s): ele guarda os segredos (scrypt) e as mensagens privadas; use chmod 600",
                path,
                stat.filemode(mode),
            )
        if not os.access(path, os.W_OK):
            raise StoreError(
                f"O banco '{path}' é somente leitura: dê permissão de escrita ou use outro --db."
            ) from None
    except PermissionError:
        raise StoreError(
            f"A pasta de '{path}' é somente leitura: dê permissão de escrita ou use outro --db."
        ) from None
    except OSError:
        raise StoreError(
            f"Não consegui abrir o banco '{path}': a pasta existe e tem permissão de escrita?"
        ) from None
    else:
        os.fchmod(fd, 0o600)  # whatever the umask took away or left
        os.close(fd)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.access(folder, os.W_OK):  # SQLite must create the -wal and -shm beside it
        raise StoreError(
            f"A pasta de '{path}' é somente leitura (o SQLite cria arquivos -wal e -shm "
            "ao lado do banco): dê permissão de escrita ou use outro --db."
        )


def _upgrade(db: sqlite3.Connection, version: int) -> None:
    """Schema ``version`` -> ``version + 1``, in the caller's transaction."""
    for statement in _UPGRADES[version].strip().split(";"):
        if statement.strip():
            db.execute(statement)
    if version == 1:
        names = [row[0] for row in db.execute("SELECT name FROM users")]
        db.executemany(
            "UPDATE users SET skeleton = ? WHERE name = ?", [(skeleton(n), n) for n in names]
        )
    db.execute(f"PRAGMA user_version={version + 1}")


class SqliteStore:
    """A SQLite file with the chat's log and users.

    ``store.log`` and ``store.credentials`` are the two interfaces of
    :mod:`wslab.chat.stores`; both use this one connection and worker thread.

    Args:
        path: the database file (created on first start), or ``":memory:"`` for a
            throwaway store with a new epoch each time.
        retention: how many of the newest messages are kept.
    """

    def __init__(self, path: str, retention: int = 1000) -> None:
        self.path = path
        self.retention = check_retention(retention)
        self._worker = ThreadPoolExecutor(1, "wslab-sqlite")
        self._db: sqlite3.Connection | None = None
        self._epoch = ""
        self._newest = 0  # newest offset committed
        self.log = SqliteLog(self)
        self.credentials = SqliteCredentials(self)

    # -- the worker thread -------------------------------------------------------------

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """Run ``function(db, *args)`` in the worker thread; SQLite errors become
        :class:`StoreError`."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._worker, self._call, function, args)
        except sqlite3.Error as error:
            raise StoreError(_sentence(self.path, error)) from None
        except RuntimeError as error:  # the worker was shut down: the store is closed
            raise StoreError(f"O banco '{self.path}' já foi fechado.") from error

    def _call(self, function: Callable[..., T], args: tuple[Any, ...]) -> T:
        if self._db is None:
            self._open()
        return function(self._db, *args)

    def _open(self) -> None:
        if self.path != ":memory:":
            _private_file(self.path)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")  # takes the exclusive lock now, or fails
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                db.execute("ROLLBACK")
                raise StoreError(
                    f"O banco '{self.path}' tem o esquema versão {version}, mais novo que "
                    f"o desta versão do wslab ({SCHEMA_VERSION}): atualize o wslab ou use "
                    "outro --db."
                )
            if version == 0:
                for statement in _SCHEMA.strip().split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.executemany(
                    "INSERT INTO meta VALUES (?, ?)",
                    [("epoch", secrets.token_hex(16)), ("newest", "0")],
                )
                db.execute("PRAGMA user_version=1")
                version = 1
            for step in range(version, SCHEMA_VERSION):
                _upgrade(db, step)
            meta = dict(db.execute("SELECT key, value FROM meta"))
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        self._db = db
        self._epoch, self._newest = meta["epoch"], int(meta["newest"])

    def state(self, newest: int) -> LogState:
        return LogState(self._epoch, newest, newest - min(newest, self.retention) + 1)

    async def close(self) -> None:
        def close(db: sqlite3.Connection) -> None:
            db.close()

        if self._db is not None:
            with contextlib.suppress(StoreError):
                await self.run(close)
            self._db = None
        self._worker.shutdown(wait=False)


class SqliteLog:
    """The message log of a :class:`SqliteStore` (see the module docstring)."""

    ordered = True  # one writer thread commits appends in call order

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self._deliver: Deliver | None = None
        self._delivered = 0  # newest offset handed to deliver
        self._pending: list[Pending] = []
        self._flusher: asyncio.Task[None] | None = None

    @property
    def retention(self) -> int:
        return self._store.retention

    @property
    def state(self) -> LogState:
        return self._store.state(self._delivered)

    async def start(
        self, deliver: Deliver, lost: Lost | None = None, outage: Outage | None = None
    ) -> LogState:
        """``lost`` and ``outage`` are never called: the file is this process's own; it
        cannot be emptied or replaced under a running server, and a failing disk fails
        each append."""
        await self._store.run(lambda db: None)  # opens the file, or raises StoreError
        self._deliver = deliver
        self._delivered = self._store._newest
        return self.state

    async def append(
        self, kind: Kind, sender: str, to: str | None, text: str, client_id: str | None = None
    ) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append(((str(kind), sender, to, text, client_id), future))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Commit what is pending, one transaction per group, in order; then hand the
        group to ``deliver`` and resolve its appends."""
        try:
            while self._pending:
                group, self._pending = self._pending, []
                lines = [line for line, _ in group]
                try:
                    offsets = await self._store.run(self._commit, lines, self._store.retention)
                except StoreError as error:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(error)
                    continue
                messages: list[Message] = []
                for offset, (kind, sender, to, text, client_id) in zip(offsets, lines, strict=True):
                    if offset > self._delivered:  # a line sent again has its first's
                        messages.append(Message(Kind(kind), offset, sender, to, text, client_id))
                        self._delivered = offset
                if messages and self._deliver is not None:
                    self._deliver(messages)
                for offset, (_, future) in zip(offsets, group, strict=True):
                    if future.done():
                        continue
                    if offset == 0:
                        future.set_exception(ReusedId())
                    else:
                        future.set_result(offset)
        finally:
            self._flusher = None

    def _commit(self, db: sqlite3.Connection, lines: list[Line], retention: int) -> list[int]:
        """Store ``lines`` in one transaction, except those sent again (an id already
        used); returns each line's offset: the first copy's for those, 0 for a line
        whose id was used for another line (not stored)."""
        store = self._store
        now = time.time()
        newest = store._newest
        offsets: list[int] = []
        rows: list[Row] = []
        ids: dict[tuple[str, str], tuple[int, str]] = {}  # this group's
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM ids WHERE at < ?", (now - RESEND_SECONDS,))
            for kind, sender, to, text, client_id in lines:
                said = fingerprint(kind, to, text)
                if client_id is not None:
                    first = (
                        ids.get((sender, client_id))
                        or db.execute(
                            "SELECT offset, fingerprint FROM ids WHERE sender = ? AND client_id = ?",
                            (sender, client_id),
                        ).fetchone()
                    )
                    if first is not None:
                        offsets.append(first[0] if first[1] == said else 0)
                        continue
                newest += 1
                offsets.append(newest)
                rows.append((newest, kind, sender, to, text, client_id))
                if client_id is not None:
                    ids[(sender, client_id)] = (newest, said)
            db.executemany(f"INSERT INTO messages ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)", rows)
            db.executemany(
                "INSERT INTO ids VALUES (?, ?, ?, ?, ?)",
                [(who, line, first, now, said) for (who, line), (first, said) in ids.items()],
            )
            db.execute("UPDATE meta SET value = ? WHERE key = 'newest'", (str(newest),))
            db.execute("DELETE FROM messages WHERE offset <= ?", (newest - retention,))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        store._newest = newest
        return offsets

    async def read_after(
        self, offset: int, limit: int | None = None
    ) -> tuple[LogState, list[Message]]:
        def read(db: sqlite3.Connection) -> tuple[int, list[Row]]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE offset > ? ORDER BY offset LIMIT ?",
                (offset, -1 if limit is None else limit),
            ).fetchall()
            return self._store._newest, rows

        newest, rows = await self._store.run(read)
        return self._store.state(newest), [_message(row) for row in rows]

    async def recent(self, user: str, count: int) -> tuple[LogState, list[Message]]:
        def read(db: sqlite3.Connection) -> tuple[int, list[Row]]:
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM messages WHERE kind = 'public' OR sender = ? "
                "OR recipient = ? ORDER BY offset DESC LIMIT ?",
                (user, user, count),
            ).fetchall()
            return self._store._newest, rows

        newest, rows = await self._store.run(read)
        return self._store.state(newest), [_message(row) for row in reversed(rows)]

    async def check(self) -> None:
        """Take and release the write lock (``BEGIN IMMEDIATE``): a read-only or locked
        file fails here, as an append would."""

        def lock(db: sqlite3.Connection) -> None:
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")

        await self._store.run(lock)

    async def close(self) -> None:
        if self._flusher is not None:
            await asyncio.wait([self._flusher], timeout=5.0)
        await self._store.close()


class SqliteCredentials:
    """The users of a :class:`SqliteStore`."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def lookup(self, user: str) -> str | None:
        def read(db: sqlite3.Connection) -> str | None:
            row = db.execute("SELECT record FROM users WHERE name = ?", (user,)).fetchone()
            record: str | None = row[0] if row else None
            return record

        return await self._store.run(read)

    async def similar(self, skeleton: str) -> str | None:
        def read(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT name FROM users WHERE skeleton = ? LIMIT 1", (skeleton,)
            ).fetchone()
            return row[0] if row else None

        return await self._store.run(read)

    async def register(self, user: str, skeleton: str, record: str) -> str | None:
        def write(db: sqlite3.Connection) -> str | None:
            # One statement (the worker thread runs one call at a time): the name and
            # the skeleton are checked and taken together.
            cursor = db.execute(
                "INSERT OR IGNORE INTO users (name, record, skeleton, registered, used) "
                "SELECT ?, ?, ?, ?, 0 WHERE NOT EXISTS "
                "(SELECT 1 FROM users WHERE skeleton = ?)",
                (user, record, skeleton, time.time(), skeleton),
            )
            if cursor.rowcount == 1:
                return None
            taken = db.execute("SELECT 1 FROM users WHERE name = ?", (user,)).fetchone()
            if taken:
                return user
            row = db.execute("SELECT name FROM users WHERE skeleton = ?", (skeleton,)).fetchone()
            return row[0] if row else user

        return await self._store.run(write)

    async def used(self, user: str) -> None:
        await self._store.run(
            lambda db: db.execute("UPDATE users SET used = 1 WHERE name = ? AND used = 0", (user,))
        )

    async def expire(self, age: float) -> int:
        def delete(db: sqlite3.Connection) -> int:
            before = time.time() - age
            return db.execute(
                "DELETE FROM users WHERE used = 0 AND registered < ?", (before,)
            ).rowcount

        return await self._store.run(delete)

    async def count(self) -> int:
        def read(db: sqlite3.Connection) -> int:
            count: int = db.execute("SELECT COUNT(*) FROM users").fetchone()[0]
            return count

        return await self._store.run(read)

    async def close(self) -> None:
        await self._store.close()


def _message(row: Row) -> Message:
    offset, kind, sender, recipient, text, client_id = row
    return Message(Kind(kind), offset, sender, recipient, text, client_id)
