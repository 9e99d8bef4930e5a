# Built-in commands (docs/protocol.md, "Built-in commands"). Loaded when a command arrives.
import gc, time, asyncio
import phw
from pproto import PErr, PE, get, need

NAMES = ('blink led', 'read GPIOs', 'write GPIOs', 'ping', 'info', 'stop', 'reset', 'list files', 'remove file',
         'read file', 'make dir', 'remove dir', 'interrupt', 'abort')


def _pin(v, k):
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= 255:
        raise PErr(PE, 'field `%s` must be pin numbers from 0 to 255' % k)
    return v


def _pairs(pv):
    if pv is None:
        raise PErr(PE, 'missing field `pins_and_values`')
    bad = not isinstance(pv, list)
    if not bad:
        for x in pv:
            if not isinstance(x, list) or len(x) != 2:
                bad = True
                break
            _pin(x[0], 'pins_and_values')
            if x[1] not in (0, 1) or isinstance(x[1], float):
                raise PErr(PE, 'field `pins_and_values` must be pin values 0 or 1')
    if bad:
        raise PErr(PE, 'field `pins_and_values` must be a list of [pin, value] pairs')
    return pv


def run(a, c, kw):
    """Validates the kwargs of command c, then runs it."""
    if c not in NAMES:
        raise PErr('UnknownCommand', 'unknown command `%s` (known: %s)' % (c[:80], ', '.join(NAMES)))
    if c == 'blink led':
        n = get(kw, 'times', int, 10, 'a whole number of at least 0')
        forever = get(kw, 'forever', bool, False)
        on = get(kw, 'on_seconds', float, 0.5, 'a number')
        off = get(kw, 'off_seconds', float, 0.5, 'a number')
        for v in (on, off):
            if not 0 <= v <= 3600:
                raise PErr(PE, 'invalid `on_seconds`/`off_seconds`: %s is outside 0 to 3600 seconds' % v)
        a.stop_blink()
        a.blinker = asyncio.create_task(phw.blink(a, n, forever, int(on * 1000), int(off * 1000)))
        return {'blinking': True}
    if c == 'read GPIOs':
        pins = get(kw, 'pins', list, None, 'a list of pin numbers')
        for p in pins or ():
            _pin(p, 'pins')
        return [[p, phw.read(p)] for p in sorted(set(phw.PINS if pins is None else pins))]
    if c == 'write GPIOs':
        done = {}
        for p, v in _pairs(kw.get('pins_and_values')):
            v = 1 if v else 0
            phw.write(p, v)
            done[p] = v
        return [[p, done[p]] for p in sorted(done)]
    if c == 'ping':
        return 'pong'
    if c == 'info':
        gc.collect()
        f = gc.mem_free()
        return {'name': a.name, 'platform': phw.PLATFORM, 'version': a.version, 'protocol': 1,
                'uptime': a.uptime(), 'free_memory': f,
                'heap': f + gc.mem_alloc(), 'mem_peak': a.peak, 'scripts': sorted(a.scripts),
                'blinking': a.blinker is not None, 'groups': a.groups}
    if c == 'stop':
        n = get(kw, 'name', str)
        b = False
        if n is None:
            names = sorted(a.scripts)
            b = a.stop_blink()
        elif n in a.scripts:
            names = [n]
        else:
            raise PErr('NotFound', 'no script named `%s` is running' % n[:80])
        for n in names:
            a.stop_script(n)
        return {'stopped': names, 'still_running': [], 'blink_stopped': b}
    if c == 'interrupt':  # a request that blocks keeps the agent from reading this: none runs now
        get(kw, 'id', str)
        return {'interrupted': []}
    if c == 'abort':
        return abort(a, need(kw, 'id', str))
    if c == 'reset':
        a.reset()
        return {'resetting': True}
    f = a.use('pfiles')
    if c == 'list files':
        return f.listing(a.root)
    if c == 'read file':
        return f.read(a, kw)
    if c == 'make dir':
        return f.mkdir(a, kw)
    if c == 'remove dir':
        return f.rmdir(a, kw)
    fn = f.check_path(need(kw, 'filename', str))  # remove file
    import os
    os.remove(a.root + '/' + fn)
    return {'removed': fn}


def abort(a, i):
    """`abort` (docs/protocol.md): the agent reads no messages while it runs code, so a request
    it has seen is finished (or, an async function's, running: left to end); one not seen yet
    is remembered as aborted (False) in the duplicate memory, and refused when it comes."""
    if not i or len(i) > 128:
        raise PErr(PE, 'field `id` must be a string of 1 to 128 characters')
    r = a.recent.get(i, a)
    if r is a:
        a.recent[i] = False
        a.order.append(i)
        s = a.sig
        if s:
            a.ots.append(None)  # (no time stamp: the replay floor stays)
        if len(a.order) > a.dedup:
            a.recent.pop(a.order.pop(0), None)
            if s:
                s.forget(a.ots.pop(0))
        r = False
    return {'aborted': i, 'was': 'unseen' if r is False else 'running' if r is None else 'finished'}


def aborted(a, rt, mid):
    """A request an `abort` named before it came: answered Aborted, not run. The reply is kept
    as any other (the id is finished now), so a copy gets the very same reply; its message is
    short so the reply fits `DEDUP_REPLY_MAX` (the correlation id names the request)."""
    a.reply(rt, mid, False, None, {'kind': 'Aborted', 'traceback': '',
                                  'message': 'aborted before it arrived; it was not run'})
