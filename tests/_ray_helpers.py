"""Helpers of tests/test_ray_backend.py: find the Ray worker processes of *this* test's cluster
that run a mialab task, and kill them from a background thread while a fleet trains.

A Ray worker names its process after the task it runs (``ray::mialab-shadow-group-1-of-2``,
``ray::IDLE`` between tasks) and is a child of its node's raylet. Other processes on the machine
(other test runs, other Ray clusters) may carry the same titles, so a process is only ever
matched, and killed, when its parent is one of the raylets the test started.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator

TASK_PREFIX = "ray::mialab-"


def parent_pid(pid: int) -> int | None:
    """The parent pid from ``/proc/<pid>/stat`` (``None`` once the process is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may hold spaces: split after the last ')'
    return int(stat.rsplit(")", 1)[1].split()[1])


def title(pid: int) -> str:
    """The process title (its ``argv`` as rewritten by Ray), '' once the process is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def task_processes(raylets: Iterable[int], contains: str = "") -> list[tuple[int, int, str]]:
    """``(pid, parent pid, title)`` of the processes running a mialab Ray task whose parent is
    one of ``raylets`` (and whose title contains ``contains``)."""
    raylets = set(raylets)
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        name = title(pid)
        if name.startswith(TASK_PREFIX) and contains in name:
            ppid = parent_pid(pid)
            if ppid in raylets:
                out.append((pid, ppid, name))
    return out


def raylet_pid(node) -> int:
    """The raylet's pid of a ``ray._private.node.Node`` (a ``Cluster`` node, or the node
    ``ray.init`` started: ``ray._private.worker._global_node``)."""
    return node.all_processes["raylet"][0].process.pid


class Killer(threading.Thread):
    """Polls for a task process of ``raylets()`` whose title contains ``contains`` and, once it
    has been running ``after`` seconds (training, not starting), acts on it: ``action(pid,
    ppid, title)`` (default SIGKILL), at most ``times`` times, each time on a new process.
    ``hits`` records ``(pid, ppid, title)`` of every process acted on; ``stop()`` ends it. As a
    context manager it polls for the block's duration and then reports its own errors."""

    def __init__(self, raylets: Callable[[], Iterable[int]], *, contains: str = "", times: int = 1,
                 after: float = 0.3, action: Callable[[int, int, str], None] | None = None,
                 poll: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.raylets, self.contains, self.times, self.after, self.poll = raylets, contains, times, after, poll
        self.action = action or (lambda pid, _ppid, _title: os.kill(pid, signal.SIGKILL))
        self.hits: list[tuple[int, int, str]] = []
        self.errors: list[BaseException] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)

    def __enter__(self) -> "Killer":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        assert not self.errors, self.errors

    def run(self) -> None:
        seen: dict[tuple[int, str], float] = {}  # (pid, title) -> when first seen
        done: set[int] = set()
        try:
            while len(self.hits) < self.times and not self._halt.is_set():
                now = time.monotonic()
                for pid, ppid, name in task_processes(self.raylets(), self.contains):
                    if pid in done:
                        continue
                    first = seen.setdefault((pid, name), now)
                    if now - first >= self.after and title(pid) == name:  # still on that task
                        self.action(pid, ppid, name)
                        self.hits.append((pid, ppid, name))
                        done.add(pid)
                        break
                time.sleep(self.poll)
        except BaseException as e:  # the test reports it rather than a silent thread
            self.errors.append(e)


class Deadline(TimeoutError):
    """A block of :func:`deadline` ran past its time."""


@contextlib.contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Fail a block that runs past ``seconds`` (a fleet that hangs: a retry that never comes)
    with :class:`Deadline` instead of blocking the test run. Main thread only. The alarm raises
    ``KeyboardInterrupt``: a driver blocked in ``ray.wait`` checks for that signal alone (it
    swallows other exceptions raised by signal handlers)."""
    fired = threading.Event()

    def on_alarm(_signum, _frame):
        fired.set()
        raise KeyboardInterrupt

    before = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except KeyboardInterrupt:
        if fired.is_set():
            raise Deadline(f"{what} did not finish within {seconds:g} s") from None
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
