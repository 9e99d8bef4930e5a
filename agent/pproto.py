# plastic protocol v1: validation of incoming messages, names, paths, replies (docs/protocol.md).
import os, time, binascii

MAX_PAYLOAD = 262144
TYPES = ('command', 'eval', 'exec', 'script', 'file', 'function', 'result')
_OK = b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-'
_F64 = 1e9 + 0.5 != 1e9  # double precision floats (unix port, ESP32 with doubles)
_EPOCH = 946684800 if time.gmtime(0)[0] == 2000 else 0


class PErr(Exception):
    def __init__(self, kind, msg):
        super().__init__(msg)
        self.kind = kind


def new_id():
    return binascii.hexlify(os.urandom(16)).decode()


def now():
    t = time.time()
    return t + _EPOCH if _F64 else int(t) + _EPOCH


def _chars_ok(s):
    for c in s.encode():
        if c not in _OK:
            return False
    return True


def name_ok(s):
    return isinstance(s, str) and 0 < len(s) <= 64 and _chars_ok(s)


def node_ok(s):
    return name_ok(s) and s != 'all' and s != 'group'


def check_name(s, what='name'):
    if not name_ok(s):
        raise PErr('BadName', 'invalid %s %r: 1 to 64 characters of A-Za-z0-9_.-' % (what, s))
    return s


def check_path(p):
    if not isinstance(p, str):
        raise PErr('ProtocolError', 'field `filename` must be a string')
    if not p or len(p) > 255 or p[0] == '/':
        raise PErr('BadPath', 'invalid path %r: relative, 1 to 255 characters' % p[:100])
    for c in p.split('/'):
        if not c or c[0] == '.' or len(c) > 64 or not _chars_ok(c):
            raise PErr('BadPath', 'invalid path %r: components of A-Za-z0-9_.-, none empty, none starting with .' % p[:100])
    return p


def get(d, k, typ, default=None, what=None):
    """Field k of d (None/absent -> default); wrong type -> ProtocolError."""
    v = d.get(k)
    if v is None:
        return default
    if typ is int:
        ok = isinstance(v, int) and not isinstance(v, bool) and v >= 0
    elif typ is float:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
    else:
        ok = isinstance(v, typ)
    if not ok:
        raise PErr('ProtocolError', 'field `%s` must be %s' % (k, what or typ.__name__))
    return v


def need(d, k, typ, what=None):
    v = get(d, k, typ, None, what)
    if v is None:
        raise PErr('ProtocolError', 'missing field `%s`' % k)
    return v


def _ident(s):
    if not s or not (s[0] == '_' or s[0].isalpha()):
        return False
    for c in s:
        if not (c == '_' or c.isalpha() or c.isdigit()) or ord(c) > 127:
            return False
    return True


def msg_type(d):
    t = d.get('type')
    if t is None:
        t = d.get('message_type')
    if t is None:
        raise PErr('ProtocolError', 'missing field `type`')
    if not isinstance(t, str):
        raise PErr('ProtocolError', 'field `type` must be a string')
    if t not in TYPES:
        raise PErr('UnknownType', 'unknown message type `%s` (known: %s)' % (t[:80], ', '.join(TYPES)))
    return t


def check(d):
    """Validates a request dict the way docs/protocol.md says; returns its type."""
    t = msg_type(d)
    if t == 'eval':
        need(d, 'to_evaluate', str)
    elif t == 'exec':
        need(d, 'to_exec', str)
    elif t == 'script':
        check_name(get(d, 'name', str, 'main'), 'script name')
        need(d, 'script', str)
    elif t == 'function':
        f = get(d, 'function', str) or get(d, 'name', str)
        if f is None:
            raise PErr('ProtocolError', 'missing field `function`')
        for p in f.split('.'):
            if not _ident(p):
                raise PErr('ProtocolError', 'invalid `function`: `%s` is not a (dotted) Python name' % f[:80])
        get(d, 'args', list, None, 'a list')
        get(d, 'kwargs', dict, None, 'an object')
    elif t == 'command':
        need(d, 'command', str)
        get(d, 'kwargs', dict, None, 'an object')
    elif t == 'result':
        need(d, 'correlation_id', str)
        need(d, 'ok', bool)
        e = get(d, 'error', dict, None, 'an object')
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
