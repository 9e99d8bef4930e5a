# The `plastic` module scripts import: the same API as on the Rust node.
#   name                      this node's name
#   send(to, msg)             fire and forget; returns the message_id
#   request(to, msg, timeout=5)         blocking: reads the connection itself while it waits
#   await arequest(to, msg, timeout=5)  for `async def` code: the agent keeps running meanwhile
#   publish(topic, data)      JSON data to <prefix>/<node>/events/<topic>
# `to` is a node name, 'all' or 'group:<group>'. msg is a message dict (seed dicts work).
import json, time, asyncio
import pagent
import pproto as P

name = pagent.agent.name


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


def _topic(a, to):
    if to == 'all':
        return a.pre + '/all/in'
    if isinstance(to, str) and to[:6] == 'group:':
        return a.pre + '/group/' + P.check_name(to[6:], 'group') + '/in'
    if not P.name_ok(to):
        raise ValueError('bad node name %r' % (to,))
    return a.pre + '/' + to + '/in'


def send(to, msg, _need=False):
    a = pagent.agent
    t = _topic(a, to)
    m = dict(msg)
    mid = m.get('message_id') or P.new_id()
    m['message_id'] = mid
    if 'sender' not in m:
        m['sender'] = a.name
    if 'reply_to' not in m:
        m['reply_to'] = a.name
    m['receiver'] = to
    m['time_stamp'] = P.now()
    if _need:
        m['need_result'] = True
    a.pub(t, json.dumps(m), 1)
    return mid


def request(to, msg, timeout=5):
    """Blocks: pumps the MQTT connection itself; other requests wait (at most 8 are queued).
    A node cannot request itself this way (its own request would wait in the queue)."""
    a = pagent.agent
    mid = send(to, msg, True)
    box = a.pending[mid] = [None, None]
    end = time.ticks_add(time.ticks_ms(), int(timeout * 1000))
    a.pumping += 1
    try:
        while box[0] is None:
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                raise TimeoutError('no reply from %s in %s s' % (to, timeout))
            a.mq.pump(min(left, 500))
    finally:
        a.pumping -= 1
        del a.pending[mid]
        if a.queue and not a.pumping:
            asyncio.create_task(a.drain())
    return _result(box[0])


async def arequest(to, msg, timeout=5):
    a = pagent.agent
    mid = send(to, msg, True)
    box = a.pending[mid] = [None, asyncio.Event()]
    try:
        await asyncio.wait_for_ms(box[1].wait(), int(timeout * 1000))
    except asyncio.TimeoutError:
        raise TimeoutError('no reply from %s in %s s' % (to, timeout))
    finally:
        del a.pending[mid]
    return _result(box[0])


def publish(topic, data):
    a = pagent.agent
    t = a.pre + '/' + a.name + '/events'
    if topic:
        t += '/' + topic
    a.pub(t, json.dumps(data))
