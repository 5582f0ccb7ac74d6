"""The SQLite store (wslab.chat.stores.sqlite): what survives a restart, and each way
the database can fail, with its one sentence."""

import asyncio
import sqlite3

import pytest
from chatclient import run

from wslab.chat.errors import StoreError
from wslab.chat.rules.messages import Kind
from wslab.chat.stores.sqlite import SCHEMA_VERSION, SqliteStore

PUBLIC, PRIVATE = Kind.PUBLIC, Kind.PRIVATE


async def _opened(path, retention=1000, **options):
    store = SqliteStore(str(path), retention, **options)
    got = []
    await store.log.start(got.extend)
    return store, got


def test_messages_users_and_epoch_survive_a_reopen(tmp_path):
    path = tmp_path / "chat.db"

    async def first():
        store, got = await _opened(path)
        offsets = [await store.log.append(PUBLIC, "ana", None, f"m{i}") for i in range(1, 4)]
        await store.log.append(PRIVATE, "ana", "joao", "psiu")
        assert await store.credentials.register("ana", "ana", "scrypt$record") is None
        epoch = store.log.state.epoch
        await store.log.close()
        return offsets, [m.offset for m in got], epoch

    offsets, delivered, epoch = run(first())
    assert offsets == [1, 2, 3] and delivered == [1, 2, 3, 4]

    async def second():
        store, _ = await _opened(path)
        state, messages = await store.log.read_after(0)
        record = await store.credentials.lookup("ana")
        taken = await store.credentials.register("ana", "ana", "other") is None
        offset = await store.log.append(PUBLIC, "bia", None, "depois")
        await store.log.close()
        return state, messages, record, taken, offset

    state, messages, record, taken, offset = run(second())
    assert state.epoch == epoch and state.newest == 4
    assert [(m.offset, m.text) for m in messages] == [(1, "m1"), (2, "m2"), (3, "m3"), (4, "psiu")]
    assert messages[3].kind is PRIVATE and messages[3].to == "joao"
    assert record == "scrypt$record" and taken is False
    assert offset == 5  # offsets go on, never reused


def test_retention_trims_the_oldest_and_offsets_are_never_reused(tmp_path):
    async def go():
        store, _ = await _opened(tmp_path / "c.db", retention=3)
        for i in range(10):
            await store.log.append(PUBLIC, "ana", None, f"m{i}")
        state, kept = await store.log.read_after(0)
        await store.log.close()
        store, _ = await _opened(tmp_path / "c.db", retention=0)
        offset = await store.log.append(PUBLIC, "ana", None, "x")
        after = store.log.state
        await store.log.close()
        return state, kept, offset, after

    state, kept, offset, after = run(go())
    assert (state.newest, state.oldest) == (10, 8)
    assert [m.offset for m in kept] == [8, 9, 10]
    assert offset == 11 and (after.newest, after.oldest) == (11, 12)


def test_recent_returns_what_the_user_may_see(tmp_path):
    async def go():
        store, _ = await _opened(tmp_path / "c.db")
        await store.log.append(PUBLIC, "ana", None, "p1")
        await store.log.append(PRIVATE, "ana", "joao", "a->j")
        await store.log.append(PRIVATE, "bia", "caio", "b->c")
        await store.log.append(PUBLIC, "bia", None, "p2")
        joao = await store.log.recent("joao", 10)
        bia = await store.log.recent("bia", 2)
        await store.log.close()
        return joao, bia

    (_, joao), (_, bia) = run(go())
    assert [m.text for m in joao] == ["p1", "a->j", "p2"]
    assert [m.text for m in bia] == ["b->c", "p2"]


