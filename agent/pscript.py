# Scripts: saved as <name>.py under the node root, run as asyncio tasks under supervision.
import asyncio, builtins, os, sys

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
    old = a.scripts.pop(name, None)
    if old is not None:
        old.cancel()
    a.scripts[name] = asyncio.create_task(_run(a, name, src))


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
