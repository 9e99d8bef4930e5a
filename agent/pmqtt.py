# Small non-blocking MQTT 3.1.1 client for the plastic agent (QoS 0/1, keepalive, will, TLS).
# Reads: the first byte of a packet is awaited through asyncio's poller (no Stream object); the
# rest of the packet is read synchronously with select.poll timeouts (packets arrive whole once
# they start). Writes are synchronous with poll, so any task (or a blocking script) can publish
# at any time.
import select, time, struct
from asyncio import core
from micropython import const

_TMO = const(10000)  # ms allowed for any single read/write step
_SP = b' ' * 32


class MQTT:
    def __init__(self, cid, host, port, user, pw, keepalive, clean):
        self.cid, self.host, self.port = cid, host, port
        self.user, self.pw, self.ka, self.clean = user, pw, keepalive, clean
        self.sock = self.po = self.dl = None
        self.tls = False  # TLS to the broker; ca: PEM CA file to verify it with ('' = no check)
        self.ca = ''
        self.pid = 0
        self.last_rx = 0
        self.on_msg = None  # on_msg(topic, data, size[, ends]): data None = too big, ends = its first/last bytes
        self.maxlen = 262144
        self.rx = None  # the receive buffer reserved by the agent: payloads up to its size always fit
        self.hi = 0  # how much of rx the last payload used
        self.b2 = bytearray(2)
        self.junk = bytearray(320)  # for bytes read to be dropped; the receive buffer once there is one
        self.feed = None  # called at least every second while a read/write waits (the watchdog)
        self.ret = 0  # the retain flag of the publish being handled

    # ---- low level -------------------------------------------------------------------------
    def _wait(self, ev):
        self.po.modify(self.sock, ev)
        end = time.ticks_add(time.ticks_ms(), _TMO) if self.dl is None else self.dl
        while True:
            t = time.ticks_diff(end, time.ticks_ms())
            if t <= 0:
                raise OSError(110)  # ETIMEDOUT
            if self.po.poll(t if t < 1000 else 1000):
                return
            if self.feed:
                self.feed()

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

    def _skip(self, n, j=None):
        j = j or self.junk
        if j is self.rx:  # (the receive buffer doubles as junk: blanked before its next use)
            self.hi = len(j)
        b = len(j)
        while n > 0:
            k = n if n < b else b
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

    # ---- connection (CONNECT and SUBSCRIBE: pcold.mq_connect, pcold.subscribe) ---------------
    def close(self):
        s, self.sock, self.dl = self.sock, None, None
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
        if isinstance(msg, str):
            msg = memoryview(msg)  # its UTF-8 bytes, not copied
        self.head(topic, len(msg), qos, retain)
        self._w(msg)

    def head(self, topic, n, qos=0, retain=False):
        """Starts a PUBLISH of n payload bytes; the caller writes them (_w)."""
        if self.sock is None:
            raise OSError(107)  # ENOTCONN
        t = memoryview(topic)
        h, i = self._hdr(0x30 | qos << 1 | (1 if retain else 0), 2 + len(t) + n + (2 if qos else 0))
        self._w(memoryview(h)[:i])
        self._w(struct.pack('!H', len(t)))
        self._w(t)
        if qos:
            self._w(struct.pack('!H', self._next_pid()))

    def ping(self):
        self._w(b'\xc0\x00')

    # ---- reading ---------------------------------------------------------------------------
    def read(self):  # async: awaited (a generator, like asyncio's own streams; no Stream object)
        """Waits for the next packet and handles it (publishes go to on_msg)."""
        yield core._io_queue.queue_read(self.sock)
        try:
            r = self.sock.readinto(self.b2, 1)
        except OSError as e:
            if e.args[0] != 11:
                raise
            return
        if r == 0:
            raise OSError(104)  # peer closed
        if r:
            self._packet(self.b2[0])

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
            tb = data = None
            self.ret = h & 1
            rx = self.rx
            if rx is not None and n <= len(rx):
                data = rx
            elif n <= self.maxlen:
                try:
                    data = bytearray(n)
                except MemoryError:  # no free block that large (a fragmented heap)
                    pass
            if data is None:
                # refused unread; its first and last bytes may still say whom to answer
                j = self.junk
                try:
                    k = min(n, 160)
                    m = min(n - k, 512)
                    head = bytearray(k + m)
                except MemoryError:  # no 672 bytes: smaller ends, kept in junk
                    k = min(n, 64)
                    m = min(n - k, 224)
                    head = memoryview(j)[:k + m]
                    if j is self.rx:
                        self.hi = len(j)  # blanked before its next use
                    j = memoryview(j)[288:]
                self._into(head, k)
                self._skip(n - k - m, j)
                self._into(memoryview(head)[k:], m)
                self.on_msg(topic, None, n, head)
            else:
                self._into(data, n)
                if data is rx:  # what the last payload left after n becomes JSON whitespace
                    mv = memoryview(rx)
                    i = n
                    while i < self.hi:
                        k = min(self.hi - i, 32)
                        mv[i:i + k] = _SP[:k]
                        i += k
                    self.hi = n
                self.on_msg(topic, data, n)
        elif t == 0x60:  # PUBREL -> PUBCOMP
            pid = self._u16()
            self._w(b'\x70\x02' + struct.pack('!H', pid))
        else:  # CONNACK, PUBACK, SUBACK, UNSUBACK, PINGRESP: nothing to do
            self._skip(n)
