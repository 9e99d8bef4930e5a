# Scripts: saved as <name>.py under the node root, run as asyncio tasks under supervision.
import asyncio, builtins, os, sys
from pagent import _sleep_ms as sleep_ms, time  # the real `time` (scripts get the agent's)

_compile = getattr(builtins, 'compile', None)


async def _afn():
    pass


_AFN = type(_afn)


def deploy(a, name, src):
    path = a.root + '/' + name + '.py'
    tmp = a.root + '/.' + name + '.py.part'
    with open(tmp, 'w') as f:
        f.write(src)
    os.rename(tmp, path)
    _go(a, name, src)
    return {'name': name, 'started': True}


def start(a, name):
    with open(a.root + '/' + name + '.py') as f:
        src = f.read()
    _go(a, name, src)


def _go(a, name, src):
    if name in a.scripts:
        a.stop_script(name)
    a.scripts[name] = asyncio.create_task(_run(a, name, src))
    a.napper = nap  # (this module stays loaded while a script runs: its task runs _run)


def nap(a, ms):
    """time.sleep_ms in a script: while it sleeps, the node reads and answers messages, pings
    the broker and feeds the watchdog; a stop (or reset) ends the script here."""
    try:
        me = asyncio.current_task()
    except RuntimeError:  # no event loop (the agent has ended)
        me = None
    if me not in a.scripts.values():
        if a.wdt:
            a.wdt.feed()
        return sleep_ms(ms)
    end = time.ticks_add(time.ticks_ms(), ms)
    m = a.mq
    a.inside = True
    try:
        while True:
            if a.halt is me or a.exit:
                a.halt = None
                raise asyncio.CancelledError
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                return
            if a.wdt:
                a.wdt.feed()
            if m.sock is None:  # the link is down: _conn reconnects once the script ends
                sleep_ms(left if left < 500 else 500)
                continue
            try:
                a.keepalive()
                m.pump(left if left < 500 else 500)
            except OSError:
                m.close()
                a.lost()
                continue
            a.tick()
    finally:
        a.inside = False


async def _run(a, name, src):
    me = asyncio.current_task()

    def p(*args, sep=' ', end='\n', file=None):
        if file is not None:
            builtins.print(*args, sep=sep, end=end, file=file)
            return
        s = sep.join([str(x) for x in args]) + end
        a.log(s[:-1] if s[-1:] == '\n' else s, tag)

    tag = 'script:' + name
    ns = {'__name__': name, '__file__': name + '.py', 'print': p}
    a.log('started', tag)
    try:
        code = _compile(src, name + '.py', 'exec') if _compile else src
        src = None
        exec(code, ns)  # a blocking module body (the seed's `while True`) blocks the agent here
        code = None
        m = ns.get('main')
        if type(m) is _AFN:
            await m()
        a.log('finished', tag)
    except asyncio.CancelledError:
        a.log('stopped', tag)
    except SystemExit:
        a.log('finished', tag)
    except Exception as e:
        import pagent
        a.log('crashed:\n' + pagent.tb(e).rstrip(), tag, 'error')
    finally:
        if a.scripts.get(name) is me:
            del a.scripts[name]
        if not a.scripts:
            a.napper = None
