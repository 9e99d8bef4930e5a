# File uploads (chunked, sha256-checked, atomic rename), downloads (`read file`), listing and
# directories under the node root. Loaded for each use; transfer state lives in the agent (a.xfer).
import gc, os, hashlib, binascii
from pproto import PErr, PE, get, need, chars_ok

MAX_FILE = 16 * 1024 * 1024
MAX_READ = 98304  # the most a `read file` may ask for (docs/protocol.md, "Built-in commands")
# errno (the same on the unix port and MicroPython's VFS) -> the kind the protocol names
_KINDS = ((2, 'FileNotFoundError', 'no such file or directory'), (17, 'FileExistsError', 'already exists'),
          (20, 'NotADirectoryError', 'not a directory'), (21, 'IsADirectoryError', 'is a directory'),
          (39, 'OSError', 'directory not empty'))


def check_path(p):
    if not isinstance(p, str):
        raise PErr(PE, 'field `filename` must be str')
    bad = not p or len(p) > 255 or p[0] == '/'
    for c in p.split('/'):
        bad = bad or not c or c[0] == '.' or len(c) > 64 or not chars_ok(c)
    if bad:
        raise PErr('BadPath', 'invalid path %r: relative, components of A-Za-z0-9_.- not starting with .' % p[:100])
    return p


def b64(t, out=None):
    """Decodes base64 text t (str, or a memoryview of its bytes in the payload) in slices, each
    passed to out (none: only checked); no block as big as the whole is needed. Returns the
    decoded size; strict: padded, and no byte outside the alphabet (a2b_base64 skips those)."""
    n = len(t)
    if n % 4:
        return -1
    i = k = 0
    while i < n:
        j = i + 512 if n - i > 512 else n
        try:
            b = binascii.a2b_base64(t[i:j])
        except ValueError:
            return -1
        e = 0
        if j == n:
            e = t[n - 2:]
            e = e.count('=') if type(e) is str else bytes(e).count(b'=')
        if len(b) != (j - i) // 4 * 3 - e:
            return -1
        if out:
            out(b)
        k += len(b)
        i = j
    return k


def parse(d, raw=None):
    """Validates a file chunk; returns (filename, content, its decoded size, base64?, offset,
    total, sha256 or None, resume: a question, "how much of this file do you have?"). raw: the
    content's UTF-8 bytes (a memoryview into the payload) when the agent parsed the payload
    without them."""
    fn = check_path(need(d, 'filename', str))
    text = need(d, 'content', str)
    if raw is not None:
        text = raw
    enc = get(d, 'encoding', str, 'utf-8')
    b = enc == 'base64'
    if enc in ('utf-8', 'utf8', 'text'):
        if raw is None:
            text = text.encode()
        n = len(text)
    elif b:
        n = b64(text)
        if n < 0:
            raise PErr(PE, 'invalid `content`: not valid base64')
    else:
        raise PErr(PE, 'invalid `encoding`: `%s` is not `utf-8` or `base64`' % enc[:40])
    w = 'a whole number of at least 0'
    off = get(d, 'offset', int, 0, w)
    tot = get(d, 'total', int, n, w)
    if tot > MAX_FILE:
        raise PErr(PE, 'invalid `total`: %d bytes is more than the %d bytes a node accepts' % (tot, MAX_FILE))
    if off + n > tot:
        raise PErr(PE, 'invalid `offset`: the chunk runs past `total`')
    sha = get(d, 'sha256', str)
    if sha is not None:
        sha = sha.lower()
        try:
            ok = len(sha) == 64 and len(binascii.unhexlify(sha)) == 32
        except ValueError:
            ok = False
        if not ok:
            raise PErr(PE, 'invalid `sha256`: must be 64 hex digits')
    elif n != tot:
        raise PErr(PE, "invalid `sha256`: a file sent in several chunks needs the whole file's sha256")
    rs = get(d, 'resume', bool, False, 'a boolean')
    if rs and (off or n or sha is None):
        raise PErr(PE, "invalid `resume`: a resume question has offset 0, empty content and the file's sha256")
    return fn, text, n, b, off, tot, sha, rs


def _mkdirs(path):
    i = path.find('/', 1)
    while i > 0:
        try:
            os.mkdir(path[:i])
        except OSError:
            pass
        i = path.find('/', i + 1)


def _abort(xs, fn):
    x = xs.pop(fn, None)
    if x:
        try:
            os.remove(x[3])
        except OSError:
            pass


