# Rarely used code, loaded for each use and dropped again (LEAN; docs/agent.md, "Memory"):
# starting the agent, connecting, its own presence coming back, payloads too large to take,
# `function` requests. Nothing here may outlive the call (a kept function would keep it all).
import gc, sys, os, time, socket, select, struct, builtins
from binascii import hexlify
import pproto as P
from pproto import PErr
import phw, pagent
from pagent import _cfg, _print
from micropython import const

_TMO = const(10000)  # ms for TCP, then for TLS and CONNACK (as pmqtt)


def init(a, cfg):
    name = _cfg(cfg, 'NODE_NAME', '') or '%s-%s' % (phw.PLATFORM, hexlify(phw.uid()).decode())
    if not P.name_ok(name):
        raise ValueError('bad NODE_NAME %r' % name)
    a.name = name
    a.pre = pre = _cfg(cfg, 'TOPIC_PREFIX', 'plastic')
    a.t_status = pre + '/' + name + '/status'
    a.t_log = pre + '/' + name + '/log'
    a.groups = [P.check_name(g, 'group') for g in _cfg(cfg, 'GROUPS', [])]
    a.ns = {'__name__': '__plastic__', 'print': a.print}
    a.cap = a.blinker = a.serve = a.exit = a.conn = None
    a.hooked = a.inside = False  # inside: a script's sleep is serving the node
    a.scripts = {}
    a.pending = {}
    a.queue = []
    a.pumping = a.peak = 0
    a.t0 = a.pinged = time.ticks_ms()
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
    a.recent = {}  # message_id -> None (running), True (done) or (topic, reply) to resend
    a.order = []
    a.dedup = _cfg(cfg, 'DEDUP', 16)
    a.keep = _cfg(cfg, 'DEDUP_REPLY_MAX', 320)
    a.sig = None
    key = _cfg(cfg, 'NODE_KEY', '')
    if key:  # signed requests only (docs/protocol.md, "Signed requests")
        import psign
        psign.init(key, _cfg(cfg, 'MAX_SKEW', 120), a.t0)
        a.sig = psign
        a.ots = []  # the time stamps of a.order's ids, for the replay floor
    a.version = pagent.VERSION
    a.boot = hexlify(os.urandom(4)).decode()  # new at every start: clients resend only while it holds
    from pmqtt import MQTT
    a.mq = m = MQTT(name, cfg.BROKER_HOST, _cfg(cfg, 'BROKER_PORT', 1883),
                    _cfg(cfg, 'BROKER_USER', ''), _cfg(cfg, 'BROKER_PASSWORD', ''),
                    _cfg(cfg, 'KEEPALIVE', 30), _cfg(cfg, 'CLEAN_SESSION', False))
    m.tls = _cfg(cfg, 'BROKER_TLS', False)
    m.ca = _cfg(cfg, 'BROKER_CA', '')
    m.on_msg = a.on_msg
    m.maxlen = _cfg(cfg, 'MAX_PAYLOAD', 0) or P.MAX_PAYLOAD
    pagent.agent = a
    t = pagent._Time()
    for k in dir(time):
        setattr(t, k, getattr(time, k))
    t.sleep = a.sleep
    t.sleep_ms = a.nap
    sys.modules['time'] = t
    try:
        phw.machine.reset_hook = a.reset
    except Exception:
        pass


