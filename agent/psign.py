# Signed requests (docs/protocol.md, "Signed requests"): HMAC-SHA256 over a request's exact
# bytes with the node key. Imported only when config.NODE_KEY is set. MicroPython has no `hmac`
# module, so HMAC is done by hand; the padded inner and outer keys are made once, by init().
# Times are whole microseconds since the epoch (ints: exact on single-precision boards too).
import time, asyncio
from hashlib import sha256
from binascii import hexlify, unhexlify
from pproto import PErr, now

_ik = _ok = None
skew = t0 = floor = 0  # floor: the replay floor, the newest time_stamp among forgotten ids
boot = None  # when the agent started, once the clock is set
_US = 1000000


def init(key, max_skew, ticks0):
    global _ik, _ok, skew, t0, boot, floor
    try:
        k = unhexlify(key)
    except Exception:
        k = b''
    if len(k) != 32:
        raise ValueError('NODE_KEY must be 64 hex digits')
    _ik = bytes([c ^ 0x36 for c in k]) + b'\x36' * 32
    _ok = bytes([c ^ 0x5c for c in k]) + b'\x5c' * 32
    skew = int(max_skew * _US)
    t0 = ticks0
    boot = None
    floor = 0


def gate(a, d, b, e=None):
    """Before anything else (duplicates included): True when request d, payload b, may go on;
    else it is refused with an error reply and a log line, and nothing runs."""
    if (d.get('type') or d.get('message_type')) == 'result':
        d.pop('sig', None)  # replies are not signed
        return True
    try:
        d['sig'] = check(d, b, a.name, a.recent, e)  # its time stamp, for the replay floor
        return True
    except PErr as e:
        a.log_err(e.kind, str(e))
        i = d.get('message_id')
        a.reply(a.rt(d), i if isinstance(i, str) else '', False, None,
                {'kind': e.kind, 'message': str(e), 'traceback': ''}, '', False)
        return False


def mac(b, n):
    """HMAC-SHA256(key, b[:n] + b'}'), without copying the payload."""
    h = sha256(_ik)
    h.update(memoryview(b)[:n])
    h.update(b'}')
    o = sha256(_ok)
    o.update(h.digest())
    return o.digest()


def verify(b, e=None):
    """Raises PErr unless payload b[:e] ends with a valid `,"sig":"<64 lowercase hex>"}`."""
    e = len(b) if e is None else e
    n = e - 74
    ok = n > 0 and b[n:n + 8] == b',"sig":"' and b[e - 2:e] == b'"}'
    if ok:
        for i in range(n + 8, n + 72):
            if b[i] not in b'0123456789abcdef':
                ok = False
    if not ok:
        raise PErr('Unsigned', "this node runs only signed requests (a node key is set); sign it "
                               "with the node's key (plastic node-key)")
    m = hexlify(mac(b, n))
    x = 0
    for i in range(64):  # constant time: every digit is compared
        x |= m[i] ^ b[n + 8 + i]
    if x:
        raise PErr('BadSignature', 'the signature does not verify: made with another key, or the '
                                   'request was changed after signing')


def check(d, b, name, recent, e=None):
    """The checks in the protocol's order; returns the time stamp to remember with the id."""
    global boot, floor
    verify(b, e)
    r = d.get('receiver')
    if r != name:
        raise PErr('BadSignature', 'signed for `%s`, not for this node (%s); signed requests '
                                   'cannot be broadcast' % (r, name))
    mid = d.get('message_id')
    if not isinstance(mid, str) or not mid:
        raise PErr('Replayed', 'a signed request needs a message_id')
    if mid in recent:
        return None  # a duplicate: answered with the first reply, whatever its age
    ts = d.get('time_stamp')
    if not isinstance(ts, (int, float)) or isinstance(ts, bool) or ts != ts:
        raise PErr('Stale', 'a signed request needs a time_stamp')
    ts = stamp(b, ts, e)
    t = now()
    t = int(t * _US) if isinstance(t, float) else t * _US
    if t < 1577836800 * _US:  # 2020: a clock nobody set
        raise PErr('Stale', "this node's clock is not set (no NTP yet)")
    if boot is None:  # the clock is set now: when did the agent start?
        boot = floor = t - time.ticks_diff(time.ticks_ms(), t0) * 1000
    if abs(t - ts) > skew:
        raise PErr('Stale', "time_stamp is %d s from this node's clock (at most %d s allowed); "
                            'check both clocks' % ((t - ts) // _US, skew // _US))
    if ts < boot:
        raise PErr('Stale', 'stamped %d ms before this node started; send it again' % ((boot - ts) // 1000))
    if ts <= floor:
        raise PErr('Replayed', 'message_id %s may have run before (stamped before the last %d '
                               "requests or this node's start); a signed request runs once"
                   % (mid[:64], len(recent)))
    return ts


def forget(ts):
    """An id left the dedupe memory: its time stamp raises the replay floor."""
    global floor
    if ts is not None and ts > floor:
        floor = ts


def stamp(b, f, e=None):
    """The time stamp read from the text, to the microsecond: a board with single-precision
    floats has the parsed float (f) only to 128 s. The top-level member is the one near f."""
    e = len(b) if e is None else e
    while True:
        i = b.rfind(b'"time_stamp"', 0, e)
        if i < 0:
            return int(f * _US)
        e = i
        i += 12
        while b[i] in b' \t\r\n:':
            i += 1
        j = i
        while 47 < b[j] < 58:
            j += 1
        if j == i or j - i > 12:
            continue
        v = int(bytes(b[i:j])) * _US
        if b[j] == 46:  # '.'
            m = 100000
            j += 1
            while m and 47 < b[j] < 58:
                v += (b[j] - 48) * m
                m //= 10
                j += 1
        if abs(v - f * _US) < 300 * _US:
            return v


async def keep_time(pnet):
    """On a board: the clock must stay right (an ESP8266's drifts). Retries NTP every minute
    until it worked, then re-syncs hourly."""
    n = 0
    while True:
        await asyncio.sleep(60)
        n += 1
        if not pnet.synced or n >= 60:
            n = 0
            pnet.ntp()
