"""Background threads that keep the network busy: one runs an iterator ahead of its consumer
(decoding and optical flow), the other works through a queue of jobs (writing frames and
encoding) so that the dream loop never waits for either.

Both pass exceptions on to the thread that uses them, with their original tracebacks, and
both stop promptly when closed (a Ctrl-C in the main thread closes them).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

__all__ = ["Prefetch", "Worker"]

T = TypeVar("T")
_END = object()
_POLL = 0.1  # seconds between checks of the stop flag while a queue is full or empty


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetch(Generic[T]):
    """Iterate `source` in a daemon thread, at most `depth` items ahead of the consumer.

    Use as an iterator, and `close()` it (or use ``with``) when done early: the thread stops at
    its next item. An exception in the source is raised in the consumer at that point.
    """

    def __init__(self, source: Iterable[T], *, depth: int = 4, name: str = "dreamer-prefetch") -> None:
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._run, args=(source,), name=name, daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, source: Iterable[T]) -> None:
        try:
            iterator = iter(source)
            while not self._stop.is_set():
                try:
                    item = next(iterator)
                except StopIteration:
                    break
                if not self._put(item):
                    break
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, raised there)
            self._put(_Failure(exc))
            return
        finally:
            close = getattr(source, "close", None)
            if callable(close) and self._stop.is_set():
                try:
                    close()
                except Exception:  # noqa: BLE001  (a generator closed mid-way: nothing to report)
                    pass
        self._put(_END)

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        while True:
            try:
                item = self._queue.get(timeout=_POLL)
                break
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    self._done = True
                    raise StopIteration from None
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.error
        return item

    def close(self) -> None:
        """Stop the thread (it finishes the item it is making) and wait for it."""
        self._stop.set()
        self._done = True
        while self._thread.is_alive():
            try:
                while True:
                    self._queue.get_nowait()
            except queue.Empty:
                pass
            self._thread.join(timeout=_POLL)

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Worker:
    """A daemon thread that runs submitted calls in order, one at a time.

    `submit(fn, *args)` queues a call (blocking while `depth` calls wait); the first exception
    a call raises is kept and raised again by the next `submit` or by `finish`, and later calls
    are skipped. `finish()` waits for every queued call; `abort()` drops those not started.
    """

    def __init__(self, *, depth: int = 8, name: str = "dreamer-writer") -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._skip = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is _END:
                    return
                if self._error is None and not self._skip.is_set():
                    fn, args = job
                    fn(*args)
            except BaseException as exc:  # noqa: BLE001  (raised in the submitting thread)
                self._error = exc
            finally:
                self._queue.task_done()

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            self._skip.set()
            raise error

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self._raise()
        if not self._thread.is_alive():
            raise RuntimeError("the worker has stopped")
        self._queue.put((fn, args))

    def wait(self) -> None:
        """Wait until every call submitted so far has run; raise the first error one raised."""
        if self._thread.is_alive():
            self._queue.join()
        self._raise()

    def finish(self) -> None:
        """Wait until every submitted call has run and stop; raise the first error one raised."""
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
        self._raise()

    def abort(self) -> None:
        """Skip the calls not yet started, wait for the running one, and stop."""
        self._skip.set()
        if self._thread.is_alive():
            self._queue.put(_END)
            self._thread.join()
