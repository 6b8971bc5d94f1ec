"""Run slow calls off the kernel's main thread, newest request first.

The kernel keeps reading comm messages (slider moves) while a generation runs in a
worker thread. Requests that arrive meanwhile replace each other: when the running call
finishes, only the newest waiting request runs next, so a dragged slider costs at most
one extra call, not one per pixel.

Example:
    >>> done = []
    >>> runner = LatestRunner(lambda x: x * 2, on_done=lambda req, res: done.append(res))
    >>> runner.submit(21)
    >>> runner.wait(5)
    True
    >>> done
    [42]
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

__all__ = ["LatestRunner"]

Req = TypeVar("Req")
_NOTHING = object()


class LatestRunner(Generic[Req]):
    """Calls ``fn(request)`` in a daemon thread; a newer request supersedes a waiting one.

    Args:
        fn: The slow function.
        on_done: Called in the worker as ``on_done(request, result)``.
        on_error: Called in the worker as ``on_error(request, exception)``.
        on_busy: Called with ``True`` when work starts and ``False`` when the last request
            is done (under the runner's lock, so the two never arrive out of order).
    """

    def __init__(
        self,
        fn: Callable[[Req], Any],
        *,
        on_done: Callable[[Req, Any], None] | None = None,
        on_error: Callable[[Req, BaseException], None] | None = None,
        on_busy: Callable[[bool], None] | None = None,
    ) -> None:
        self._fn = fn
        self._on_done = on_done or (lambda req, res: None)
        self._on_error = on_error or (lambda req, exc: None)
        self._on_busy = on_busy or (lambda busy: None)
        self._lock = threading.Lock()
        self._pending: Any = _NOTHING
        self._running = False
        self._idle = threading.Event()
        self._idle.set()

    @property
    def busy(self) -> bool:
        return not self._idle.is_set()

    def submit(self, request: Req) -> None:
        """Queue ``request``, replacing any request that has not started yet."""
        with self._lock:
            self._pending = request
            if self._running:
                return
            self._running = True
            self._idle.clear()
            self._on_busy(True)
        threading.Thread(target=self._work, name="saekit-view-worker", daemon=True).start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until no request is running or waiting; ``False`` on timeout."""
        return self._idle.wait(timeout)

    def _work(self) -> None:
        while True:
            with self._lock:
                request, self._pending = self._pending, _NOTHING
                if request is _NOTHING:
                    self._running = False
                    self._on_busy(False)
                    self._idle.set()
                    return
            try:
                self._on_done(request, self._fn(request))
            except Exception as exc:  # reported to the page; the kernel keeps running
                self._on_error(request, exc)