def chunk(a, d):
    fn, data, n, b, off, tot, sha, rs = parse(d, a.raw)
    d = None
    xs = a.xfer  # filename -> [received, sha256 object, total, temp path, announced sha256]
    x = xs.get(fn)
    if rs and x and x[2] == tot and x[4] == sha:  # the same file: go on from what arrived
        return {'filename': fn, 'received': x[0], 'total': tot, 'complete': False}
    if off == 0:  # (a resume question with nothing to resume starts afresh, as an empty chunk)
        for k in list(xs):  # one transfer at a time: a new one abandons the others
            _abort(xs, k)
        i = fn.rfind('/') + 1
        x = [0, hashlib.sha256(), tot, a.root + '/' + fn[:i] + '.' + fn[i:] + '.part', sha]
        _mkdirs(x[3])
        open(x[3], 'wb').close()
        xs[fn] = x
    elif x is None or x[0] != off or x[2] != tot:
        raise PErr('OutOfOrder', 'chunk at offset %d of `%s`: the node expects offset %d%s' % (
            off, fn, x[0] if x else 0, '' if x else ' (no transfer of this file is open)'))
    h = x[1]
    try:
        with open(x[3], 'ab') as f:
            if b:  # decoded slice by slice, straight from the payload into the file
                def put(s):
                    f.write(s)
                    h.update(s)
                b64(data, put)
            else:
                f.write(data)
                h.update(data)
    except Exception:
        _abort(xs, fn)
        raise
    x[0] += n
    data = None
    r = {'filename': fn, 'received': x[0], 'total': tot, 'complete': x[0] == tot}
    if x[0] < tot:
        return r
    del xs[fn]
    got = binascii.hexlify(x[1].digest()).decode()
    if sha is not None and got != sha:
        os.remove(x[3])
        raise PErr('HashMismatch', 'sha256 mismatch for `%s`: expected %s, got %s; the old file is kept' % (fn, sha, got))
    os.rename(x[3], a.root + '/' + fn)  # atomic on LittleFS and POSIX
    r['sha256'] = got
    return r


def listing(root):
    out = []
    _walk(root, '', out)
    out.sort()
    return out


def sweep(root):
    """Removes the temp files of transfers that a restart abandoned."""
    _walk(root, '', None)


def _walk(root, rel, out):
    for e in os.ilistdir(root + '/' + rel if rel else root):
        n = e[0]
        r = rel + '/' + n if rel else n
        if n[0] == '.':
            if out is None and n[-5:] == '.part':
                os.remove(root + '/' + r)
        elif e[1] == 0x4000:
            _walk(root, r, out)
        elif out is not None:
            out.append([r, e[3] if len(e) > 3 else os.stat(root + '/' + r)[6]])


def _kind(e, p):
    """The OSError e about path p as the protocol's kind (FileNotFoundError...), else e itself."""
    c = e.args[0] if e.args else 0
    for n, k, m in _KINDS:
        if n == c:
            return PErr(k, '`%s`: %s' % (p, m))
    return e


def _b64(m):
    try:
        return binascii.b2a_base64(m, newline=False)
    except TypeError:  # before MicroPython 1.21: no `newline`
        return binascii.b2a_base64(m)[:-1]


def read(a, kw):
    """`read file` (docs/protocol.md, "Downloads"): up to `length` bytes from `offset`, fewer
    when the heap is short (a quarter of the free heap, at least 256); the sha256 of the whole
    file with the chunk that ends it."""
    fn = check_path(need(kw, 'filename', str))
    w = 'a whole number of at least 0'
    off = get(kw, 'offset', int, 0, w)
    n = get(kw, 'length', int, 16384, w)
    if n > MAX_READ or n < 1:
        raise PErr(PE, 'invalid `length`: %d is not from 1 to %d' % (n, MAX_READ))
    p = a.root + '/' + fn
    try:
        st = os.stat(p)
        if st[0] & 0xF000 == 0x4000:
            raise OSError(21)
        f = open(p, 'rb')
    except OSError as e:
        raise _kind(e, fn)
    size = st[6]
    try:
        if off > size:
            raise PErr('OutOfOrder', 'offset %d is past the end of `%s`: its size is %d bytes' % (off, fn, size))
        gc.collect()  # the bytes (n), their base64 (4n/3), and the reply's text (4n/3, or streamed)
        k = gc.mem_free() // 4 // 3 * 3
        n = min(n, size - off, max(k, 256))
        while True:
            try:
                b = bytearray(n)
                f.seek(off)
                g = f.readinto(b) or 0
                c = _b64(memoryview(b)[:g])
                break
            except MemoryError:
                b = c = None
                if n <= 256:
                    raise
                n = max(n // 2 // 3 * 3, 256)
                gc.collect()
        r = {'filename': fn, 'offset': off, 'size': size, 'content': c.decode()}  # (decode: no copy)
        c = None
        if g < n:  # the file shrank since its stat
            r['size'] = size = off + g
        if off + g == size:  # this chunk ends the file: the hash of all of it
            h = hashlib.sha256()
            f.seek(0)
            t = bytearray(512)
            i = off
            while i > 0:
                j = f.readinto(t) or 0
                if not j:
                    break
                j = min(j, i)
                h.update(memoryview(t)[:j])
                i -= j
            t = None
            h.update(memoryview(b)[:g])
            r['sha256'] = binascii.hexlify(h.digest()).decode()
        b = None  # (no stale reference left for the reply's collection to find)
        return r
    finally:
        f.close()


def mkdir(a, kw):
    p = check_path(need(kw, 'path', str))
    try:
        os.mkdir(a.root + '/' + p)
    except OSError as e:
        raise _kind(e, p)
    return {'made': p}


def rmdir(a, kw):
    p = check_path(need(kw, 'path', str))
    q = a.root + '/' + p
    try:
        if os.stat(q)[0] & 0xF000 != 0x4000:  # (LittleFS's rmdir would remove a file)
            raise OSError(20)
        os.rmdir(q)
    except OSError as e:
        raise _kind(e, p)  # not empty: OSError
    return {'removed': p}
