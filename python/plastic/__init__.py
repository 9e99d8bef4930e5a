"""plastic from Python: run code on a fleet of MicroPython boards and Linux nodes over MQTT.

    import plastic
    c = plastic.Client()                  # PLASTIC_BROKER, PLASTIC_CA, PLASTIC_KEYS as the CLI
    c.nodes()                             # every node's presence
    v = c["esp-*"]                        # a name, "a,b", a glob, "group:lab", "all", c[:]
    v.eval("2+3")                         # {"esp-1": 5, "esp-2": 5}

The protocol (correlation, resends, signing, TLS, outcomes) is the Rust client's
(`plastic._plastic`, built on plastic-client); this module only shapes it for Python. See
docs/python.md.
"""

from __future__ import annotations

import ast
import asyncio
import base64
import inspect
import json
import math
import os
import sys
import textwrap
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

from . import _plastic

__all__ = [
    "Client",
    "View",
    "LoadBalancedView",
    "AsyncResult",
    "PlasticError",
    "RemoteError",
    "CompositeError",
    "Timeout",
    "NodeLost",
    "Expired",
    "Forbidden",
    "Busy",
    "Aborted",
    "NodeNotOnline",
    "NoTarget",
    "Disconnected",
    "Repr",
    "load_ipython_extension",
]

__version__ = _plastic.__version__

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


# --- errors ----------------------------------------------------------------------------------


class PlasticError(Exception):
    """Base of every plastic error. `node`, `kind` (the protocol's error kind), `message` and
    `traceback` (as the node printed it; empty when the error did not come from a node)."""

    def __init__(
        self,
        message: str,
        *,
        node: Optional[str] = None,
        kind: Optional[str] = None,
        traceback: str = "",
    ) -> None:
        super().__init__(message)
        self.node = node
        self.kind = kind or type(self).__name__
        self.message = message
        self.traceback = traceback or ""

    def __str__(self) -> str:
        where = f"[{self.node}] " if self.node else ""
        return f"{where}{self.kind}: {self.message}"

    def _render_traceback_(self) -> List[str]:
        # IPython shows this instead of the local traceback: the node's, as it printed it.
        lines = [str(self)]
        if self.traceback:
            lines = [f"[{self.node}] " + self.traceback.rstrip("\n")] if self.node else [self.traceback]
        return "\n".join(lines).split("\n")


class RemoteError(PlasticError):
    """A node's exception (or a refusal without a class of its own): `kind` is the exception
    type (`ZeroDivisionError`), `traceback` the node's traceback."""


class Timeout(PlasticError, TimeoutError):
    """No reply within the timeout (the request may or may not have run), or
    `AsyncResult.get(timeout=...)` ran out while the request goes on."""


class NodeLost(PlasticError):
    """The node went offline or lost (or restarted) before answering; the request may or may
    not have run."""


class Expired(PlasticError):
    """The node got the request after its time to live (`ttl`) and did not run it."""


class Forbidden(PlasticError):
    """The hub refused the request: this user may not do that to that node."""


class Busy(PlasticError):
    """The node has too many requests in progress and did not run this one."""


class Aborted(PlasticError):
    """The request was aborted (`AsyncResult.abort()`, `plastic abort`) before it ran."""


class NodeNotOnline(PlasticError):
    """A node named in the target is offline, lost or unknown; nothing was sent to it."""


class NoTarget(PlasticError, LookupError):
    """The target matches no online node; nothing was sent."""


class Disconnected(PlasticError, ConnectionError):
    """The connection to the broker is closed."""


class CompositeError(RemoteError):
    """Several nodes of a view failed (or one of several): `errors` maps each failed node to
    its exception, `results` each successful node to its value."""

    def __init__(self, errors: Dict[str, PlasticError], results: Dict[str, Any]) -> None:
        self.errors = dict(sorted(errors.items()))
        self.results = dict(sorted(results.items()))
        n = len(self.errors)
        summary = f"{n} of {n + len(self.results)} nodes failed"
        super().__init__(summary, kind="CompositeError")
        self.message = summary

    def __str__(self) -> str:
        lines = [f"{self.message}:"]
        lines += [f"  {e}" for e in self.errors.values()]
        return "\n".join(lines)

    def _render_traceback_(self) -> List[str]:
        out = [f"CompositeError: {self.message}"]
        for e in self.errors.values():
            out.append("")
            out.extend(e._render_traceback_())
        return out


