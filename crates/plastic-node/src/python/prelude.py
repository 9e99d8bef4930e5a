# MicroPython-compatible modules for scripts on a Rust node: machine, time, json, plastic.
# Runs once per interpreter, before any user code. `_plastic_node` is the native bridge
# (python/native.rs); everything a script can block in calls `_n.check()` or `_n.sleep()`,
# which is where `stop` reaches a running script.
import sys
import _thread
import _plastic_node as _n

# Uploaded modules are replaced within the same second with the same size often enough that
# mtime-based .pyc caches would serve stale code; compile from source every time.
sys.dont_write_bytecode = True

# Deep nesting must be refused before RustPython's recursive compiler overflows a stack (see
# python/nesting.rs): route Python's compile/eval/exec through the check. Threads Python
# starts get the stack the check assumes for the engine and script threads.
import builtins as _builtins

for _name in ("compile", "eval", "exec"):
    setattr(_n, "_builtin_" + _name, getattr(_builtins, _name))
    setattr(_builtins, _name, getattr(_n, "guarded_" + _name))
_thread.stack_size(16 * 1024 * 1024)


def _module(name, attrs):
    mod = type(sys)(name)
    for k, v in attrs.items():
        setattr(mod, k, v)
    sys.modules[name] = mod
    return mod


class ScriptStopped(BaseException):
    """Raised inside a script when `stop` asks it to end. Not an Exception, so a script's
    `except Exception:` does not swallow it."""


def _check():
    if _n.check():
        raise ScriptStopped()


# ---- sys.stdout: captured per request, or sent to the log topic from scripts ----
class _Out:
    def write(self, s):
        _n.write(str(s))
        return len(s)

    def flush(self):
        pass


sys.stdout = _Out()
sys.stderr = sys.stdout

# ---- time (MicroPython's utime, on top of the host's time) ----
_host_time = __import__("time")


def _sleep(seconds):
    if _n.sleep(float(seconds)):
        raise ScriptStopped()


def _ticks_ms():
    return _n.ticks_ms()


_TICKS_PERIOD = 1 << 30


