# The `plastic` module scripts import: the same API as on the Rust node.
#   name                      this node's name
#   send(to, msg)             fire and forget; returns the message_id
#   request(to, msg, timeout=5)         blocking: reads the connection itself while it waits
#   await arequest(to, msg, timeout=5)  for `async def` code: the agent keeps running meanwhile
#   publish(topic, data)      JSON data to <prefix>/<node>/events/<topic>
# `to` is a node name, 'all' or 'group:<group>'. msg is a message dict (seed dicts work).
name = None
_a = None  # the running Agent


class RemoteError(Exception):
    def __init__(self, kind, message, traceback=''):
        super().__init__('%s: %s' % (kind, message))
        self.kind = kind
        self.message = message
        self.traceback = traceback


try:
    TimeoutError = TimeoutError
except NameError:
    class TimeoutError(Exception):
        pass


def _result(r):
    if r.get('ok'):
        return r.get('result')
    e = r.get('error') or {}
    raise RemoteError(e.get('kind', 'Error'), e.get('message', ''), e.get('traceback', ''))


def send(to, msg):
    return _a.send(to, msg)


def request(to, msg, timeout=5):
    return _result(_a.request(to, msg, timeout))


async def arequest(to, msg, timeout=5):
    return _result(await _a.arequest(to, msg, timeout))


def publish(topic, data):
    _a.event(topic, data)
