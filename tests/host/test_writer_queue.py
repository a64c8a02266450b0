"""SQLite writers take turns on an OS file lock before BEGIN IMMEDIATE (host_stub/db.py)."""

import threading

import sqlalchemy as sa

from host_stub.db import Database, WriterQueue, make_engine

WAIT = 5.0  # seconds: a bound for every wait below, never a timing assertion


def test_file_sqlite_database_queues_its_writers(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'hd.db'}")
    try:
        queue = Database(engine)._writers
        assert queue is not None and queue.path == str(tmp_path / "hd.db") + "-writers"
    finally:
        engine.dispose()


def test_in_memory_sqlite_and_postgres_have_no_writer_queue():
    assert WriterQueue.for_engine(make_engine("sqlite://")) is None
    assert WriterQueue.for_engine(sa.create_engine("postgresql+psycopg://u@127.0.0.1/db")) is None


def test_second_writer_waits_for_the_first_to_finish(tmp_path):
    queue = WriterQueue(str(tmp_path / "hd.db-writers"))
    inside, release, second_in = threading.Event(), threading.Event(), threading.Event()

    def first():
        with queue.turn():
            inside.set()
            release.wait(WAIT)

    def second():
        with queue.turn():
            second_in.set()

    a = threading.Thread(target=first)
    a.start()
    assert inside.wait(WAIT)
    b = threading.Thread(target=second)
    b.start()
    assert not second_in.wait(0.3)  # the first writer still holds its turn
    release.set()
    assert second_in.wait(WAIT)
    a.join(WAIT)
    b.join(WAIT)


def test_nested_turn_in_one_thread_does_not_release_the_outer_turn(tmp_path):
    queue = WriterQueue(str(tmp_path / "hd.db-writers"))
    other_in = threading.Event()

    def other():
        with queue.turn():
            other_in.set()

    with queue.turn():
        with queue.turn():
            pass
        t = threading.Thread(target=other)
        t.start()
        assert not other_in.wait(0.3)  # still ours after the inner turn ended
    assert other_in.wait(WAIT)
    t.join(WAIT)


def test_lock_file_that_cannot_be_opened_leaves_writers_to_sqlite_busy_timeout(tmp_path, caplog):
    queue = WriterQueue(str(tmp_path / "missing-dir" / "hd.db-writers"))
    entered = False
    with queue.turn():
        entered = True
    assert entered
    assert "SQLite writers are not queued" in caplog.text


def test_concurrent_writes_through_the_queue_all_commit(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'hd.db'}")
    meta = sa.MetaData()
    rows = sa.Table("rows", meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("n", sa.Integer))
    meta.create_all(engine)
    db = Database(engine)

    def writer(k):
        for i in range(25):
            with db.write() as tx:
                tx.conn.execute(rows.insert().values(n=k * 100 + i))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(rows)).scalar() == 100
    engine.dispose()


def test_every_database_on_one_file_shares_one_queue(tmp_path):
    url = f"sqlite:///{tmp_path / 'hd.db'}"
    first, second = make_engine(url), make_engine(url)
    try:
        assert Database(first)._writers is Database(second)._writers
    finally:
        first.dispose()
        second.dispose()


def test_a_child_forked_during_a_turn_does_not_keep_the_file_locked(tmp_path):
    import fcntl
    import os
    import signal

    engine = make_engine(f"sqlite:///{tmp_path / 'hd.db'}")
    queue = WriterQueue.for_engine(engine)
    ready_r, ready_w = os.pipe()
    with queue.turn():
        child = os.fork()
        if child == 0:  # a process forked mid-turn that outlives the turn (e.g. a worker)
            os.write(ready_w, b"1")  # fork has returned here: the child's fork hooks have run
            signal.pause()
            os._exit(0)
    import select

    assert select.select([ready_r], [], [], WAIT)[0], "the child did not start"
    os.close(ready_r)
    os.close(ready_w)
    try:
        fd = os.open(queue.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the next writer gets in at once
        finally:
            os.close(fd)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        engine.dispose()


def test_writers_waiting_for_their_turn_hold_no_pool_connection(tmp_path):
    # Two pool connections: one writer inside, one waiting for its turn; a reader must still get one.
    engine = make_engine(f"sqlite:///{tmp_path / 'hd.db'}", pool_size=2, max_overflow=0, pool_timeout=1)
    db = Database(engine)
    inside, release, waiting_done = threading.Event(), threading.Event(), threading.Event()

    def first():
        with db.write():
            inside.set()
            release.wait(WAIT)

    def second():
        with db.write():
            pass
        waiting_done.set()

    a, b = threading.Thread(target=first), threading.Thread(target=second)
    try:
        a.start()
        assert inside.wait(WAIT)
        b.start()
        b.join(0.3)  # let the second writer reach its turn and wait there
        assert not waiting_done.is_set()
        with db.read() as conn:  # before the change, the waiting writer held the second connection
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
    finally:
        release.set()
        a.join(WAIT)
        b.join(WAIT)
        engine.dispose()
    assert waiting_done.is_set()