def test_appends_of_one_turn_share_one_commit_and_keep_their_order(tmp_path):
    async def go():
        store, got = await _opened(tmp_path / "c.db")
        commits = []
        original = store.log._commit

        def counting(db, rows, retention):
            commits.append(len(rows))
            return original(db, rows, retention)

        store.log._commit = counting
        offsets = await asyncio.gather(
            *(store.log.append(PUBLIC, f"u{i}", None, f"t{i}") for i in range(50))
        )
        await store.log.close()
        return offsets, got, commits

    offsets, got, commits = run(go())
    assert offsets == list(range(1, 51))
    assert [m.text for m in got] == [f"t{i}" for i in range(50)]
    assert sum(commits) == 50 and len(commits) < 50


def test_memory_gets_a_new_epoch_each_time():
    async def epoch():
        store, _ = await _opened(":memory:")
        value = store.log.state.epoch
        await store.log.close()
        return value

    assert run(epoch()) != run(epoch())


def test_a_second_process_on_the_same_file_is_refused_with_a_sentence(tmp_path):
    path = tmp_path / "c.db"

    async def go():
        store, _ = await _opened(path)
        try:
            with pytest.raises(StoreError, match="em uso por outro processo"):
                await _opened(path)
        finally:
            await store.log.close()

    run(go())


def test_a_schema_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "c.db"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match=f"versão {SCHEMA_VERSION + 1}, mais novo"):
        run(_opened(path))


def test_a_corrupted_file_is_refused(tmp_path):
    path = tmp_path / "c.db"
    path.write_bytes(b"isto nao e um banco sqlite" * 100)
    with pytest.raises(StoreError, match="corrompido"):
        run(_opened(path))


def test_a_folder_that_does_not_exist_is_refused(tmp_path):
    with pytest.raises(StoreError, match="Não consegui abrir o banco"):
        run(_opened(tmp_path / "nao-existe" / "c.db"))


def test_a_full_disk_fails_the_append_and_stores_nothing(tmp_path):
    """SQLite's max_page_count makes the file full: the same error a full disk gives."""

    async def go():
        store, got = await _opened(tmp_path / "c.db")
        await store.log.append(PUBLIC, "ana", None, "cabe")

        def cap(db):
            pages = db.execute("PRAGMA page_count").fetchone()[0]
            db.execute(f"PRAGMA max_page_count={pages}")

        await store.run(cap)
        with pytest.raises(StoreError, match="Disco cheio"):
            await store.log.append(PUBLIC, "ana", None, "x" * 100_000)
        state, kept = await store.log.read_after(0)
        await store.log.close()
        return got, state, kept

    got, state, kept = run(go())
    assert [m.text for m in got] == ["cabe"] and state.newest == 1
    assert [m.text for m in kept] == ["cabe"]


# -- data at rest (issue 24) ---------------------------------------------------------------


def test_the_database_wal_and_shm_are_private_whatever_the_umask(tmp_path):
    import os
    import stat

    path = tmp_path / "chat.db"
    old = os.umask(0o022)
    try:

        async def go():
            store, _ = await _opened(path)
            await store.log.append(PUBLIC, "ana", None, "oi")
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
            await store.log.close()
            return modes

        modes = run(go())
    finally:
        os.umask(old)
    # An -shm file appears only without locking_mode=EXCLUSIVE; any there is 0600 too.
    assert {"chat.db", "chat.db-wal"} <= set(modes) and set(modes.values()) == {0o600}


def test_an_existing_file_readable_by_others_is_warned_about_once(tmp_path, caplog):
    path = tmp_path / "chat.db"
    path.touch(mode=0o644)
    path.chmod(0o644)
    with caplog.at_level("WARNING", logger="wslab.chat.stores.sqlite"):

        async def go():
            store, _ = await _opened(path)
            await store.log.append(PUBLIC, "ana", None, "oi")
            await store.credentials.count()
            await store.log.close()

        run(go())
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "-rw-r--r--" in warnings[0] and "chmod 600" in warnings[0]


