# File uploads (chunked, sha256-checked, atomic rename), listing and removal under the node root.
import os, hashlib
from binascii import hexlify
from pproto import PErr, check_file, check_path


def _mkdirs(path):
    i = path.find('/', 1)
    while i > 0:
        try:
            os.mkdir(path[:i])
        except OSError:
            pass
        i = path.find('/', i + 1)


class Files:
    def __init__(self, root):
        self.root = root.rstrip('/')
        self.x = {}  # filename -> [received, sha256 object, total, temp path]
        self._walk('', None)  # sweep temp files of transfers a restart abandoned

    def p(self, rel):
        return self.root + '/' + rel

    def _tmp(self, fn):
        i = fn.rfind('/') + 1
        return self.p(fn[:i] + '.' + fn[i:] + '.part')

    def _abort(self, fn):
        x = self.x.pop(fn, None)
        if x:
            try:
                os.remove(x[3])
            except OSError:
                pass

    def chunk(self, d):
        fn, data, off, tot, sha = check_file(d)
        x = self.x.get(fn)
        if off == 0:
            self._abort(fn)
            for k in list(self.x):  # one transfer at a time: a new file abandons the others
                self._abort(k)
            x = [0, hashlib.sha256(), tot, self._tmp(fn)]
            _mkdirs(x[3])
            open(x[3], 'wb').close()
            self.x[fn] = x
        elif x is None or x[0] != off or x[2] != tot:
            raise PErr('ProtocolError', 'chunk at offset %d of `%s`: the node expects offset %d%s' % (
                off, fn, x[0] if x else 0, '' if x else ' (no transfer of this file is open)'))
        try:
            with open(x[3], 'ab') as f:
                f.write(data)
        except Exception:
            self._abort(fn)
            raise
        x[1].update(data)
        x[0] += len(data)
        data = None
        r = {'filename': fn, 'received': x[0], 'total': tot, 'complete': x[0] == tot}
        if x[0] < tot:
            return r
        del self.x[fn]
        got = hexlify(x[1].digest()).decode()
        if sha is not None and got != sha:
            os.remove(x[3])
            raise PErr('ProtocolError', 'sha256 mismatch for `%s`: expected %s, got %s; the old file is kept' % (fn, sha, got))
        os.rename(x[3], self.p(fn))  # atomic on LittleFS and POSIX
        r['sha256'] = got
        return r

    def listing(self):
        out = []
        self._walk('', out)
        out.sort()
        return out

    def _walk(self, rel, out):
        for e in os.ilistdir(self.p(rel) if rel else self.root):
            n = e[0]
            r = rel + '/' + n if rel else n
            if n[0] == '.':
                if out is None and n[-5:] == '.part':
                    os.remove(self.p(r))
                continue
            if e[1] == 0x4000:
                self._walk(r, out)
            elif out is not None:
                out.append([r, e[3] if len(e) > 3 else os.stat(self.p(r))[6]])

    def remove(self, fn):
        check_path(fn)
        os.remove(self.p(fn))
        return {'removed': fn}