def _ticks_diff(a, b):
    return ((a - b + _TICKS_PERIOD // 2) % _TICKS_PERIOD) - _TICKS_PERIOD // 2


_time_attrs = {k: getattr(_host_time, k) for k in dir(_host_time) if not k.startswith("__")}
_time_attrs.update(
    sleep=_sleep,
    sleep_ms=lambda ms: _sleep(ms / 1000),
    sleep_us=lambda us: _sleep(us / 1_000_000),
    ticks_ms=_ticks_ms,
    ticks_us=lambda: _n.ticks_ms() * 1000,
    ticks_cpu=lambda: _n.ticks_ms() * 1000,
    ticks_diff=_ticks_diff,
    ticks_add=lambda t, d: (t + d) % _TICKS_PERIOD,
)
_module("time", _time_attrs)
sys.modules["utime"] = sys.modules["time"]


# ---- asyncio: enough of MicroPython's asyncio for `async def main()` scripts ----
# A script runs on a thread of its own here, so the loop simply sleeps (in `_sleep`, where
# `stop` reaches it) until the next task is due.
class _Delay:
    def __init__(self, seconds):
        self.seconds = seconds

    def __await__(self):
        yield self.seconds


class CancelledError(BaseException):
    pass


_PARK = object()  # yielded by a task that waits for another task: not rescheduled


class Task:
    def __init__(self, coro, loop):
        self.coro = coro
        self.loop = loop
        self.done = False
        self.result = None
        self.error = None
        self.waiters = []

    def _finish(self, result=None, error=None):
        self.done, self.result, self.error = True, result, error
        for waiter in self.waiters:
            self.loop.schedule(waiter, 0)
        self.waiters = []

    def cancel(self):
        if not self.done:
            self.coro.close()
            self._finish(error=CancelledError())
        return True

    def __await__(self):
        if not self.done:
            self.waiters.append(self.loop.current)
            yield _PARK
        if self.error is not None:
            raise self.error
        return self.result


class _Loop:
    def __init__(self):
        self.queue = []  # (due, seq, task)
        self.seq = 0
        self.current = None

    def schedule(self, task, due):
        self.seq += 1
        self.queue.append((due, self.seq, task))

    def run_until(self, main):
        clock = _host_time.monotonic
        while not main.done:
            _check()
            if not self.queue:
                raise RuntimeError("asyncio: every task is waiting for another; nothing can run")
            self.queue.sort(key=lambda e: (e[0], e[1]))
            due, _, task = self.queue.pop(0)
            wait = due - clock()
            if wait > 0:
                _sleep(wait)
            if task.done:
                continue
            self.current = task
            try:
                delay = task.coro.send(None)
                if delay is not _PARK:
                    self.schedule(task, clock() + (delay or 0))
            except StopIteration as e:
                task._finish(result=e.value)
            except BaseException as e:
                task._finish(error=e)
                if task is main or isinstance(e, ScriptStopped):
                    raise
                print("Task exception:", repr(e))
            finally:
                self.current = None
        if main.error is not None:
            raise main.error
        return main.result


# One loop per script thread: several scripts may run `asyncio` at once.
_loops = {}
_ran_main = {}  # thread id -> this script called asyncio.run itself


def _current_loop():
    loop = _loops.get(_thread.get_ident())
    if loop is None:
        raise RuntimeError("no running event loop")
    return loop


def _create_task(coro):
    loop = _current_loop()
    task = Task(coro, loop)
    loop.schedule(task, 0)
    return task


def _run(coro):
    tid = _thread.get_ident()
    _ran_main[tid] = True
    outer = _loops.get(tid)
    loop = _loops[tid] = _Loop()
    try:
        main = Task(coro, loop)
        loop.schedule(main, 0)
        return loop.run_until(main)
    finally:
        if outer is None:
            del _loops[tid]
        else:
            _loops[tid] = outer


async def _gather(*aws, return_exceptions=False):
    tasks = [a if isinstance(a, Task) else _create_task(a) for a in aws]
    out = []
    for t in tasks:
        try:
            out.append(await t)
        except Exception as e:
            if not return_exceptions:
                raise
            out.append(e)
    return out


async def _wait_for(aw, timeout):
    task = aw if isinstance(aw, Task) else _create_task(aw)
    end = _host_time.monotonic() + timeout
    while not task.done:
        left = end - _host_time.monotonic()
        if left <= 0:
            task.cancel()
            raise TimeoutError()
        await _Delay(min(left, 0.01))
    return await task


_module(
    "asyncio",
    dict(
        sleep=lambda s: _Delay(s),
        sleep_ms=lambda ms: _Delay(ms / 1000),
        run=_run,
        create_task=_create_task,
        gather=_gather,
        wait_for=_wait_for,
        Task=Task,
        CancelledError=CancelledError,
    ),
)
sys.modules["uasyncio"] = sys.modules["asyncio"]


_n.ScriptStopped = ScriptStopped


def _begin_script():
    # Thread ids are reused: forget what an earlier script on this id did.
    _ran_main.pop(_thread.get_ident(), None)
    sys.settrace(_n.stop_tracer)


def _drive_main(namespace):
    # The portable form of an async script, as on the MicroPython agent: define
    # `async def main()` and the node runs it. A script that called asyncio.run itself is done.
    main = namespace.get("main")
    code = getattr(main, "__code__", None)
    ran = _ran_main.pop(_thread.get_ident(), False)
    if code is not None and code.co_flags & 0x80 and not ran:
        _run(main())


_n.begin_script = _begin_script
_n.drive_main = _drive_main


# ---- machine ----
class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_RISING = 1
    IRQ_FALLING = 2

    def __init__(self, id, mode=-1, pull=-1, value=None):
        _check()
        _n.pin_read(id)  # raises ValueError for a pin this node does not have
        self._id = id
        if value is not None:
            self.value(value)

    def init(self, mode=-1, pull=-1, value=None):
        if value is not None:
            self.value(value)

    def value(self, v=None):
        _check()
        if v is None:
            return _n.pin_read(self._id)
        _n.pin_write(self._id, 1 if v else 0)

    __call__ = value

    def on(self):
        self.value(1)

    def off(self):
        self.value(0)

    def __repr__(self):
        return "Pin(%d)" % self._id


class WDT:
    """The Rust node has no hardware watchdog; scripts that arm one still run."""

    def __init__(self, id=0, timeout=5000):
        self.timeout = timeout

    def feed(self):
        _check()


def _reset():
    _n.reset()
    raise ScriptStopped()


_module(
    "machine",
    dict(
        Pin=Pin,
        WDT=WDT,
        unique_id=_n.unique_id,
        reset=_reset,
        soft_reset=_reset,
        freq=lambda *a: 160000000,
        idle=_check,
    ),
)


# ---- json: Python's own (the frozen standard library), nesting bounded ----
# Its pure-Python encoder and decoder recurse once per level without reaching the recursion
# limit first (generators), and a stack overflow aborts the whole node: so nesting is checked
# without recursion before they run. Plain `loads` takes the native parser (fast, bounded).
import json as _json

_JSON_DEPTH = 200
_py_dump, _py_dumps, _py_loads = _json.dump, _json.dumps, _json.loads


def _too_deep(what):
    return RecursionError("%s nested more than %d levels deep" % (what, _JSON_DEPTH))


def _check_depth(obj):
    todo = [(obj, 1)]
    while todo:
        o, d = todo.pop()
        if isinstance(o, (list, tuple, dict)):
            if d > _JSON_DEPTH:
                raise _too_deep("object")
            todo.extend((v, d + 1) for v in (o.values() if isinstance(o, dict) else o))


def _dumps(obj, *args, **kw):
    _check_depth(obj)
    return _py_dumps(obj, *args, **kw)


def _dump(obj, fp, *args, **kw):
    _check_depth(obj)
    return _py_dump(obj, fp, *args, **kw)


def _loads(s, *args, **kw):
    if not args and not kw:
        return _n.json_loads(s)
    text = s.decode() if isinstance(s, (bytes, bytearray)) else s
    depth = 0
    quoted = escaped = False
    for c in text:
        if quoted:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c in "[{":
            depth += 1
            if depth > _JSON_DEPTH:
                raise _too_deep("JSON text")
        elif c in "]}":
            depth -= 1
    return _py_loads(s, *args, **kw)


_json.dump, _json.dumps, _json.loads = _dump, _dumps, _loads
sys.modules["ujson"] = _json


# ---- plastic: node-to-node messaging ----
class RemoteError(Exception):
    """The other node answered with an error."""

    def __init__(self, kind, message, traceback=""):
        Exception.__init__(self, "%s: %s" % (kind, message))
        self.kind = kind
        self.message = message
        self.traceback = traceback


def _send(to, msg):
    _check()
    return _n.send(to, msg)


def _request(to, msg, timeout=5):
    _check()
    ok, value = _n.request(to, msg, float(timeout))
    if ok:
        return value
    kind, message, tb = value
    if kind == "Timeout":
        raise TimeoutError(message)
    raise RemoteError(kind, message, tb)


async def _arequest(to, msg, timeout=5):
    # A script has a thread of its own here, so waiting blocks only the script.
    return _request(to, msg, timeout)


def _publish(topic, data=None):
    _check()
    _n.publish(topic, data)


def _plastic_getattr(attr):
    # `plastic.name` is looked up per call: one interpreter may serve several simulated nodes.
    if attr == "name":
        return _n.name()
    raise AttributeError("module 'plastic' has no attribute '%s'" % attr)


_module(
    "plastic",
    dict(
        __getattr__=_plastic_getattr,
        send=_send,
        request=_request,
        arequest=_arequest,
        publish=_publish,
        RemoteError=RemoteError,
        ScriptStopped=ScriptStopped,
    ),
)
