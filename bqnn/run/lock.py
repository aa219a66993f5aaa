"""One writer per output directory: a lease file, DIR/search.lock, taken before anything is written.

Used by `python -m bqnn.search` on rank 0 (or its one process):

    with OutputLock(Path(out)) as lock:      # LockError (one line naming the holder) if a live search holds it
        ...                                   # a heartbeat thread renews the lease while the search runs

The lock is a file created with O_CREAT | O_EXCL, atomic on local disks, NFS v3+ and Lustre, holding JSON:
host, pid, the process's start time (so a reused pid is not taken for the holder), SLURM job id and restart count,
when it was taken and when last renewed. `flock`-based locks are not used: on cluster filesystems they are
node-local or unavailable. A lock is stale, and is broken, only when its holder is provably gone:
- on this host, its pid is not running, or runs another process (a SIGKILLed search, then the same command);
  a holder that runs on this host is never broken, whatever job it belongs to;
- on another host, it carries this job's SLURM_JOB_ID with a lower SLURM_RESTART_COUNT: an earlier run of this
  job, which SLURM ended before requeueing it (the requeued job resumes at once, possibly on another node). The
  job id alone proves nothing: a second `srun` in the same allocation has the same id and restart count;
- it was not renewed for `stale_after` seconds (its host died; the holder renews every `renew_every`).
Breaking takes a second short-lived lock (search.lock.break), so two searches never both break and take it.
A lock file is read like any file bqnn reads: every field is checked (types, ranges, finite times), and one that
is not a lock is named in one line with what to do, never broken and never a traceback; an empty one (a process
killed between creating and writing it) is broken once it is WRITING_GRACE old. A lock that cannot be written
(a full disk, a quota) is removed again and named in one line. No torch, no MPI.
"""
from __future__ import annotations

import errno
import json
import math
import os
import shutil
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
            "slurm_job": os.environ.get("SLURM_JOB_ID", ""), "slurm_restart": os.environ.get("SLURM_RESTART_COUNT", ""),
            "taken": now, "renewed": now}


MAX_PID = 2**31 - 1  # pid_t


def _text(value: Any, name: str, limit: int, digits: bool = False, empty: bool = True) -> str:
    if not isinstance(value, str) or len(value) > limit or (not empty and not value) or \
            (digits and value and not (value.isascii() and value.isdigit())):
        kind = "digits" if digits else "text"
        raise ValueError(f"{name} must be {kind} of at most {limit} characters, got {value!r:.40}")
    return value


