# Rarely used code, loaded for each use and dropped again (LEAN; docs/agent.md, "Memory on a
# board"): starting the agent, its own presence coming back, `function` requests, replies written
# in pieces. (Connecting: pconn. Payloads too large to take are answered by pagent itself: no
# module to load when memory is short.) Nothing here may outlive the call: a function kept
# (a callback, a task) would keep the whole module loaded.
import gc, sys, os, time, builtins, io, json
from binascii import hexlify
import pproto as P
import phw, pagent
from pagent import _cfg, _print


def init(a, cfg):
    name = _cfg(cfg, 'NODE_NAME', '') or '%s-%s' % (phw.PLATFORM, hexlify(phw.uid()).decode())
    if not P.name_ok(name):
        raise ValueError('bad NODE_NAME %r' % name)
    a.name = name
    a.pre = pre = _cfg(cfg, 'TOPIC_PREFIX', 'plastic')
    a.t_status = pre + '/' + name + '/status'
    a.t_log = pre + '/' + name + '/log'
    a.groups = [_set_name(g, 'group') for g in _cfg(cfg, 'GROUPS', [])]
    g = _cfg(cfg, 'POOLS', ())
    a.pools = [_set_name(p, 'pool') for p in g] if g else ()  # (no list at all for none)
    a.tpool = pre + '/pool/'  # pools' topics start so (also a pool left in a kept session)
    a.ns = {'__name__': '__plastic__', 'print': a.print}
    a.cap = a.blinker = a.serve = a.exit = a.conn = None
    a.hooked = a.inside = False  # inside: a script's sleep is serving the node
    a.scripts = {}
    a.pending = {}
    a.queue = []
    a.pumping = a.peak = 0
    a.t0 = a.pinged = time.ticks_ms()
    a.up = 0  # whole hours moved out of t0 (Agent.uptime)
    a.bi = 0  # which of a BROKER_HOST list to connect to next (pconn.connect)
    a.wdt = a.halt = a.raw = a.napper = None  # raw: the content of the file chunk at hand
    led_low = _cfg(cfg, 'LED_ACTIVE_LOW', None)
    if led_low is None:
        led_low = phw.PLATFORM != 'esp32'
    a.led = phw.LED(_cfg(cfg, 'LED_PIN', 2), led_low)
    root = _cfg(cfg, 'ROOT', 'node')
    if root and root[0] != '/':
        root = os.getcwd().rstrip('/') + '/' + root
    try:
        os.mkdir(root)
    except OSError:
        pass
    if root not in sys.path:
        sys.path.append(root)
    a.root = root.rstrip('/')
    a.xfer = {}
    a.recent = {}  # message_id -> None (running), True (done), the reply to resend, False (aborted)
    a.order = []
    d = _cfg(cfg, 'DEDUP', None)
    if d is None:  # each remembered id costs ~0.4 KB with its kept reply: 8 on a small heap
        d = 16 if gc.mem_free() + gc.mem_alloc() >= 65536 else 8
    a.dedup = d
    a.keep = _cfg(cfg, 'DEDUP_REPLY_MAX', 320)
    a.sig = None
    a.say_bye = a.bye = None
    if _cfg(cfg, 'CTRL_C_GOODBYE', phw.SIM):  # the unix port: see pbye
        import pbye
        a.say_bye = pbye.say
    key = _cfg(cfg, 'NODE_KEY', '')
    if key:  # signed requests only (docs/protocol.md, "Signed requests")
        import psign
        psign.init(key, _cfg(cfg, 'MAX_SKEW', 120), a.t0)
        a.sig = psign
        a.ots = []  # the time stamps of a.order's ids, for the replay floor
    a.version = pagent.VERSION
    a.boot = hexlify(os.urandom(4)).decode()  # new at every start: clients resend only while it holds
    from pmqtt import MQTT
    a.mq = m = MQTT(name, '', 0,
                    _cfg(cfg, 'BROKER_USER', ''), _cfg(cfg, 'BROKER_PASSWORD', ''),
                    _cfg(cfg, 'KEEPALIVE', 30), _cfg(cfg, 'CLEAN_SESSION', False))
    m.tls = _cfg(cfg, 'BROKER_TLS', False)
    m.ca = _cfg(cfg, 'BROKER_CA', '')
    m.on_msg = a.on_msg
    m.maxlen = _cfg(cfg, 'MAX_PAYLOAD', 0) or P.MAX_PAYLOAD
    pagent.agent = a
    sys.modules['time'] = pagent._Time()
    try:
        phw.machine.reset_hook = a.reset
    except Exception:
        pass