_ERRORS = {
    "Timeout": Timeout,
    "NodeLost": NodeLost,
    "Expired": Expired,
    "Forbidden": Forbidden,
    "Busy": Busy,
    "Aborted": Aborted,
    "NodeNotOnline": NodeNotOnline,
    "NoTarget": NoTarget,
    "Closed": Disconnected,
    "ClientError": PlasticError,
}


def _error(node: Optional[str], info: dict) -> PlasticError:
    kind = info.get("kind") or "RemoteError"
    cls = _ERRORS.get(kind, RemoteError)
    return cls(
        info.get("message", ""), node=node, kind=kind, traceback=info.get("traceback") or ""
    )


class Repr(str):
    """A value JSON cannot hold (a set, bytes, an object), as the node's `repr()` of it."""

    def __repr__(self) -> str:
        return str(self)


# --- helpers ---------------------------------------------------------------------------------


def _check_json(value: Any, where: str) -> None:
    """Raises TypeError naming the first part of `value` that JSON cannot carry unchanged."""
    if value is None or isinstance(value, (bool, int, str)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"{where} is {value!r}, which JSON cannot carry")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, item in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where} has the key {k!r}; JSON object keys are strings")
            _check_json(item, f"{where}[{k!r}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__name__} ({value!r:.60}), which JSON cannot carry; "
        "send lists, dicts with string keys, strings, numbers, booleans or None"
    )


def _function_source(f: Callable) -> tuple:
    """(name, source) of a plain function that can be shipped, or TypeError saying why not."""
    if not inspect.isfunction(f):
        raise TypeError(
            f"apply ships plain functions defined with `def`; {f!r:.60} is a "
            f"{type(f).__name__}"
        )
    name = f.__name__
    if name == "<lambda>":
        raise TypeError("apply cannot ship a lambda: define the function with `def`")
    if f.__code__.co_freevars:
        captured = ", ".join(f.__code__.co_freevars)
        raise TypeError(
            f"apply cannot ship {name}(): it is a closure over {captured}; "
            "pass those as arguments instead"
        )
    if inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f):
        raise TypeError(f"apply cannot ship {name}(): async functions have no JSON result")
    try:
        source = textwrap.dedent(inspect.getsource(f))
    except (OSError, TypeError) as e:
        raise TypeError(
            f"apply cannot find the source of {name}() ({e}); define it in a file, "
            "a notebook cell or IPython"
        ) from None
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise TypeError(f"apply cannot ship {name}(): its source does not parse alone ({e})") from None
    defs = tree.body
    if len(defs) != 1 or not isinstance(defs[0], ast.FunctionDef):
        raise TypeError(f"apply cannot ship {name}(): its source is not one `def`")
    if defs[0].decorator_list:
        raise TypeError(
            f"apply cannot ship {name}(): it is decorated, and the decorator does not exist "
            "on the node"
        )
    return defs[0].name, source


def _is_single(target: str) -> bool:
    t = target.strip()
    return not (
        t == "all"
        or t.startswith(("group:", "pool:"))
        or "," in t
        or any(c in t for c in "*?[")
    )


def _print_output(node: str, text: str, stream=None) -> None:
    if not text:
        return
    stream = stream or sys.stdout
    text = text if text.endswith("\n") else text + "\n"
    if text.count("\n") == 1:
        stream.write(f"[stdout:{node}] {text}")
    else:
        stream.write(f"[stdout:{node}]\n{text}")
    stream.flush()


# --- results ---------------------------------------------------------------------------------


