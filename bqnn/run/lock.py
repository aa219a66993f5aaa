"""One writer per output directory: a lease file, DIR/search.lock, taken before anything is written.

Used by `python -m bqnn.search` on rank 0 (or its one process):

    with OutputLock(Path(out)) as lock:      # LockError (one line naming the holder) if a live search holds it
        ...                                   # a heartbeat thread renews the lease while the search runs

The lock is a file created with O_CREAT | O_EXCL, atomic on local disks, NFS v3+ and Lustre, holding JSON:
host, pid, the process's start time (so a reused pid is not taken for the holder), SLURM job id, when it was
taken and when last renewed. `flock`-based locks are not used: on cluster filesystems they are node-local or
unavailable. A lock is stale, and is broken, when its holder is provably gone:
- on this host, its pid is not running, or runs another process (a SIGKILLed search, then the same command);
- it carries this job's SLURM_JOB_ID (a requeued job resumes, possibly on another node);
- it was not renewed for `stale_after` seconds (its host died; the holder renews every `renew_every`).
Breaking takes a second short-lived lock (search.lock.break), so two searches never both break and take it.
No torch, no MPI.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

LOCKNAME = "search.lock"
RENEW_EVERY = 30.0  # seconds between renewals of a held lock
STALE_AFTER = 600.0  # a lock not renewed for this long belongs to a dead host
WRITING_GRACE = 10.0  # an empty or unreadable lock younger than this is being written


class LockError(Exception):
    """The directory is in use by another live search, or the lock cannot be taken; the message says which."""


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (Linux); empty where there is none."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _start_token(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), '' where unknown: tells a reused pid apart."""
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""  # field 22 of stat


def _alive(pid: int, token: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    fields = _stat(pid)
    if fields and fields[0] in ("Z", "X"):  # killed, not yet reaped by its parent (an MPI proxy, say)
        return False
    return not token or not fields or _start_token(pid) == token


def me() -> dict[str, Any]:
    now = time.time()
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_token(os.getpid()),
            "slurm_job": os.environ.get("SLURM_JOB_ID", ""), "taken": now, "renewed": now}


def describe(holder: dict[str, Any]) -> str:
    job = f", SLURM job {holder['slurm_job']}" if holder.get("slurm_job") else ""
    age = time.time() - float(holder.get("renewed", 0))
    return f"host {holder.get('host')} pid {holder.get('pid')}{job}, renewed {age:.0f} s ago"


def stale_reason(holder: dict[str, Any], stale_after: float = STALE_AFTER) -> str | None:
    """Why the lock of `holder` may be broken, or None if its holder may be alive."""
    mine = me()
    if holder.get("host") == mine["host"] and not _alive(int(holder.get("pid", -1)), str(holder.get("start", ""))):
        return "its process is gone"
    if mine["slurm_job"] and holder.get("slurm_job") == mine["slurm_job"]:
        return "it belongs to an earlier run of this SLURM job (requeued)"
    if time.time() - float(holder.get("renewed", 0)) > stale_after:
        return f"it was not renewed for {stale_after:.0f} s"
    return None


def _read(path: Path) -> dict[str, Any] | None:
    """The holder recorded in `path`; None while it is being written (empty or partial)."""
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


class OutputLock:
    def __init__(self, directory: Path, stale_after: float = STALE_AFTER, renew_every: float = RENEW_EVERY) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCKNAME
        self.stale_after, self.renew_every = stale_after, renew_every
        self.holder: dict[str, Any] | None = None
        self.created = False  # the directory was made by this lock (removed again if the run never starts)
        self.broke: str | None = None  # what was said of a stale lock that was broken, for the log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            self.created = not self.directory.exists()
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LockError(f"cannot create the output directory {self.directory}: {e.strerror or e}") from None
        for _ in range(20):
            holder = me()
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                self._judge()
                continue
            except OSError as e:
                raise LockError(f"cannot create {self.path}: {e.strerror or e}") from None
            with os.fdopen(fd, "w") as f:
                f.write(json.dumps(holder))
                f.flush()
                os.fsync(f.fileno())
            self.holder = holder
            self._thread = threading.Thread(target=self._heartbeat, name="bqnn-lock", daemon=True)
            self._thread.start()
            return
        raise LockError(f"cannot take {self.path}: other processes keep taking and dropping it")

    def _judge(self) -> None:
        """The lock exists: raise LockError if its holder may be alive, else break it (and the caller retries)."""
        holder = _read(self.path)
        why: str | None
        if holder is None:
            try:
                age = time.time() - self.path.stat().st_mtime
            except FileNotFoundError:
                return
            if age < WRITING_GRACE:
                time.sleep(0.1)
                return
            why = f"it is unreadable and {age:.0f} s old"
        else:
            why = stale_reason(holder, self.stale_after)
            if why is None:
                raise LockError(f"{self.directory} is in use by another search ({describe(holder)}); wait for it to "
                                f"end, or use another --out")
        self._break(holder, why)

    def _break(self, holder: dict[str, Any] | None, why: str) -> None:
        guard = self.path.with_name(LOCKNAME + ".break")
        try:
            fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                if time.time() - guard.stat().st_mtime > WRITING_GRACE:
                    guard.unlink(missing_ok=True)  # left by a process killed while breaking
            except FileNotFoundError:
                pass
            time.sleep(0.05)
            return
        try:
            os.close(fd)
            if _read(self.path) == holder:  # still the lock that was judged stale
                self.path.unlink(missing_ok=True)
                self.broke = f"broke the stale lock of {describe(holder) if holder else 'an unknown holder'}: {why}"
        finally:
            guard.unlink(missing_ok=True)

    def renew(self) -> None:
        """Record that the holder is alive; LockError if the lock is no longer this process's."""
        current = _read(self.path)
        if self.holder is None or current is None or any(current.get(k) != self.holder[k]
                                                         for k in ("host", "pid", "start", "taken")):
            raise LockError(f"{self.path} was taken by another search ({describe(current) if current else 'gone'})")
        self.holder["renewed"] = time.time()
        tmp = self.path.with_name(f"{LOCKNAME}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.holder))
        os.replace(tmp, self.path)

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.renew_every):
            try:
                self.renew()
            except (LockError, OSError) as e:
                # Another search now writes here (this one stalled past `stale_after`): stop at once, writing
                # nothing more, rather than overwrite its state.
                print(f"bqnn.search: error: {e}; stopping without writing", file=sys.stderr, flush=True)
                os._exit(2)

    def abandon(self) -> None:
        """Release, and remove the directory if this lock made it and nothing was written there."""
        self.release()
        if self.created:
            try:
                self.directory.rmdir()
            except OSError:
                pass

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.holder is not None:
            current = _read(self.path)
            if current is not None and all(current.get(k) == self.holder[k] for k in ("host", "pid", "start")):
                self.path.unlink(missing_ok=True)
            self.holder = None
