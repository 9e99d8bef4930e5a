# Connecting (loaded for each connection and dropped again, LEAN): the receive buffer (once),
# CONNECT with the will, the subscriptions (pools' shared ones too), `online`. Small, so that it loads in a tight heap.
import gc, time, socket, select, struct
from micropython import const
from pagent import _cfg

_TMO = const(10000)  # ms for TCP, then for TLS and CONNACK (as pmqtt)


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
            m.rx = b = bytearray(min(r, room(a)))
            m.hi = len(b)  # blanked before its first use
            if len(b) >= 320:
                m.junk = b  # (and 320 bytes of junk less)
    h = cfg.BROKER_HOST
    if not isinstance(h, str):  # the hubs of one cluster, each 'HOST' or 'HOST:PORT', in turn
        if not h:
            raise ValueError('BROKER_HOST is an empty list')
        h = h[a.bi % len(h)]
    m.port = _cfg(cfg, 'BROKER_PORT', 1883)
    if h.count(':') == 1:  # an IPv6 address (several colons) takes BROKER_PORT
        h, p = h.split(':')
        m.port = int(p)
    m.host = h
    gc.collect()
    mq_connect(m, a.t_status, a.presence('lost'))
    ts = [a.pre + '/' + a.name + '/in', a.pre + '/all/in']
    for g in a.groups:
        ts.append(a.pre + '/group/' + g + '/in')
    for g in a.pools:  # shared: the broker gives each request to one member
        ts.append('$share/plastic/' + a.pre + '/pool/' + g + '/in')
    subscribe(m, ts, 1)
    ts = None
    m.publish(a.t_status, a.presence('online'), 1, True)
    if a.say_bye:
        __import__('pbye').build(a)
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
    m.last_rx = time.ticks_ms()