def _future_of(pending: "_plastic.Pending", get: Callable[[float], Any]) -> "asyncio.Future":
    """An asyncio future settled with `get(0)` (its value or its error) once `pending` is
    done; cancelling the future cancels `pending`."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle() -> None:
        if future.done():
            return
        try:
            future.set_result(get(0))
        except BaseException as e:  # the node's error, raised in the awaiting task
            future.set_exception(e)

    def done() -> None:  # on a plastic thread: hand over to the loop
        try:
            loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass  # the loop closed meanwhile

    def cancelled(f: "asyncio.Future") -> None:
        if f.cancelled():
            pending.cancel()

    future.add_done_callback(cancelled)
    pending.add_done_callback(done)
    return future


class AsyncResult:
    """A request on its way to every node of a view: returned by `block=False` and the
    `*_async` methods. Awaitable (`await ar`) in asyncio, Jupyter included."""

    def __init__(
        self,
        pending: "_plastic.Pending",
        *,
        op: str,
        target: str,
        single: bool,
        shape: Callable[[Any], Any],
    ) -> None:
        self._pending = pending
        self._op = op
        self._target = target
        self._single = single
        self._shape = shape
        self._parsed: Optional[dict] = None

    # -- state
    def ready(self) -> bool:
        """True once every node answered (or failed)."""
        return self._pending.done()

    done = ready

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Waits up to `timeout` seconds (None: until done); returns `ready()`."""
        return self._pending.wait(timeout)

    def successful(self) -> bool:
        """True when done and no node failed. Raises if not done yet."""
        if not self.ready():
            raise AssertionError("the request is not done yet; check ready() first")
        return not self._parse_errors() and not self._parsed.get("error")

    @property
    def elapsed(self) -> float:
        """Seconds from sending until the last outcome (or until now, while waiting)."""
        return self._pending.elapsed

    def abort(self, timeout: float = 5.0) -> None:
        """Aborts the request on the nodes it went to (the protocol's `abort` command): one
        still waiting there, or not delivered yet, never runs and `get()` raises `Aborted`
        for that node; one running is interrupted (`RemoteError` of kind
        `KeyboardInterrupt`); one finished is left as it is. Does nothing once done. The
        MicroPython agent reads no messages while it runs Python: the request it runs goes
        on, but those sent after it do not run. For a pool, every online member is told.
        Raises the node's error if a node refused the abort (a hub without `eval` rights
        for this user)."""
        if self.ready():
            return None
        replies = json.loads(self._pending.abort(timeout))
        failed = {o["node"]: _error(o["node"], o["error"] or {}) for o in replies if not o["ok"]}
        if self._target.strip().startswith("pool:") and len(failed) < len(replies):
            return None  # every online member was asked; one answering is enough
        if len(failed) == 1:
            raise next(iter(failed.values()))
        if failed:
            raise CompositeError(failed, {})
        return None

    # -- outcomes
    def _outcomes(self) -> dict:
        if self._parsed is None:
            text = self._pending.result()
            if text is None:
                raise Timeout("the request is not done yet", kind="Timeout")
            self._parsed = text if isinstance(text, dict) else json.loads(text)
        return self._parsed

    def _parse_errors(self) -> Dict[str, PlasticError]:
        return {
            o["node"]: _error(o["node"], o["error"] or {})
            for o in self._outcomes()["outcomes"]
            if not o["ok"]
        }

    @property
    def outcomes(self) -> List[dict]:
        """Every node's outcome as it came: `node`, `ok`, `result`, `repr`, `stdout`, `error`."""
        self.wait()
        return list(self._outcomes()["outcomes"])

    @property
    def stdout(self) -> Union[str, Dict[str, str]]:
        """What the request printed: per node (a str for a one-node view)."""
        self.wait()
        out = {o["node"]: o.get("stdout") or "" for o in self._outcomes()["outcomes"]}
        if self._single:
            return next(iter(out.values()), "")
        return out

    @property
    def errors(self) -> Dict[str, PlasticError]:
        """The failed nodes, each with its exception."""
        self.wait()
        return self._parse_errors()

    @property
    def results(self) -> Dict[str, Any]:
        """The successful nodes' values."""
        self.wait()
        return {
            o["node"]: self._shape(_value(o)) for o in self._outcomes()["outcomes"] if o["ok"]
        }

    def display_outputs(self) -> None:
        """Prints each node's output, `[stdout:NODE]` first, like ipyparallel."""
        self.wait()
        for o in self._outcomes()["outcomes"]:
            _print_output(o["node"], o.get("stdout") or "")

    def get(self, timeout: Optional[float] = None) -> Any:
        """The value: for a one-node view the node's value, else `{node: value}`. Raises the
        node's error (a one-node view), `CompositeError` (any failure on a view of several),
        `NoTarget`, or `Timeout` when `timeout` seconds pass first (the request goes on)."""
        if not self._pending.wait(timeout):
            raise Timeout(
                f"{self._op} on {self._target} not done within {timeout} s (it goes on)",
                kind="Timeout",
            )
        parsed = self._outcomes()
        if parsed.get("cancelled"):
            raise PlasticError("stopped waiting (the request may still run)", kind="Cancelled")
        if parsed.get("error"):
            raise _error(None, parsed["error"])
        errors = self._parse_errors()
        results = {
            o["node"]: self._shape(_value(o)) for o in parsed["outcomes"] if o["ok"]
        }
        if self._single:
            if errors:
                raise next(iter(errors.values()))
            return next(iter(results.values()))
        if errors:
            raise CompositeError(errors, results)
        return results

    def __await__(self):
        return self._future().__await__()

    def _future(self) -> "asyncio.Future":
        return _future_of(self._pending, self.get)

    def __repr__(self) -> str:
        state = "done" if self.ready() else "pending"
        return f"<AsyncResult {self._op} on {self._target!r}: {state}, {self.elapsed:.3f} s>"