def test_a_read_only_database_says_it_is_read_only(tmp_path):
    """Issue 24: it said "disk I/O error". Through the command line a user runs; as
    root (who writes anything) the file is made immutable instead."""
    import os
    import shutil
    import subprocess
    import sys

    path = tmp_path / "chat.db"
    run(_opened(path))  # a real database, then read-only
    immutable = os.geteuid() == 0
    if immutable and (
        not shutil.which("chattr") or subprocess.run(["chattr", "+i", path]).returncode
    ):
        pytest.skip("root, and no chattr +i here to make the file read-only")
    if not immutable:
        path.chmod(0o444)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "wslab.chat", "serve", "--port", "0", "--db", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", path])
    assert done.returncode == 1
    assert "é somente leitura" in done.stderr and "Traceback" not in done.stderr


def test_a_version_1_file_gains_skeletons_and_keeps_its_users(tmp_path):
    path = tmp_path / "v1.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE messages (offset INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
        "sender TEXT NOT NULL, recipient TEXT, text TEXT NOT NULL);"
        "CREATE TABLE users (name TEXT PRIMARY KEY, record TEXT NOT NULL);"
        "INSERT INTO meta VALUES ('epoch', 'e1'), ('newest', '0');"
        "INSERT INTO users VALUES ('alice', 'r-alice');"
        "PRAGMA user_version=1;"
    )
    db.close()

    async def go():
        store, _ = await _opened(path)
        users = store.credentials
        found = (await users.lookup("alice"), await users.similar("alice"))
        refused = await users.register("a1ice", "alice", "r2")
        expired = await users.expire(0)  # an old name counts as used: it never expires
        await store.log.close()
        return found, refused, expired

    assert run(go()) == (("r-alice", "alice"), "alice", 0)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_version_2_file_keeps_its_messages_and_learns_ids(tmp_path):
    path = tmp_path / "v2.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE messages (offset INTEGER PRIMARY KEY, kind TEXT NOT NULL, "
        "sender TEXT NOT NULL, recipient TEXT, text TEXT NOT NULL);"
        "CREATE TABLE users (name TEXT PRIMARY KEY, record TEXT NOT NULL, skeleton TEXT "
        "NOT NULL DEFAULT '', registered REAL NOT NULL DEFAULT 0, used INTEGER NOT NULL "
        "DEFAULT 1);"
        "INSERT INTO meta VALUES ('epoch', 'e2'), ('newest', '1');"
        "INSERT INTO messages VALUES (1, 'public', 'ana', NULL, 'antes');"
        "PRAGMA user_version=2;"
    )
    db.close()

    async def go():
        store, got = await _opened(path)
        offsets = [await store.log.append(PUBLIC, "ana", None, "oi", "k1") for _ in range(2)]
        _, kept = await store.log.read_after(0)
        await store.log.close()
        return offsets, [(m.text, m.client_id) for m in kept], len(got)

    assert run(go()) == ([2, 2], [("antes", None), ("oi", "k1")], 1)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_an_id_is_forgotten_after_the_resend_window(tmp_path, monkeypatch):
    """Past RESEND_SECONDS the id is deleted (the table holds only the window's ids),
    and the same id names a new line."""
    import wslab.chat.stores.sqlite as sqlite_module
    from wslab.chat.rules.wire import RESEND_SECONDS

    now = [1_000_000.0]
    monkeypatch.setattr(sqlite_module.time, "time", lambda: now[0])

    async def go():
        store, _ = await _opened(tmp_path / "chat.db")
        first = await store.log.append(PUBLIC, "ana", None, "oi", "k1")
        now[0] += RESEND_SECONDS - 1
        within = await store.log.append(PUBLIC, "ana", None, "oi", "k1")
        now[0] += 2
        after = await store.log.append(PUBLIC, "ana", None, "oi", "k1")
        held = await store.run(lambda db: db.execute("SELECT COUNT(*) FROM ids").fetchone()[0])
        await store.log.close()
        return first, within, after, held

    assert run(go()) == (1, 1, 2, 1)