def status(a, data):
    """Our own presence came back (docs/protocol.md, "Presence"): a state other than online,
    while we are connected, is a will the broker published late; say online again."""
    s = data and pagent._field(data, b'state')
    if s and s != 'online':
        _print('[plastic] presence says %s: online again' % s)
        a.pub(a.t_status, a.presence('online'), 1, True)


def taken(a, d):
    """A request came through a pool's topic (docs/protocol.md, "Pools"): before handling it,
    tell its sender that this node took it (when it has an id and an address)."""
    mid = d.get('message_id')
    rt = a.rt(d)
    if mid and isinstance(mid, str) and rt:
        try:
            a.pub(a.pre + '/' + rt + '/in', json.dumps({'type': 'taken', 'correlation_id': mid, 'sender': a.name,
                                                        'message_id': P.new_id(), 'time_stamp': P.now()}), 1)
        except OSError:  # the connection is gone: the request is not handled either
            a.raw = None
            raise


def _set_name(s, what):
    """A group's or pool's name: not a level of a node's own topics (docs/protocol.md)."""
    if s in ('in', 'status', 'log', 'events'):
        raise ValueError('%s %r: in, status, log and events cannot name a group or a pool' % (what, s))
    return P.check_name(s, what)


def apply(a, d):
    """`apply` (docs/protocol.md): the source defines the function in the node's namespace,
    then it is called with the request's arguments."""
    n = d['name']
    a.ns.pop(n, None)  # the source must define it: an older definition does not count
    exec(d['source'], a.ns)
    if n not in a.ns:
        raise NameError('the source does not define `%s`' % n)
    return a.ns[n](*(d.get('args') or ()), **(d.get('kwargs') or {}))


def function(a, d):
    f = d.get('function') or d.get('name')
    parts = f.split('.')
    o = a.ns.get(parts[0], a)
    if o is a:
        o = getattr(builtins, parts[0], a)
    if o is a:
        o = __import__(parts[0])
    mod = None
    for i in range(1, len(parts)):
        if type(o) is type(sys):
            mod = o
        try:
            o = getattr(o, parts[i])
        except AttributeError as e:
            if mod is not o:
                raise
            try:  # a submodule of a package
                __import__('.'.join(parts[:i + 1]))
            except ImportError:
                raise e
            o = getattr(o, parts[i])
    if mod is not None and not a.hooked:  # no builtins override: patch the module's print
        setattr(mod, 'print', a.print)
    try:
        return o(*(d.get('args') or ()), **(d.get('kwargs') or {}))
    finally:
        if mod is not None and not a.hooked:
            try:
                delattr(mod, 'print')
            except Exception:
                pass


class _W(io.IOBase):  # json.dump's stream: counts (w None), or writes through a 128-byte buffer
    def __init__(self, w):
        self.w = w
        self.n = self.k = 0
        self.b = bytearray(128) if w else None

    def write(self, s):  # s: a bytearray lent for this call (json.dump writes most characters singly)
        n = len(s)
        self.n += n
        w = self.w
        if w:
            k = self.k
            if k + n > 128:
                self.flush()
                k = 0
            if n == 1:
                self.b[k] = s[0]
                self.k = k + 1
            elif n > 128:
                w(s)
            else:
                memoryview(self.b)[k:k + n] = s
                self.k = k + n
        return n

    def flush(self):
        if self.k:
            self.w(memoryview(self.b)[:self.k])
            self.k = 0


def stream(a, t, r):
    """Publishes reply r when its text finds no block that large: json.dump counts its bytes,
    then writes it to the connection in pieces. Ends the connection if it fails half way."""
    c = _W(None)
    json.dump(r, c)
    w = _W(a.mq._w)
    try:
        a.mq.head(t, c.n, 1)
        json.dump(r, w)
        w.flush()
    except BaseException:  # the broker has a part of a packet: this connection is done
        a.mq.close()
        a.lost()
        raise OSError(104)