def _value(outcome: dict) -> Any:
    result = outcome.get("result")
    if outcome.get("repr") and isinstance(result, str):
        return Repr(result)
    return result


def _identity(x: Any) -> Any:
    return x


def _pins(result: Any) -> Any:
    if isinstance(result, list):
        return {int(pin): value for pin, value in result}
    return result


def _none(_: Any) -> None:
    return None


def _bytes(result: Any) -> Any:
    # A download's bytes cross from the core as base64 text.
    return base64.b64decode(result) if isinstance(result, str) else result


# --- views -----------------------------------------------------------------------------------


class GPIO:
    """`view.gpio`: the nodes' pins (ESP8266 numbering; pin 2 is the LED, active low)."""

    def __init__(self, view: "View") -> None:
        self._view = view

    def read(self, pins: Optional[Iterable[int]] = None, *, block: Optional[bool] = None, timeout: Optional[float] = None):
        """`{pin: value}` (per node for a view of several)."""
        args = {"pins": None if pins is None else [int(p) for p in pins]}
        return self._view._run("gpio_read", args, _pins, block=block, timeout=timeout)

    def write(
        self,
        values: Union[Dict[int, int], Iterable[tuple]],
        *,
        block: Optional[bool] = None,
        timeout: Optional[float] = None,
    ):
        """Sets pins in the order given (a dict, or pairs: `[(2, 0), (2, 1)]`); returns the
        touched pins' final values, `{pin: value}`."""
        pairs = list(values.items()) if isinstance(values, dict) else list(values)
        checked = []
        for pair in pairs:
            pin, value = pair
            checked.append([int(pin), int(value)])
        args = {"pins_and_values": checked}
        return self._view._run("gpio_write", args, _pins, block=block, timeout=timeout)