def _time(value: Any, name: str, now: float, ahead: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a time in seconds, got {value!r:.40}")
    if value > now + ahead:
        raise ValueError(f"{name} is {value - now:,.0f} s in the future")
    return float(value)


def parse(text: str, now: float | None = None, ahead: float = STALE_AFTER) -> dict[str, Any]:
    """The holder a lock file's text records, every field checked; ValueError saying what is wrong. A time more than
    `ahead` seconds in the future is refused: such a lock would never go stale (clocks of a cluster's nodes agree to
    far better than that)."""
    try:
        holder = json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("it is not JSON") from None
    if not isinstance(holder, dict):
        raise ValueError(f"it holds a JSON {type(holder).__name__}, not an object")
    missing = [k for k in ("host", "pid", "start", "slurm_job", "taken", "renewed") if k not in holder]
    if missing:
        raise ValueError(f"it has no {', '.join(missing)}")
    now = time.time() if now is None else now
    pid = holder["pid"]
    if isinstance(pid, bool) or not isinstance(pid, int) or not 1 <= pid <= MAX_PID:
        raise ValueError(f"pid must be a process id (1 to {MAX_PID}), got {pid!r:.40}")
    return {"host": _text(holder["host"], "host", 255, empty=False), "pid": pid,
            "start": _text(holder["start"], "start", 32, digits=True),
            "slurm_job": _text(holder["slurm_job"], "slurm_job", 64),
            "slurm_restart": _text(holder.get("slurm_restart", ""), "slurm_restart", 9, digits=True),
            "taken": _time(holder["taken"], "taken", now, ahead),
            "renewed": _time(holder["renewed"], "renewed", now, ahead)}


def describe(holder: dict[str, Any]) -> str:
    job = f", SLURM job {holder['slurm_job']}" if holder.get("slurm_job") else ""
    age = time.time() - float(holder.get("renewed", 0))
    return f"host {holder.get('host')} pid {holder.get('pid')}{job}, renewed {age:.0f} s ago"


def stale_reason(holder: dict[str, Any], stale_after: float = STALE_AFTER) -> str | None:
    """Why the lock of `holder` (as `parse` returns it) may be broken, or None if its holder may be alive."""
    mine = me()
    if holder["host"] == mine["host"]:  # here, whether the holder runs is known: nothing else counts
        return None if _alive(holder["pid"], holder["start"]) else "its process is gone"
    restart, my_restart = int(holder.get("slurm_restart") or 0), int(mine["slurm_restart"] or 0)
    if mine["slurm_job"] and holder["slurm_job"] == mine["slurm_job"] and restart < my_restart:
        return (f"it belongs to an earlier run of this SLURM job (restart {restart}; this is restart {my_restart}: "
                f"requeued)")
    if time.time() - holder["renewed"] > stale_after:
        return f"it was not renewed for {stale_after:.0f} s"
    return None


def _read(path: Path) -> dict[str, Any] | None:
    """The holder recorded in `path`; None when it is missing, empty or not a valid lock."""
    try:
        return parse(path.read_text(errors="replace"))
    except (OSError, ValueError):
        return None


def _free(directory: Path) -> str:
    try:
        return f"{shutil.disk_usage(directory).free:,} bytes free there"
    except OSError:
        return "free space unknown"


class OutputLock:
    def __init__(self, directory: Path, stale_after: float = STALE_AFTER, renew_every: float = RENEW_EVERY) -> None:
        self.directory = Path(directory)
        self.path = self.directory / LOCKNAME
        self.stale_after, self.renew_every = stale_after, renew_every
        self.holder: dict[str, Any] | None = None
        # the directories made by this lock, --out and any missing parents, deepest first (removed again if the
        # run never starts)
        self.created: list[Path] = []
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
            self.created = [p for p in (self.directory, *self.directory.parents) if not p.exists()]
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LockError(f"cannot create the output directory {self.directory}: {e.strerror or e}") from None
        tries, deadline = 0, time.monotonic() + WRITING_GRACE + 5
        while tries < 20 and time.monotonic() < deadline:
            holder = me()
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                tries += not self._judge()  # waiting for a lock being written is not a try
                continue
            except OSError as e:
                room = f" ({_free(self.directory)})" if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
                raise LockError(f"cannot create {self.path}: {e.strerror or e}{room}") from None
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(json.dumps(holder))
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:  # a full disk or a quota: the file exists but holds nothing; leave none behind
                self.path.unlink(missing_ok=True)
                raise LockError(f"cannot write {self.path}: {e.strerror or e} ({_free(self.directory)}; the lock "
                                f"needs one block and each checkpoint its own size, see docs/state.md)") from None
            self.holder = holder
            self._thread = threading.Thread(target=self._heartbeat, name="bqnn-lock", daemon=True)
            self._thread.start()
            return
        raise LockError(f"cannot take {self.path}: other processes keep taking and dropping it")

    def _judge(self) -> bool:
        """The lock exists: raise LockError if its holder may be alive or the file is not a lock, else break it (and
        the caller retries). True when it waited for a lock being written instead."""
        try:
            text = self.path.read_text(errors="replace")
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return False  # released meanwhile: try again
        except OSError as e:
            raise LockError(f"cannot read {self.path}: {e.strerror or e}") from None
        holder: dict[str, Any] | None = None
        try:
            holder = parse(text)
        except ValueError as e:
            if age < WRITING_GRACE:  # being written (created, not yet filled): wait for it
                time.sleep(0.1)
                return True
            if text:
                raise LockError(f"{self.path} is not a bqnn lock ({e}); if no search runs in {self.directory}, "
                                f"remove that file and run again") from None
            why = f"it is empty and {age:.0f} s old"
        else:
            reason = stale_reason(holder, self.stale_after)
            if reason is None:
                raise LockError(f"{self.directory} is in use by another search ({describe(holder)}); wait for it to "
                                f"end, or use another --out")
            why = reason
        self._break(holder, why, text)
        return False

    def _break(self, holder: dict[str, Any] | None, why: str, text: str) -> None:
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
            if self.path.read_text(errors="replace") == text:  # still the lock that was judged stale
                self.path.unlink(missing_ok=True)
                self.broke = f"broke the stale lock of {describe(holder) if holder else 'an unknown holder'}: {why}"
        except FileNotFoundError:
            pass  # released meanwhile
        finally:
            guard.unlink(missing_ok=True)

    def renew(self) -> None:
        """Record that the holder is alive; LockError if the lock is no longer this process's."""
        current = _read(self.path)
        if self.holder is None or current is None or any(current.get(k) != self.holder[k]
                                                         for k in ("host", "pid", "start", "taken")):
            raise LockError(f"{self.path} was taken by another search ({describe(current) if current else 'gone'})")
        renewed = dict(self.holder, renewed=time.time())
        tmp = self.path.with_name(f"{LOCKNAME}.{os.getpid()}.tmp")
        try:
            tmp.write_text(json.dumps(renewed))
            os.replace(tmp, self.path)
        except OSError:
            tmp.unlink(missing_ok=True)
            raise
        self.holder = renewed

    def _heartbeat(self) -> None:
        warned = False
        while not self._stop.wait(self.renew_every):
            try:
                self.renew()
                warned = False
            except LockError as e:
                # Another search now writes here (this one stalled past `stale_after`): stop at once, writing
                # nothing more, rather than overwrite its state.
                print(f"bqnn.search: error: {e}; stopping without writing", file=sys.stderr, flush=True)
                os._exit(2)
            except OSError as e:  # a full disk or a quota: the lock still names this search; try again later
                if not warned:
                    print(f"warning: cannot renew {self.path}: {e.strerror or e} ({_free(self.directory)}); the lock "
                          f"stays held, renewal is tried every {self.renew_every:g} s", file=sys.stderr, flush=True)
                    warned = True

    def abandon(self) -> None:
        """Release, and remove the directories this lock made where nothing was written."""
        self.release()
        for made in self.created:
            try:
                made.rmdir()
            except OSError:  # something was written there after all
                return

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
