"""Work that can run beside the report's main thread on the second core: a forked child process (it inherits the loaded
tables, so nothing is read or pickled twice); its result or its exception comes back through a pipe. Where fork is
not available the work runs in line when its result is asked for, with the same result."""
from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import traceback


def _child(conn, fn, args, kwargs) -> None:
    try:
        out = ("ok", fn(*args, **kwargs))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
        try:
            pickle.dumps(exc)
            out = ("error", exc)
        except Exception:
            out = ("error", RuntimeError(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    try:
        conn.send(out)
    finally:
        conn.close()
        os._exit(0)


class Background:
    """``Background(fn, *args, **kw).result()`` equals ``fn(*args, **kw)``; the call starts at once in a forked child."""

    def __init__(self, fn, *args, **kwargs):
        self._call = (fn, args, kwargs)
        self._done, self._value, self._proc, self._cancelled = False, None, None, False
        if "fork" in mp.get_all_start_methods() and os.environ.get("CCM_AUDIT_NO_FORK") != "1":
            ctx = mp.get_context("fork")
            self._conn, child = ctx.Pipe(duplex=False)
            self._proc = ctx.Process(target=_child, args=(child, fn, args, kwargs), daemon=True)
            self._proc.start()
            child.close()

    def cancel(self) -> None:
        """The result is no longer wanted (the caller failed before asking for it): the child is stopped and reaped at
        once, instead of computing to the end in a process that lives on (a notebook, the chart review, a test run).
        :meth:`result` may not be asked afterwards."""
        self._cancelled = True
        if self._proc is not None and not self._done:
            self._proc.kill()  # it holds nothing to clean up: its result would only have gone into the pipe
            self._proc.join()
            self._conn.close()
            self._proc = None

    def result(self):
        if self._cancelled:
            raise RuntimeError(f"background work {self._call[0].__name__} was cancelled")
        if self._done:
            return self._value
        if self._proc is None:
            fn, args, kwargs = self._call
            self._value, self._done = fn(*args, **kwargs), True
            return self._value
        try:
            status, value = self._conn.recv()
        except EOFError:
            self._proc.join()
            raise RuntimeError(f"background work {self._call[0].__name__} ended without a result (exit code {self._proc.exitcode})") from None
        finally:
            self._conn.close()
        self._proc.join()
        if status == "error":
            raise value
        self._value, self._done = value, True
        return value