class View:
    """Some nodes of the fleet, named by a TARGET: a node name, a comma list (`"pi-1,pi-2"`),
    a glob (`"esp-*"`), `"group:NAME"` or `"all"`. The target is resolved at each call
    against the presence the client follows, so nodes that come online later are included.

    A one-node view (a single name) returns values as they are; any other returns
    `{node: value}`. `block=False` returns an `AsyncResult` instead."""

    def __init__(
        self,
        client: "Client",
        target: str,
        *,
        block: bool = True,
        timeout: Optional[float] = None,
        ttl: Optional[float] = None,
    ) -> None:
        self.client = client
        self.target = target
        self.block = block
        self.timeout = timeout
        self.ttl = ttl
        self.gpio = GPIO(self)
        self._single = _is_single(target)

    def __repr__(self) -> str:
        return f"<View {self.target!r} of {self.client.name}>"

    @property
    def targets(self) -> List[str]:
        """The online nodes the target means now."""
        resolved = json.loads(self.client._core.resolve(self.target, self._timeout(None)))
        return resolved["nodes"]

    def _timeout(self, timeout: Optional[float]) -> float:
        if timeout is not None:
            return float(timeout)
        if self.timeout is not None:
            return float(self.timeout)
        return self.client.timeout

    def _submit(
        self,
        op: str,
        args: dict,
        shape: Callable[[Any], Any],
        *,
        timeout: Optional[float],
        data: Optional[bytes] = None,
    ) -> AsyncResult:
        ttl = self.ttl if self.ttl is not None else self.client.ttl
        pending = self.client._core.submit(
            self.target, op, json.dumps(args), self._timeout(timeout), ttl, data
        )
        return AsyncResult(pending, op=op, target=self.target, single=self._single, shape=shape)

    def _run(
        self,
        op: str,
        args: dict,
        shape: Callable[[Any], Any] = _identity,
        *,
        block: Optional[bool],
        timeout: Optional[float],
        data: Optional[bytes] = None,
        stream: bool = False,
    ):
        block = self.block if block is None else block
        if not block:
            return self._submit(op, args, shape, timeout=timeout, data=data)
        ttl = self.ttl if self.ttl is not None else self.client.ttl
        on_each = None
        if stream:
            def on_each(text: str) -> None:
                o = json.loads(text)
                _print_output(o["node"], o.get("stdout") or "")
        text = self.client._core.run(
            self.target, op, json.dumps(args), self._timeout(timeout), ttl, data, on_each
        )
        if self._single:
            # The common case, kept short: one node, one successful outcome.
            parsed = json.loads(text)
            outcomes = parsed["outcomes"]
            if len(outcomes) == 1 and outcomes[0]["ok"]:
                return shape(_value(outcomes[0]))
            text = parsed
        done = _Done(text)
        return AsyncResult(done, op=op, target=self.target, single=self._single, shape=shape).get()

    # -- Python on the nodes
    def eval(self, code: str, *, block: Optional[bool] = None, timeout: Optional[float] = None):
        """Evaluates one expression on every node: its value (JSON; a `Repr` string for
        values JSON cannot hold)."""
        return self._run("eval", {"code": code}, block=block, timeout=timeout)

    def exec(
        self,
        code: str,
        *,
        block: Optional[bool] = None,
        timeout: Optional[float] = None,
        silent: bool = False,
    ):
        """Executes statements on every node. Blocking, each node's output is printed as it
        arrives, `[stdout:NODE]` first (like `%px`); returns None. With `block=False`, the
        AsyncResult has it in `.stdout` (and `.display_outputs()`)."""
        result = self._run(
            "exec", {"code": code}, _none, block=block, timeout=timeout, stream=not silent
        )
        return result if isinstance(result, AsyncResult) else None

    def call(
        self,
        name: str,
        *args: Any,
        block: Optional[bool] = None,
        timeout: Optional[float] = None,
        **kwargs: Any,
    ):
        """Calls `name` (dotted: `functions.add` imports `functions`) in each node's namespace
        with JSON arguments; returns what it returns."""
        _check_json(list(args), "the arguments")
        _check_json(kwargs, "the keyword arguments")
        return self._run(
            "call", {"name": name, "args": list(args), "kwargs": kwargs}, block=block, timeout=timeout
        )

    def apply(self, f: Callable, *args: Any, **kwargs: Any):
        """Ships `f`'s source (`inspect.getsource`) and calls it with JSON arguments on every
        node: defines `f` in the node's namespace (under its own name), then calls it. Works
        on MicroPython too when the function is MicroPython. Closures, lambdas, decorated or
        async functions and non-JSON arguments are refused before anything is sent."""
        return self._apply(f, args, kwargs, block=None)

    def apply_sync(self, f: Callable, *args: Any, **kwargs: Any):
        """`apply`, waiting for the result."""
        return self._apply(f, args, kwargs, block=True)

    def apply_async(self, f: Callable, *args: Any, **kwargs: Any) -> AsyncResult:
        """`apply` in the background: an AsyncResult (awaitable)."""
        return self._apply(f, args, kwargs, block=False)

    def _apply(self, f: Callable, args: tuple, kwargs: dict, *, block: Optional[bool]):
        name, source = _function_source(f)
        for i, a in enumerate(args):
            _check_json(a, f"argument {i + 1} of {name}()")
        for k, a in kwargs.items():
            _check_json(a, f"argument {k}= of {name}()")
        payload = {"source": source, "name": name, "args": list(args), "kwargs": kwargs}
        return self._run("apply", payload, block=block, timeout=None)

    # -- asyncio
    def eval_async(self, code: str, *, timeout: Optional[float] = None) -> AsyncResult:
        """`eval` in the background; `await v.eval_async("2+3")`."""
        return self._submit("eval", {"code": code}, _identity, timeout=timeout)

    def exec_async(self, code: str, *, timeout: Optional[float] = None) -> AsyncResult:
        """`exec` in the background; the output is in the result's `.stdout`."""
        return self._submit("exec", {"code": code}, _none, timeout=timeout)

    def call_async(self, name: str, *args: Any, timeout: Optional[float] = None, **kwargs: Any) -> AsyncResult:
        """`call` in the background."""
        _check_json(list(args), "the arguments")
        _check_json(kwargs, "the keyword arguments")
        payload = {"name": name, "args": list(args), "kwargs": kwargs}
        return self._submit("call", payload, _identity, timeout=timeout)

    # -- the board
    def blink(
        self,
        times: int = 10,
        *,
        forever: bool = False,
        on: float = 0.5,
        off: float = 0.5,
        block: Optional[bool] = None,
        timeout: Optional[float] = None,
    ):
        """Blinks the LED in the background on every node (replaces a running blink)."""
        args = {"times": int(times), "forever": bool(forever), "on_seconds": float(on), "off_seconds": float(off)}
        return self._run("blink", args, block=block, timeout=timeout)

    # -- files and scripts
    def put(
        self,
        local: Union[str, os.PathLike],
        remote: Optional[str] = None,
        *,
        block: Optional[bool] = None,
        timeout: Optional[float] = None,
    ):
        """Uploads a local file to every node (chunked, resumable, sha256-verified), under the
        node's root as `remote` (default: the file's name)."""
        path = Path(local)
        data = path.read_bytes()
        remote = remote if remote else path.name
        return self._run("put", {"path": remote}, block=block, timeout=timeout, data=data)

    def get(
        self,
        remote: str,
        local: Union[str, os.PathLike, None] = None,
        *,
        block: Optional[bool] = None,
        timeout: Optional[float] = None,
    ):
        """Downloads the file `remote` (a path under the node's root) from every node of the
        view, in parallel, in `read file` chunks checked against the node's sha256 of the
        whole file.

        Without `local`: the file's bytes, `{node: bytes}` (just the bytes for a one-node
        view). With `local`, a local directory (created if missing): each node's file is
        saved as `local/<node>/<basename of remote>`, written to a `.part` beside it first and
        renamed into place only after the hash matched (a `.part` left by a cut download is
        resumed); returns `{node: path}` (the absolute path, a str; just the path for a
        one-node view).

        A node's refusal raises `RemoteError` with its kind (`FileNotFoundError`,
        `IsADirectoryError`, `BadPath`, ...), or `CompositeError` when several nodes of the
        view fail; a file that changed during the download raises `RemoteError` of kind
        `HashMismatch`; `Timeout` (`timeout`: seconds for each chunk's reply), `NodeLost`,
        `NodeNotOnline` as every operation. A bad `remote` (absolute, `..`) raises
        `ValueError` before anything is sent. `block=False` returns an `AsyncResult`."""
        args: Dict[str, Any] = {"path": remote}
        if local is None:
            return self._run("get", args, _bytes, block=block, timeout=timeout)
        folder = Path(local)
        folder.mkdir(parents=True, exist_ok=True)
        args["dir"] = str(folder.resolve())
        return self._run("get", args, block=block, timeout=timeout)

    def files(self, *, block: Optional[bool] = None, timeout: Optional[float] = None):
        """`[[path, size], ...]` of the files under each node's root."""
        return self._run("list_files", {}, block=block, timeout=timeout)

    def remove(self, remote: str, *, block: Optional[bool] = None, timeout: Optional[float] = None):
        """Deletes a file under each node's root."""
        return self._run("remove_file", {"path": remote}, block=block, timeout=timeout)

    def run(
        self,
        script: Union[str, os.PathLike],
        name: Optional[str] = None,
        *,
        block: Optional[bool] = None,
        timeout: Optional[float] = None,
    ):
        """Deploys a script file and starts it on every node, in the background; `name`
        defaults to the file's stem. Its output goes to the nodes' log topics."""
        path = Path(script)
        source = path.read_text()
        return self._run(
            "script", {"source": source, "name": name or path.stem or "main"}, block=block, timeout=timeout
        )

    def stop(self, name: Optional[str] = None, *, block: Optional[bool] = None, timeout: Optional[float] = None):
        """Stops the named script, or every script and the blink; the node keeps running."""
        return self._run("stop", {"name": name}, block=block, timeout=timeout)

    # -- the node program
    def ping(self, *, block: Optional[bool] = None, timeout: Optional[float] = None):
        """`"pong"` from every node."""
        return self._run("ping", {}, block=block, timeout=timeout)

    def info(self, *, block: Optional[bool] = None, timeout: Optional[float] = None):
        """Platform, version, uptime, memory, scripts, groups."""
        return self._run("info", {}, block=block, timeout=timeout)

    def reset(self, *, block: Optional[bool] = None, timeout: Optional[float] = None):
        """Restarts the node program (after replying)."""
        return self._run("reset", {}, block=block, timeout=timeout)


