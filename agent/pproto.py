# plastic protocol v1: validation of incoming messages, names, replies (docs/protocol.md).
# RAM note: every distinct string constant costs ~70 bytes once loaded, so messages are terse.
import os, time, binascii

MAX_PAYLOAD = 262144
TYPES = ('command', 'eval', 'exec', 'script', 'file', 'function', 'apply', 'result')
_OK = b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-'
_F64 = 1e9 + 0.5 != 1e9  # double precision floats (unix port, ESP32 with doubles)
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0
PE = 'ProtocolError'


class PErr(Exception):
    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind


def new_id():
    return binascii.hexlify(os.urandom(16)).decode()


def now():
    t = time.time()
    return t + _EPOCH if _F64 else int(t) + _EPOCH


def chars_ok(s):
    for c in s.encode():
        if c not in _OK:
            return False
    return True


def name_ok(s, node=True):
    return isinstance(s, str) and 0 < len(s) <= 64 and chars_ok(s) and not (node and s in ('all', 'group', 'pool'))


def check_name(s, what='name'):
    if not name_ok(s, False):
        raise PErr('BadName', 'invalid %s %r: 1 to 64 of A-Za-z0-9_.-' % (what, s))
    return s


def get(d, k, typ, default=None, what=None):
    """Field k of d (None/absent -> default); wrong type -> ProtocolError."""
    v = d.get(k)
    if v is None:
        return default
    if typ is int:  # whole numbers >= 0
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
    elif typ is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    else:
        ok = isinstance(v, typ)
    if not ok:
        raise PErr(PE, 'field `%s` must be %s' % (k, what or typ.__name__))
    return v


def need(d, k, typ, what=None):
    v = get(d, k, typ, None, what)
    if v is None:
        raise PErr(PE, 'missing field `%s`' % k)
    return v


def check(d):
    """Validates a request the way docs/protocol.md says; returns its type. Commands and
    files are checked further by pcmd and pfiles, before they do anything."""
    t = d.get('type')
    if t is None:
        t = need(d, 'message_type', str)
    if not isinstance(t, str):
        raise PErr(PE, 'field `type` must be str')
    if t not in TYPES:
        raise PErr('UnknownType', 'unknown message type `%s` (known: %s)' % (t[:80], ', '.join(TYPES)))
    if t == 'eval':
        need(d, 'to_evaluate', str)
    elif t == 'exec':
        need(d, 'to_exec', str)
    elif t == 'script':
        check_name(get(d, 'name', str, 'main'), 'script name')
        need(d, 'script', str)
    elif t == 'function' or t == 'apply':
        if t == 'apply':
            need(d, 'source', str)
            f = need(d, 'name', str)
            if '.' in f:
                raise PErr(PE, 'invalid `name`: `%s` is not a Python name' % f[:80])
        else:
            f = get(d, 'function', str) or need(d, 'name', str)
        for p in f.split('.'):
            if not p or not (p[0] == '_' or p[0].isalpha()) or not chars_ok(p) or '.' in p or '-' in p:
                raise PErr(PE, 'invalid `function`: `%s` is not a (dotted) Python name' % f[:80])
        get(d, 'args', list)
        get(d, 'kwargs', dict)
    elif t == 'command':
        need(d, 'command', str)
        get(d, 'kwargs', dict)
    elif t == 'result':
        need(d, 'correlation_id', str)
        need(d, 'ok', bool)
        e = get(d, 'error', dict)
        if e is not None:
            need(e, 'kind', str)
            need(e, 'message', str)
    return t


def jsonable(v, depth=0):
    """True when json.dumps(v) gives the JSON the protocol wants (else the reply uses repr)."""
    if v is None or isinstance(v, (bool, int, str)):
        return True
    if isinstance(v, float):
        return v == v and v - v == 0  # not nan/inf
    if depth > 100:
        return False
    if isinstance(v, (list, tuple)):
        for x in v:
            if not jsonable(x, depth + 1):
                return False
        return True
    if isinstance(v, dict):
        for k in v:
            if not isinstance(k, str) or not jsonable(v[k], depth + 1):
                return False
        return True
    return False


def too_deep(b):
    """True when JSON text b nests deeper than 128 levels (cheap pre-check first)."""
    if b.count(b'[') + b.count(b'{') <= 128:
        return False
    d = 0
    s = esc = False
    for c in b:
        if s:
            if esc:
                esc = False
            elif c == 92:
                esc = True
            elif c == 34:
                s = False
        elif c == 34:
            s = True
        elif c == 91 or c == 123:
            d += 1
            if d > 128:
                return True
        elif c == 93 or c == 125:
            d -= 1
    return False
