# MicroPython-compatible modules for scripts on a Rust node: machine, time, json, plastic.
# Runs once per interpreter, before any user code. `_plastic_node` is the native bridge
# (python/native.rs); everything a script can block in calls `_n.check()` or `_n.sleep()`,
# which is where `stop` reaches a running script.
import sys
import _plastic_node as _n

# Uploaded modules are replaced within the same second with the same size often enough that
# mtime-based .pyc caches would serve stale code; compile from source every time.
sys.dont_write_bytecode = True


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


# ---- json ----
def _dumps(obj, separators=None, **_ignored):
    return _n.json_dumps(obj)


_module("json", dict(dumps=_dumps, loads=_n.json_loads))
sys.modules["ujson"] = sys.modules["json"]


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
    _n.send(to, msg)


def _request(to, msg, timeout=5):
    _check()
    ok, value = _n.request(to, msg, float(timeout))
    if ok:
        return value
    kind, message, tb = value
    if kind == "Timeout":
        raise TimeoutError(message)
    raise RemoteError(kind, message, tb)


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
        publish=_publish,
        RemoteError=RemoteError,
        ScriptStopped=ScriptStopped,
    ),
)