class LoadBalancedView(View):
    """A pool (`"pool:NAME"`, docs/protocol.md "Pools"), as ipyparallel's LoadBalancedView:
    each request goes to exactly one online member, which the broker picks. Results are the
    value itself (not `{node: value}`); `ar.outcomes` says which member ran it."""

    def __init__(self, client: "Client", target: str, **options: Any) -> None:
        if not target.strip().startswith("pool:"):
            raise ValueError(f"a load-balanced view is a pool, `pool:NAME`; not {target!r}")
        super().__init__(client, target, **options)
        self._single = True

    def __repr__(self) -> str:
        return f"<LoadBalancedView {self.target!r} of {self.client.name}>"

    def map(
        self,
        f: Callable,
        *iterables: Iterable[Any],
        block: Optional[bool] = None,
        timeout: Optional[float] = None,
        in_flight: Optional[int] = None,
    ):
        """`f(*args)` for each tuple of arguments from `iterables` (as `map`), each on one
        member: the results, in order. Ships `f`'s source as `apply` does. At most
        `in_flight` tasks wait at once (default: 32 per online member), so no member is
        handed more than it can queue. `block=False` returns a `MapResult` (`get()`,
        `ready()`, `abort()`, awaitable)."""
        name, source = _function_source(f)
        if not iterables:
            raise TypeError("map needs at least one iterable of arguments")
        columns = [list(it) for it in iterables]
        if len({len(c) for c in columns}) > 1:
            # As IPython Parallel's map: a silently shorter result would hide a mistake.
            raise ValueError(f"the iterables have different lengths: {[len(c) for c in columns]}")
        calls = [list(args) for args in zip(*columns)]
        for n, args in enumerate(calls):
            for i, a in enumerate(args):
                _check_json(a, f"argument {i + 1} of {name}() in task {n}")
        if in_flight is not None and in_flight < 1:
            raise ValueError("in_flight must be at least 1")
        if not calls:
            empty = MapResult(_Done('{"outcomes": [], "error": null}'), self.target)
            return [] if (self.block if block is None else block) else empty
        members = len(self.targets)
        if members == 0:
            raise NoTarget(f"no member of {self.target} is online", kind="NoTarget")
        limit = in_flight or 32 * members
        ttl = self.ttl if self.ttl is not None else self.client.ttl
        pending = self.client._core.submit_map(
            self.target, name, source, json.dumps(calls), self._timeout(timeout), limit, ttl
        )
        result = MapResult(pending, self.target)
        if not (self.block if block is None else block):
            return result
        try:
            return result.get()
        except KeyboardInterrupt:  # Ctrl-C: no more tasks go out
            result.abort()
            raise


