"""The durable half of the queue and the history: one SQLite file under the user directory.

A server killed with SIGKILL (an OOM kill, a power button, ``docker kill``) used to come back
with an empty queue, no history and prompt numbers starting again at 1. The in-memory
structures (:class:`server.queue.MemoryPromptQueue`, :class:`server.history.History`) stay the
fast path; this store is written through when a prompt is queued, starts, finishes or is
deleted, never per step, and read back once at start-up.

Why these SQLite settings:

* WAL with ``synchronous=NORMAL``: a commit is an append to the WAL file, with no fsync. A
  committed transaction survives the process dying (the bytes are in the OS's page cache);
  only a power cut can lose the last commits, which is an acceptable trade for a queue.
* ``locking_mode=EXCLUSIVE``: the file belongs to one server while it runs (the lock goes with
  the process, SIGKILL included). A second server started on the same user directory (two
  GPUs, two ports) finds it locked and keeps its own queue in memory, with a warning, instead
  of both running, failing or re-queueing each other's prompts.
* One connection shared by the server's threads, behind a lock: every statement is short.

A file SQLite cannot read is moved aside (``.broken-<time>``) and a new one started: a
server that does not start because of its queue file would be worse than an empty queue.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ServerConfig
    from .history import History
    from .queue import MemoryPromptQueue

log = logging.getLogger(__name__)

#: the file's name in the user directory
FILE_NAME = "weft-state.sqlite3"
#: ``PRAGMA user_version`` of the schema below; a file from a newer Weft is left alone
SCHEMA_VERSION = 1
#: how long to wait for a server that is still letting go of the file (a restart)
LOCK_WAIT_S = 2.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id TEXT NOT NULL UNIQUE,
    number REAL NOT NULL,
    running INTEGER NOT NULL DEFAULT 0,
    started INTEGER,
    size INTEGER NOT NULL,
    item TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS history (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    prompt_id TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    entry TEXT NOT NULL
);
"""


class StoreUnavailable(RuntimeError):
    """The file is held by another server, or was written by a newer Weft."""


class StoreError(RuntimeError):
    """A write the caller must not pretend succeeded (a prompt queued but not saved)."""


