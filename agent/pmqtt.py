# Small non-blocking MQTT 3.1.1 client for the plastic agent (QoS 0/1, keepalive, will, TLS).
# Reads: the first byte of a packet is awaited through asyncio; the rest of the packet is read
# synchronously with select.poll timeouts (packets arrive whole once they start). Writes are
# synchronous with poll, so any task (or a blocking script) can publish at any time.
import socket, select, time, asyncio, struct
from micropython import const

_TMO = const(10000)  # ms allowed for any single read/write step


class MQTT:
    def __init__(self, cid, host, port, user, pw, keepalive, clean):
        self.cid, self.host, self.port = cid, host, port
        self.user, self.pw, self.ka, self.clean = user, pw, keepalive, clean
        self.sock = self.rd = self.po = self.dl = None
        self.tls = False  # TLS to the broker; ca: PEM CA file to verify it with ('' = no check)
        self.ca = ''
        self.pid = 0
        self.last_rx = 0
        self.on_msg = None  # on_msg(topic, data, size[, ends]): data None = too big, ends = its first/last bytes
        self.maxlen = 262144
        self.mem_ok = None  # mem_ok(n) -> bool: may we allocate n bytes?
        self.b2 = bytearray(2)
        self.junk = bytearray(256)

    # ---- low level -------------------------------------------------------------------------
    def _wait(self, ev):
        self.po.modify(self.sock, ev)
        t = _TMO if self.dl is None else time.ticks_diff(self.dl, time.ticks_ms())
        if t <= 0 or not self.po.poll(t):
            raise OSError(110)  # ETIMEDOUT

    def _w(self, buf):
        mv = memoryview(buf)
        i, n = 0, len(buf)
        while i < n:
            try:
                w = self.sock.write(mv[i:])
            except OSError as e:
                if e.args[0] != 11:  # EAGAIN
                    raise
                w = None
            if w is None:
                self._wait(select.POLLOUT)
            elif w == 0:
                raise OSError(104)
            else:
                i += w

    def _into(self, buf, n):
        mv = memoryview(buf)
        i = 0
        while i < n:
            try:
                r = self.sock.readinto(mv[i:n])
            except OSError as e:
                if e.args[0] != 11:
                    raise
                r = None
            if r is None:
                self._wait(select.POLLIN)
            elif r == 0:
                raise OSError(104)  # peer closed
            else:
                i += r

    def _byte(self):
        self._into(self.b2, 1)
        return self.b2[0]

    def _u16(self):
        self._into(self.b2, 2)
        return self.b2[0] << 8 | self.b2[1]

    def _rlen(self):
        n = sh = 0
        while True:
            b = self._byte()
            n |= (b & 0x7F) << sh
            if not b & 0x80:
                return n
            sh += 7
            if sh > 21:
                raise OSError(71)  # EPROTO

    def _skip(self, n):
        j = self.junk
        while n > 0:
            k = n if n < 256 else 256
            self._into(j, k)
            n -= k

    @staticmethod
    def _hdr(t, n):
        h = bytearray(5)
        h[0] = t
        i = 1
        while True:
            b = n & 0x7F
            n >>= 7
            h[i] = b | (0x80 if n else 0)
            i += 1
            if not n:
                return h, i

    def _send(self, t, body):
        h, i = self._hdr(t, len(body))
        self._w(memoryview(h)[:i])
        if body:
            self._w(body)

    def _next_pid(self):
        self.pid = self.pid % 65535 + 1
        return self.pid

    # ---- connection ------------------------------------------------------------------------
    def connect(self, will_topic, will_msg):
        self.close()
        ai = socket.getaddrinfo(self.host, self.port, 0, socket.SOCK_STREAM)[0]
        s = socket.socket(ai[0], socket.SOCK_STREAM)
        self.sock = s
        try:  # Nagle costs ~40-200 ms per QoS 1 round trip
            s.setsockopt(getattr(socket, 'IPPROTO_TCP', 6), getattr(socket, 'TCP_NODELAY', 1), 1)
        except Exception:
            pass
        try:
            s.settimeout(_TMO // 1000)
        except Exception:
            pass
        s.connect(ai[-1])
        # from here on everything (TLS handshake, CONNACK) must be done within _TMO
        self.dl = time.ticks_add(time.ticks_ms(), _TMO)
        if self.tls:
            import ptls
            s = self.sock = ptls.wrap(s, self.host, self.ca)
        s.setblocking(False)
        self.po = select.poll()
        self.po.register(s, select.POLLIN)
        flags = 0x02 if self.clean else 0
        p = bytearray(b'\x00\x04MQTT\x04\x00\x00\x00')
        p[8], p[9] = self.ka >> 8, self.ka & 0xFF
        p += self._str(self.cid)
        if will_topic:
            flags |= 0x04 | 0x08 | 0x20  # will, QoS 1, retained
            p += self._str(will_topic) + self._str(will_msg)
        if self.user:
            flags |= 0x80
            p += self._str(self.user)
            if self.pw:
                flags |= 0x40
                p += self._str(self.pw)
        p[7] = flags
        self._send(0x10, p)
        p = None
        if self._byte() != 0x20 or self._rlen() != 2:
            raise OSError(71)
        self._u16()
        if self.b2[1]:
            raise OSError(111, 'CONNACK %d' % self.b2[1])
        self.dl = None
        self.rd = asyncio.StreamReader(s)
        self.last_rx = time.ticks_ms()

    @staticmethod
    def _str(s):
        if isinstance(s, str):
            s = s.encode()
        return struct.pack('!H', len(s)) + s

    def close(self):
        s, self.sock, self.rd, self.dl = self.sock, None, None, None
        if s:
            try:
                s.close()
            except Exception:
                pass

    def disconnect(self):
        """DISCONNECT, then reads (and drops) what still comes until the broker closes, for at
        most 500 ms: closing with unread input (the PUBACK of a last publish, its echo) makes
        Linux send RST, which can drop the DISCONNECT unread, and the broker publishes the will."""
        if self.sock:
            try:
                self._w(b'\xe0\x00')
                self.dl = time.ticks_add(time.ticks_ms(), 500)
                self._skip(0x3FFFFFFF)  # ends in OSError: the broker closed, or the deadline
            except Exception:
                pass
        self.close()

    # ---- operations ------------------------------------------------------------------------
    def publish(self, topic, msg, qos=0, retain=False):
        if self.sock is None:
            raise OSError(107)  # ENOTCONN
        if isinstance(msg, str):
            msg = msg.encode()
        t = topic.encode()
        n = 2 + len(t) + len(msg) + (2 if qos else 0)
        h, i = self._hdr(0x30 | qos << 1 | (1 if retain else 0), n)
        self._w(memoryview(h)[:i])
        self._w(struct.pack('!H', len(t)))
        self._w(t)
        if qos:
            self._w(struct.pack('!H', self._next_pid()))
        self._w(msg)

    def subscribe(self, topics, qos=1):
        p = bytearray(struct.pack('!H', self._next_pid()))
        for t in topics:
            p += self._str(t)
            p.append(qos)
        self._send(0x82, p)

    def ping(self):
        self._w(b'\xc0\x00')

    # ---- reading ---------------------------------------------------------------------------
    async def read(self):
        """Waits for the next packet and handles it (publishes go to on_msg)."""
        b = await self.rd.read(1)
        if not b:
            raise OSError(104)
        self._packet(b[0])

    def pump(self, ms):
        """Synchronously handles at most one packet arriving within ms (for blocking callers)."""
        if self.sock is None:
            raise OSError(107)
        self.po.modify(self.sock, select.POLLIN)
        if self.po.poll(ms):
            try:
                r = self.sock.readinto(self.b2, 1)
            except OSError as e:
                if e.args[0] != 11:
                    raise
                return
            if r == 0:
                raise OSError(104)
            if r:
                self._packet(self.b2[0])

    def _packet(self, h):
        n = self._rlen()
        self.last_rx = time.ticks_ms()
        t = h & 0xF0
        if t == 0x30:
            tl = self._u16()
            tb = bytearray(tl)
            self._into(tb, tl)
            n -= tl + 2
            if h & 6:
                pid = self._u16()
                n -= 2
                if h & 6 == 2:
                    self._w(b'\x40\x02' + struct.pack('!H', pid))  # PUBACK before handling
                else:
                    self._w(b'\x50\x02' + struct.pack('!H', pid))  # PUBREC (QoS 2, not subscribed)
            topic = tb.decode()
            tb = None
            if n > self.maxlen or (self.mem_ok and not self.mem_ok(n)):
                # refused unread; its first and last bytes may still say whom to answer
                k = min(n, 160)
                head = bytearray(k)
                self._into(head, k)
                m = n - k
                if m > 512:
                    self._skip(m - 512)
                    m = 512
                tail = bytearray(m)
                self._into(tail, m)
                self.on_msg(topic, None, n, head + tail)
            else:
                try:
                    data = bytearray(n)
                except MemoryError:  # fragmented heap: drop it, keep the stream in step
                    self._skip(n)
                    self.on_msg(topic, None, n, b'')
                    return
                self._into(data, n)
                self.on_msg(topic, data, n)
        elif t == 0x60:  # PUBREL -> PUBCOMP
            pid = self._u16()
            self._w(b'\x70\x02' + struct.pack('!H', pid))
        else:  # CONNACK, PUBACK, SUBACK, UNSUBACK, PINGRESP: nothing to do
            self._skip(n)