class MapResult:
    """`LoadBalancedView.map(..., block=False)`: the tasks go out from Rust as room frees up
    (at most `in_flight` at once); `get()` gives the results in order."""

    def __init__(self, pending: "_plastic.Pending", target: str) -> None:
        self._pending = pending
        self._target = target

    def ready(self) -> bool:
        return self._pending.done()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._pending.wait(timeout)

    @property
    def elapsed(self) -> float:
        """Seconds from the first task sent until the last result (or until now)."""
        return self._pending.elapsed

    @property
    def outcomes(self) -> List[dict]:
        """Each task's outcome, in order: `node` (the member that ran it), `ok`, `result`,
        `error`..."""
        text = self._pending.result()
        if text is None:
            raise Timeout("the map is not done yet", kind="Timeout")
        return json.loads(text).get("outcomes", [])

    def get(self, timeout: Optional[float] = None) -> List[Any]:
        """The results in order; raises the first failed task's error (`RemoteError`,
        `NodeLost`, `Timeout`...) with `task` set to its index."""
        if not self._pending.wait(timeout):
            raise Timeout(f"map on {self._target} not done within {timeout} s (it goes on)", kind="Timeout")
        parsed = json.loads(self._pending.result())
        if parsed.get("cancelled"):
            raise PlasticError("stopped: no more tasks were sent", kind="Cancelled")
        out = []
        for i, o in enumerate(parsed["outcomes"]):
            if not o or not o.get("ok"):
                o = o or {"node": None, "error": {"kind": "Cancelled", "message": "not sent"}}
                e = _error(o["node"], o["error"] or {})
                e.task = i
                raise e
            out.append(_value(o))
        return out

    def abort(self) -> None:
        """Sends no more tasks and stops waiting; tasks already sent run to their end."""
        self._pending.cancel()

    def __await__(self):
        return _future_of(self._pending, self.get).__await__()


