# The unix port's goodbye that needs no heap. Its Ctrl-C is raised from the SIGINT handler
# wherever the interpreter is (MICROPY_ASYNC_KBD_INTR), even half way through a garbage
# collection: that collection's "collecting" flag then locks the heap for good (only the end of
# a collection clears it, and a new one would free live objects: its marks are stale). So the
# `offline` presence and the DISCONNECT are built at each connection, and written at Ctrl-C with
# small integers and bytearray stores only. Boards never load this: their Ctrl-C is a pending
# exception raised between two bytecodes (pagent.run says goodbye the usual way).
import json
from pmqtt import MQTT, time  # the real time: scripts' `time` (pagent._Time) serves MQTT in its sleeps

_W = 14  # the `since` field as written: 10 digits of seconds, '.', 3 of milliseconds
_M = 10000000  # milliseconds split in two small ints (a 32-bit small int ends near 1.07e9)


def build(a):
    """The PUBLISH (retained, QoS 0) of `offline` with `since` to be filled, then DISCONNECT.
    Sets a.bye (None: no goodbye possible, e.g. a clock before 2001)."""
    a.bye = None
    ms = int(time.time() * 1000)  # the unix port's clock is the host's (pproto.now)
    if ms < 10 ** 12:
        return
    p = json.loads(a.presence('offline'))
    p['since'] = 0  # placeholder: 1 digit, widened below
    s = json.dumps(p).replace('"since": 0', '"since": ' + '0' * _W)
    t, body = a.t_status.encode(), s.encode()
    h, i = MQTT._hdr(0x31, 2 + len(t) + len(body))
    b = bytearray(h[:i]) + bytearray((len(t) >> 8, len(t) & 255)) + t + body + b'\xe0\x00'
    a.bye_at = len(b) - 2 - len(body) + body.find(b'"since": 0') + 9
    a.bye_hi, a.bye_lo, a.bye_t = ms // _M, ms % _M, time.ticks_ms()
    a.bye = b


def rebase(a):
    """Sets the clock base again (ticks_ms wraps every 12.4 days; ticks_diff is right
    within half of that): the agent calls it with each keepalive."""
    if a.bye is not None:
        ms = int(time.time() * 1000)
        a.bye_hi, a.bye_lo, a.bye_t = ms // _M, ms % _M, time.ticks_ms()


def _digits(b, j, v, n):  # writes v's last n decimal digits ending at b[j]
    while n:
        b[j] = 48 + v % 10
        v //= 10
        j -= 1
        n -= 1


def say(a):
    """Writes the goodbye built for this connection, without allocating; then reads what
    still comes (closing with unread input would send RST, and the broker could drop the
    DISCONNECT unread and publish the will) for at most 500 ms, and closes."""
    b, s = a.bye, a.mq.sock
    if b is None or s is None:
        return
    lo = a.bye_lo + time.ticks_diff(time.ticks_ms(), a.bye_t)
    hi = a.bye_hi + lo // _M
    lo %= _M
    i = a.bye_at
    _digits(b, i + 13, lo % 1000, 3)
    _digits(b, i + 9, lo // 1000, 4)
    _digits(b, i + 5, hi, 6)
    b[i + 10] = 46  # '.'
    try:
        k = w = 0
        while k < 100:
            w = s.write(b)
            if w is not None:
                break
            time.sleep_ms(1)  # (the send buffer is full)
            k += 1
        if w != len(b):
            return  # nothing, or a part (the rest would need a slice): the broker says lost
        end = time.ticks_add(time.ticks_ms(), 500)
        while time.ticks_diff(end, time.ticks_ms()) > 0:
            r = s.readinto(a.mq.junk)
            if r == 0:
                break  # the broker closed the connection: it has read the DISCONNECT
            if r is None:
                time.sleep_ms(2)
    except Exception:
        pass
    finally:
        s.close()