class StateStore:
    """The SQLite file: statements only, no policy (the queue and the history decide)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._closed = False
        self._db = sqlite3.connect(path, timeout=LOCK_WAIT_S, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA locking_mode=EXCLUSIVE")  # before WAL: no shared-memory index
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(f"{path} was written by a newer Weft (schema {version})")
            with self._transaction():  # a write: takes the exclusive lock now, held until close
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        except sqlite3.OperationalError as exc:
            self._db.close()
            if "locked" in str(exc):
                raise StoreUnavailable(f"{path} is used by another Weft server") from None
            raise
        except BaseException:
            self._db.close()
            raise

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _write(self, steps: list[tuple[str, Any]], *, strict: bool = False) -> None:
        """Run ``(sql, args)`` steps in one transaction (a list of args runs the statement for
        each). Nothing once closed (a worker finishing after its server stopped). A failed write
        (disk full, I/O error) is logged and the server goes on in memory, or, ``strict``,
        raises :class:`StoreError` for the caller to refuse what it was asked."""
        with self._lock:
            if self._closed:
                return
            try:
                with self._transaction() as db:
                    for sql, args in steps:
                        if isinstance(args, list):
                            db.executemany(sql, args)
                        else:
                            db.execute(sql, args)
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                if strict:
                    raise StoreError(f"could not save to {self.path}: {exc}") from exc
                log.error("could not save to %s (%s): the change is kept in memory only", self.path, exc)

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        with self._lock:
            return [] if self._closed else self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._db.close()

    # -- meta: the prompt-number counters --------------------------------------------------
    def counters(self) -> tuple[int, int]:
        """The last queue number handed out and the last ``front`` number (0, 0 when new)."""
        values = dict(self._read("SELECT key, value FROM meta WHERE key IN ('counter', 'front')"))
        return int(values.get("counter") or 0), int(values.get("front") or 0)

    # -- queue -----------------------------------------------------------------------------
    def queue_rows(self) -> list[tuple[str, bool, int | None, str]]:
        """``(prompt_id, running, started_ms, item_json)`` in queue order."""
        rows = self._read("SELECT prompt_id, running, started, item FROM queue ORDER BY number, seq")
        return [(pid, bool(running), started, item) for pid, running, started, item in rows]

    def queue_add(self, prompt_id: str, number: float, size: int, item: str, counter: int, front: int) -> None:
        """Store a queued prompt and the counters that numbered it; :class:`StoreError` if it fails."""
        self._write(
            [
                (
                    "INSERT OR REPLACE INTO queue (prompt_id, number, size, item) VALUES (?, ?, ?, ?)",
                    (prompt_id, number, size, item),
                ),
                ("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [("counter", counter), ("front", front)]),
            ],
            strict=True,
        )

    def queue_started(self, prompt_id: str, started_ms: int) -> None:
        self._write([("UPDATE queue SET running = 1, started = ? WHERE prompt_id = ?", (started_ms, prompt_id))])

    def queue_requeue(self, prompt_id: str) -> None:
        self._write([("UPDATE queue SET running = 0, started = NULL WHERE prompt_id = ?", (prompt_id,))])

    def queue_delete(self, prompt_ids: Iterable[str]) -> None:
        self._write([("DELETE FROM queue WHERE prompt_id = ?", [(p,) for p in prompt_ids])])

    # -- history ---------------------------------------------------------------------------
    def history_rows(self) -> list[tuple[str, int, str]]:
        """``(prompt_id, size, entry_json)``, oldest first."""
        return self._read("SELECT prompt_id, size, entry FROM history ORDER BY seq")

    def history_add(self, prompt_id: str, size: int, entry: str, pruned: Iterable[str] = ()) -> None:
        """Store an entry as the newest (a replaced one moves to the end) and drop ``pruned``."""
        self._write(
            [
                ("DELETE FROM history WHERE prompt_id = ?", (prompt_id,)),
                ("INSERT INTO history (prompt_id, size, entry) VALUES (?, ?, ?)", (prompt_id, size, entry)),
                ("DELETE FROM history WHERE prompt_id = ?", [(p,) for p in pruned]),
            ]
        )

    def history_delete(self, prompt_ids: Iterable[str]) -> None:
        self._write([("DELETE FROM history WHERE prompt_id = ?", [(p,) for p in prompt_ids])])

    def history_clear(self) -> None:
        self._write([("DELETE FROM history", ())])


def open_store(path: Path) -> StateStore | None:
    """The store at ``path``; ``None`` (with a warning) when another server holds it or it is
    from a newer Weft. An unreadable file is moved aside and a new one made."""
    try:
        try:
            return StateStore(path)
        except sqlite3.OperationalError:
            raise
        except sqlite3.DatabaseError as exc:  # not a database, or a damaged one
            aside = _move_aside(path)
            log.error(
                "the queue and history file %s could not be read (%s); it was moved to %s and a new one started",
                path,
                exc,
                aside,
            )
            return StateStore(path)
    except (StoreUnavailable, sqlite3.Error, OSError) as exc:
        log.warning(
            "%s: this server keeps its queue and history in memory only (lost when it stops). "
            "Start each server with its own --user-directory to keep both.",
            exc,
        )
        return None


def _move_aside(path: Path) -> Path:
    aside = path.with_name(f"{path.name}.broken-{int(time.time())}")
    for suffix in ("", "-wal", "-shm"):
        src = Path(str(path) + suffix)
        if src.exists():
            src.replace(Path(str(aside) + suffix))
    return aside


def stopped_entry(item_comfy: list[Any], started_ms: int | None) -> dict[str, Any]:
    """The history entry of a prompt that was running when the server stopped without finishing
    it (killed): failed, saying so, in the shape a node failure has (clients show it as one)."""
    now = int(time.time() * 1000)
    message = (
        "the server stopped while this prompt ran (it was killed or crashed before the prompt finished); "
        "queue it again to run it"
    )
    messages: list[list[Any]] = []
    if started_ms is not None:
        messages.append(["execution_start", {"prompt_id": item_comfy[1], "timestamp": started_ms}])
    messages.append(
        [
            "execution_error",
            {
                "prompt_id": item_comfy[1],
                "node_id": None,
                "node_type": None,
                "executed": [],
                "exception_message": message,
                "exception_type": "ServerStopped",
                "traceback": [],
                "current_inputs": {},
                "current_outputs": {},
                "timestamp": now,
            },
        ]
    )
    return {
        "prompt": item_comfy,
        "outputs": {},
        "status": {"status_str": "error", "completed": False, "messages": messages},
        "meta": {},
    }


def open_state(config: ServerConfig, user_dir: Path | None) -> tuple[MemoryPromptQueue, History, StateStore | None]:
    """The server's queue and history: durable under ``user_dir`` unless ``--memory-only-queue``
    (or no user directory: ``main.py run``), with what a previous run left restored: pending
    prompts in order, the running one failed or re-queued (``--on-restart-running``)."""
    store = open_store(user_dir / FILE_NAME) if config.durable_queue and user_dir is not None else None
    try:
        return (*_restored(config, store), store)
    except sqlite3.DatabaseError as exc:  # damaged past what opening it showed
        assert store is not None
        store.close()
        aside = _move_aside(store.path)
        log.error(
            "the queue and history file %s could not be read (%s); it was moved to %s and a new one started",
            store.path,
            exc,
            aside,
        )
        store = open_store(store.path)
        return (*_restored(config, store), store)


def _restored(config: ServerConfig, store: StateStore | None) -> tuple[MemoryPromptQueue, History]:
    from .history import History
    from .queue import DurablePromptQueue, MemoryPromptQueue

    history = History(config.history_max_items, config.history_max_bytes, store=store)
    if store is None:
        return MemoryPromptQueue(config.queue_max_items, config.queue_max_bytes), history
    queue = DurablePromptQueue(store, config.queue_max_items, config.queue_max_bytes)
    interrupted = queue.restore(requeue_running=config.on_restart_running == "requeue")
    for item, started in interrupted:
        if item.prompt_id not in history:  # else it finished and only its queue row was left
            history.add(item.prompt_id, stopped_entry(item.as_comfy(), started))
            log.warning(
                "prompt %s (number %s) was running when the server stopped; marked failed "
                "(--on-restart-running requeue runs it again instead)",
                item.prompt_id,
                item.number,
            )
        store.queue_delete([item.prompt_id])
    pending = len(queue.pending())
    if pending or len(history):
        log.info(
            "restored %d queued prompt(s) and %d history entr%s from %s",
            pending,
            len(history),
            "y" if len(history) == 1 else "ies",
            store.path,
        )
    return queue, history
