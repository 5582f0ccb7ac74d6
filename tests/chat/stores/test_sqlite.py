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
        assert await store.credentials.register("ana", "scrypt$record")
        epoch = store.log.state.epoch
        await store.log.close()
        return offsets, [m.offset for m in got], epoch

    offsets, delivered, epoch = run(first())
    assert offsets == [1, 2, 3] and delivered == [1, 2, 3, 4]

    async def second():
        store, _ = await _opened(path)
        state, messages = await store.log.read_after(0)
        record = await store.credentials.lookup("ana")
        taken = await store.credentials.register("ana", "other")
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