class _Done:
    """A finished request, in the shape of `_plastic.Pending`."""

    __slots__ = ("_text",)

    def __init__(self, text: Union[str, dict]) -> None:
        self._text = text

    def done(self) -> bool:
        return True

    def result(self) -> Union[str, dict]:
        return self._text

    def wait(self, timeout: Optional[float] = None) -> bool:
        return True

    def cancel(self) -> bool:
        return False

    def add_done_callback(self, callback: Callable[[], None]) -> None:
        callback()

    elapsed = 0.0


# --- the client ------------------------------------------------------------------------------


def _home() -> Path:
    home = os.environ.get("PLASTIC_HOME")
    return Path(home) if home else Path.home() / ".plastic"


class Client:
    """A connection to the fleet's broker, named `py-xxxxxxxx` (or `USER.xxxxxxxx` when the
    broker URL has a user). Defaults as the CLI: `PLASTIC_BROKER` (else
    mqtt://127.0.0.1:1883), `PLASTIC_PREFIX`, `PLASTIC_CA` (else `$PLASTIC_HOME/ca.pem` if
    present), `PLASTIC_KEYS` (else `$PLASTIC_HOME/keys`), `PLASTIC_TTL`."""

    _last: Optional["Client"] = None

    def __init__(
        self,
        broker: Optional[str] = None,
        *,
        prefix: Optional[str] = None,
        ca: Union[str, os.PathLike, None] = None,
        keys: Union[str, os.PathLike, None] = None,
        timeout: float = 10.0,
        ttl: Optional[float] = None,
        connect_timeout: float = 10.0,
    ) -> None:
        broker = broker or os.environ.get("PLASTIC_BROKER") or DEFAULT_BROKER
        prefix = prefix or os.environ.get("PLASTIC_PREFIX") or "plastic"
        if ca is None:
            ca = os.environ.get("PLASTIC_CA") or None
            default_ca = _home() / "ca.pem"
            if ca is None and default_ca.exists():
                ca = default_ca
        if keys is None:
            keys = os.environ.get("PLASTIC_KEYS") or (_home() / "keys")
        if ttl is None and os.environ.get("PLASTIC_TTL"):
            ttl = float(os.environ["PLASTIC_TTL"])
        self.timeout = float(timeout)
        self.ttl = ttl
        self.prefix = prefix
        try:
            self._core = _plastic.Core.connect(
                broker,
                prefix,
                "py",
                None if ca is None else str(ca),
                None if keys is None else str(keys),
                float(connect_timeout),
            )
        except ConnectionError as e:
            raise Disconnected(str(e), kind="Unreachable") from None
        Client._last = self

    @property
    def name(self) -> str:
        """This client's name on the fleet."""
        return self._core.name

    @property
    def broker(self) -> str:
        """The broker's URL (without the password)."""
        return self._core.broker

    def nodes(self, timeout: Optional[float] = None) -> List[dict]:
        """Every node the broker holds a presence for, in name order: `name`, `state`
        (`online`, `offline`, `lost`), `platform`, `version`, `address`, `groups`, `since`
        (seconds since the epoch)."""
        return json.loads(self._core.nodes(float(timeout or self.timeout)))

    def view(self, target: str, **options: Any) -> View:
        """A View of TARGET (a `LoadBalancedView` for `pool:NAME`); options: `block`,
        `timeout`, `ttl`."""
        if target.strip().startswith("pool:"):
            return LoadBalancedView(self, target.strip(), **options)
        return View(self, target, **options)

    def load_balanced_view(self, pool: str, **options: Any) -> LoadBalancedView:
        """A LoadBalancedView of a pool (`"pool:NAME"`, or just `"NAME"`): each request to
        one member. Options as `view`."""
        pool = pool.strip()
        target = pool if pool.startswith("pool:") else f"pool:{pool}"
        return LoadBalancedView(self, target, **options)

    def __getitem__(self, key: Union[str, slice, Iterable[str]]) -> View:
        if isinstance(key, slice):
            if key == slice(None):
                return View(self, "all")
            raise TypeError("a client is indexed by node names; c[:] is every node")
        if isinstance(key, str):
            return self.view(key)
        names = list(key)
        if not names or not all(isinstance(n, str) for n in names):
            raise TypeError("index a client by a TARGET string or a list of node names")
        return View(self, ",".join(names))

    def close(self) -> None:
        """Disconnects (also at exit)."""
        self._core.close()

    @property
    def closed(self) -> bool:
        return self._core.closed

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<plastic.Client {self.name} on {self.broker}>"


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext plastic`: the `%plastic`, `%%plastic` and `%plastic_target` magics."""
    from ._magics import PlasticMagics

    ipython.register_magics(PlasticMagics)