def room(a):
    """The largest payload we can take now: one block for its bytes (the largest we can
    allocate, found by trying) and a third of the free heap for what parsing it makes."""
    gc.collect()
    lo, hi = 0, min(a.mq.maxlen, gc.mem_free() // 3)
    while hi - lo > 64:
        m = (lo + hi) // 2
        try:
            bytearray(m)
            lo = m
        except MemoryError:
            hi = m
        gc.collect()
    return lo


def connect(a):
    """The connection's first steps: the receive buffer (once), CONNECT with the will,
    subscriptions, `online`, then our own status topic."""
    cfg, m = a.cfg, a.mq
    if m.rx is None:  # reserved once, while the heap is still in one piece
        r = _cfg(cfg, 'RX_BUFFER', None)
        if r is None:  # a sixteenth of the heap, at least 2 KB (a 1.2 KB file chunk and its envelope)
            gc.collect()
            r = max(min(gc.mem_free() + gc.mem_alloc(), 131072) // 16, 2048)
        if r:
            m.rx = m.junk = bytearray(min(r, room(a)))  # (320 bytes of junk less)
            m.hi = len(m.rx)  # blanked before its first use
    gc.collect()
    mq_connect(m, a.t_status, a.presence('lost'))
    ts = [a.pre + '/' + a.name + '/in', a.pre + '/all/in']
    for g in a.groups:
        ts.append(a.pre + '/group/' + g + '/in')
    subscribe(m, ts, 1)
    ts = None
    m.publish(a.t_status, a.presence('online'), 1, True)
    # our own presence, after our online: what the broker shows from now on is news
    # (QoS 0: nothing is queued for us while away, and our last offline is not kept)
    subscribe(m, (a.t_status,), 0)


def _str(s):
    if isinstance(s, str):
        s = s.encode()
    return struct.pack('!H', len(s)) + s


def subscribe(m, topics, qos):
    p = bytearray(struct.pack('!H', m._next_pid()))
    for t in topics:
        p += _str(t)
        p.append(qos)
    m._send(0x82, p)


def mq_connect(m, will_topic, will_msg):
    m.close()
    ai = socket.getaddrinfo(m.host, m.port, 0, socket.SOCK_STREAM)[0]
    s = socket.socket(ai[0], socket.SOCK_STREAM)
    m.sock = s
    try:  # Nagle costs ~40-200 ms per QoS 1 round trip
        s.setsockopt(getattr(socket, 'IPPROTO_TCP', 6), getattr(socket, 'TCP_NODELAY', 1), 1)
    except Exception:
        pass
    # TCP within _TMO, then TLS and CONNACK within _TMO; waits feed the watchdog
    s.setblocking(False)
    m.po = select.poll()
    m.po.register(s, select.POLLIN)
    m.dl = time.ticks_add(time.ticks_ms(), _TMO)
    try:
        s.connect(ai[-1])
    except OSError as e:
        if e.args[0] not in (115, 119):  # EINPROGRESS (unix, lwIP)
            raise
        m._wait(select.POLLOUT)
    m.dl = time.ticks_add(time.ticks_ms(), _TMO)
    if m.tls:
        import ptls
        s = m.sock = ptls.wrap(s, m.host, m.ca)
        s.setblocking(False)
        m.po = select.poll()
        m.po.register(s, select.POLLIN)
    flags = 0x02 if m.clean else 0
    p = bytearray(b'\x00\x04MQTT\x04\x00\x00\x00')
    p[8], p[9] = m.ka >> 8, m.ka & 0xFF
    p += _str(m.cid)
    if will_topic:
        flags |= 0x04 | 0x08 | 0x20  # will, QoS 1, retained
        p += _str(will_topic) + _str(will_msg)
    if m.user:
        flags |= 0x80
        p += _str(m.user)
        if m.pw:
            flags |= 0x40
            p += _str(m.pw)
    p[7] = flags
    m._send(0x10, p)
    p = None
    if m._byte() != 0x20 or m._rlen() != 2:
        raise OSError(71)
    m._u16()
    if m.b2[1]:
        raise OSError(111, 'CONNACK %d' % m.b2[1])
    m.dl = None
    import asyncio
    m.rd = asyncio.StreamReader(s)
    m.last_rx = time.ticks_ms()


def field(b, k):
    """The plain string value of "k" in a JSON fragment, or None (for too-large payloads)."""
    i = b.find(b'"' + k + b'"')
    if i < 0:
        return None
    i = b.find(b'"', i + len(k) + 2)
    j = b.find(b'"', i + 1)
    if i < 0 or j < 0 or j - i > 65 or b.find(b':', i - 8 if i > 8 else 0, i) < 0:
        return None
    try:
        return b[i + 1:j].decode()
    except Exception:
        return None


def status(a, data):
    """Our own presence came back (docs/protocol.md, "Presence"): a state other than online,
    while we are connected, is a will the broker published late; say online again."""
    s = data and field(data, b'state')
    if s and s != 'online':
        _print('[plastic] presence says %s: online again' % s)
        a.pub(a.t_status, a.presence('online'), 1, True)


def too_big(a, ends, n, mem):
    """Answers a payload too big to handle, if its first/last bytes name a sender."""
    if mem:
        msg = 'no memory to parse a %d-byte payload (%d bytes free)' % (n, gc.mem_free())
    else:
        msg = 'payload of %d bytes refused unread (limit %d bytes; the largest free block is smaller)' % (
            n, a.mq.maxlen)
    e = PErr('PayloadTooLarge', msg)
    if type(ends) is memoryview:  # (the small ends kept in pmqtt's own buffer)
        ends = bytes(ends)
    rt = field(ends, b'reply_to') or field(ends, b'sender')
    if P.name_ok(rt):
        a.reply(rt, field(ends, b'message_id') or '', False, None, pagent.err(e))
    else:
        a.log_err(e.kind, msg)


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
