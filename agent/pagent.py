# The plastic agent: connection loop, dispatch, replies, eval/exec/function and commands.
import gc, sys, io, json, time, asyncio, builtins, os, micropython
import pproto as P
from pproto import PErr
import phw, pnet
import pmqtt

VERSION = '0.1.0'
_print = print
_sleep_ms = time.sleep_ms
_compile = getattr(builtins, 'compile', None)
_CAPMAX = 8192  # characters of captured stdout kept per request
agent = None  # the running Agent (the plastic module finds it here)


def _g():
    yield


_GEN = type(_g())


def tb(e):
    try:
        s = io.StringIO()
        sys.print_exception(e, s)
        s = s.getvalue()
        i = s.find('\n  File "<')  # drop the agent's own frames above the request's code
        j = s.find('\n')
        return s[:j] + s[i:] if i > j > 0 and ('pagent.' in s[j:i] or 'pcold.' in s[j:i]) else s
    except Exception:
        return ''


def err(e):
    if isinstance(e, PErr):
        return {'kind': e.kind, 'message': str(e), 'traceback': ''}
    return {'kind': type(e).__name__, 'message': str(e), 'traceback': tb(e)}


def _field(b, k):
    """The plain string value of "k" in a JSON fragment, or None (for too-large payloads)."""
    i = b.find(b'"' + k + b'"')
    if i < 0:
        return None
    i = b.find(b'"', i + len(k) + 2)
    j = b.find(b'"', i + 1)
    if i < 0 or j < 0 or j - i > 65 or b.find(b':', i - 8 if i > 8 else 0, i) < 0:
        return None
    try:
        return b[i + 1:j].decode()
    except Exception:
        return None


def _span(b):
    """[i, j): where the text of a long top-level "content" string lies in payload b, when it
    has no escapes (then its bytes are the string's UTF-8); else None."""
    k = b.find(b'"content"')
    if k < 1 or b[k - 1] == 92:
        return None
    i = k + 9
    while b[i] in b' \t\r\n:':
        i += 1
    j = b.find(b'"', i + 1)
    if b[i] != 34 or j - i < 256 or b.find(b'\\', i, j) >= 0:
        return None
    return i + 1, j


def _cfg(c, k, d):
    return getattr(c, k, d)


class _Time:  # the `time` that scripts import: their sleeps keep the node reachable (Agent.nap)
    def __getattr__(self, k):  # every other name is the real time's (none copied)
        return getattr(time, k)

    def sleep(self, s):
        agent.nap(int(s * 1000))

    def sleep_ms(self, ms):
        agent.nap(ms)


class Agent:
    def __init__(self, cfg):
        self.cfg = cfg
        self.lean = _cfg(cfg, 'LEAN', True)
        self.use('pcold').init(self, cfg)  # the rest of the state (names, MQTT, `time` for scripts)
        self.use('pfiles').sweep(self.root)  # temp files of transfers a restart abandoned

    def use(self, mod):
        """Imports a helper module for one use; with LEAN it is dropped again to free its RAM."""
        m = __import__(mod)
        if self.lean:
            del sys.modules[mod]
        return m

    # ---- output ------------------------------------------------------------------------------
    def print(self, *a, sep=' ', end='\n', file=None):
        if file is not None:
            _print(*a, sep=sep, end=end, file=file)
            return
        s = sep.join([str(x) for x in a]) + end
        c = self.cap
        if c is None:
            self.log(s[:-1] if s[-1:] == '\n' else s, 'python')
        elif c[0] < _CAPMAX:
            c.append(s)
            c[0] += len(s)

    def log(self, text, source='node', level='info'):
        """One JSON log line on <prefix>/<node>/log (and the console)."""
        _print('[%s] %s' % (source, text))
        try:
            self.mq.publish(self.t_log, json.dumps({'time': P.now(), 'node': self.name, 'source': source,
                                                    'level': level, 'text': text}))
        except Exception:
            pass

    def log_err(self, kind, msg):
        self.log('refused a message (%s): %s' % (kind, msg), 'node', 'error')

    def pub(self, topic, s, qos=0, retain=False):
        try:
            self.mq.publish(topic, s, qos, retain)
        except OSError:
            self.lost()
            raise

    def lost(self):
        s = self.serve
        if s is not None and s is not asyncio.current_task():
            s.cancel()

    def presence(self, state):
        p = {'name': self.name, 'state': state, 'platform': phw.PLATFORM, 'version': VERSION,
             'protocol': 1, 'address': pnet.address(), 'groups': self.groups, 'since': P.now(),
             'boot': self.boot, 'window': self.dedup,  # senders keep at most this many in flight
             'uptime': self.uptime(), 'mem_free': gc.mem_free()}
        if self.pools:
            p['pools'] = self.pools
        m = self.mq.rx
        m = self.use('pconn').room(self) if m is None else len(m)
        if m < P.MAX_PAYLOAD:
            p['max_payload'] = m  # senders size file chunks to fit
        return json.dumps(p)

    # ---- incoming ----------------------------------------------------------------------------
    def too_big(self, ends, n, mem):
        """Answers a payload too big to handle, if its first/last bytes name a sender."""
        if mem:
            msg = 'no memory to parse a %d-byte payload (%d bytes free)' % (n, gc.mem_free())
        else:
            msg = 'payload of %d bytes refused unread (limit %d bytes; the largest free block is smaller)' % (
                n, self.mq.maxlen)
        if type(ends) is memoryview:  # (the small ends kept in pmqtt's own buffer)
            ends = bytes(ends)
        rt = _field(ends, b'reply_to') or _field(ends, b'sender')
        if P.name_ok(rt):
            self.reply(rt, _field(ends, b'message_id') or '', False, None,
                       {'kind': 'PayloadTooLarge', 'message': msg, 'traceback': ''})
        else:
            self.log_err('PayloadTooLarge', msg)

    def on_msg(self, topic, data, n, ends=None):
        if topic == self.t_status:  # our own presence (docs/protocol.md, "Presence")
            self.use('pcold').status(self, data)
            return
        if self.mq.ret:  # a retained request would run again at every subscribe
            self.log_err('Retained', 'requests must not be retained; it was not run')
            return
        if data is None:
            self.too_big(ends, n, False)
            return
        d = None
        try:
            if P.too_deep(data):
                raise PErr('ProtocolError', 'malformed JSON: nesting deeper than 128 levels')
            s = _span(data)
            if s:  # a file chunk is parsed without its content, which stays in data (no copy)
                try:
                    d = json.loads(data[:s[0]] + data[s[1]:n])
                    if type(d) is dict and d.get('content') == '' and d.get('type') == 'file':
                        self.raw = memoryview(data)[s[0]:s[1]]
                    else:
                        d = None
                except ValueError:
                    d = None
            if d is None:
                d = json.loads(data)
        except PErr as e:
            self.log_err(e.kind, str(e))
            return
        except MemoryError:
            d = None
            data = data[:160] + data[n - 512 if n > 672 else 160:n]
            gc.collect()
            self.too_big(data, n, True)
            return
        except Exception as e:
            self.log_err('ProtocolError', 'malformed JSON: %s' % e)
            return
        if type(d) is not dict:
            self.log_err('ProtocolError', 'a message must be a JSON object; %d bytes on %s not answered' % (n, topic))
            return
        t = d.get('type') or d.get('message_type')
        if t == 'taken':  # a pool member's notice to a sender: not a request, never answered
            return
        if self.sig and not self.sig.gate(self, d, data, n):
            return
        data = None
        if self.pumping and t != 'result':
            if len(self.queue) < 8:
                self.queue.append(d)
            else:
                self.log_err('Busy', 'a blocking plastic.request is running and 8 messages wait already')
                return
        if t != 'result' and topic.startswith(self.tpool):
            self.use('pcold').taken(self, d)  # a pool's request we will handle: say we took it
        if self.pumping and t != 'result':
            return
        try:
            self.handle(d)
        except MemoryError:  # even the error reply did not fit
            d = self.raw = None
            gc.collect()
            self.log_err('MemoryError', 'out of memory while answering %d bytes on %s' % (n, topic))
        finally:
            self.raw = None

    @staticmethod
    def rt(d):
        rt = d.get('reply_to')
        if not isinstance(rt, str):
            rt = d.get('sender')
        return rt if P.name_ok(rt) else None

    def handle(self, d):
        mid = d.get('message_id')
        if not isinstance(mid, str):
            mid = ''
        rt = self.rt(d)
        need = d.get('need_result') is True
        t = d.get('type') or d.get('message_type')
        out = ''
        # At-least-once delivery: a duplicate does not run again. Replies are never
        # remembered: a flood of them must not push requests out of the short memory.
        if mid and t != 'result':
            r = self.recent.get(mid, self)
            if r is not self:
                if r is False:  # named by an `abort` before it came: not run
                    self.use('pcmd').aborted(self, rt, mid)
                elif r and r is not True and rt:
                    self.pub(self.pre + '/' + rt + '/in', r, 1)  # the very same reply
                return
            self.recent[mid] = None  # running
            self.order.append(mid)
            s = self.sig
            if s:
                self.ots.append(d.get('sig'))
            if len(self.order) > self.dedup:
                self.recent.pop(self.order.pop(0), None)
                if s:
                    s.forget(self.ots.pop(0))
        try:
            t = P.check(d)
            if t == 'result':
                self.deliver(d)
                return
            ttl = d.get('ttl')
            ts = d.get('time_stamp')
            if isinstance(ttl, (int, float)) and isinstance(ts, (int, float)):
                late = P.now() - ts - ttl
                if late > 0 and P.now() > 1577836800:  # only a set clock can judge
                    raise PErr('Expired', "the request's time to live ran out %.3f s before it arrived; it was not run" % late)
            cap = t == 'eval' or t == 'exec' or t == 'function' or t == 'apply'
            if cap:
                self.cap = [0]
                try:
                    builtins.print = self.print  # captures prints from imported modules too
                    self.hooked = True
                except Exception:
                    self.hooked = False
            try:
                res = getattr(self, '_t_' + t)(d)
            finally:
                if cap:
                    if self.hooked:
                        builtins.print = _print
                    c, self.cap = self.cap, None
                    out = ''.join(c[1:])
                    if c[0] >= _CAPMAX:
                        out += '\n[stdout truncated]\n'
            d = None
            if type(res) is _GEN:
                asyncio.create_task(self._later(res, rt, mid, need, out))
                mid = ''  # still running: _later marks it done
            elif need:
                self.reply(rt, mid, True, res, None, out)
            elif out:  # nobody asked for the result, but printed output should not vanish
                self.log(out.rstrip(), 'node')
        except (Exception, SystemExit) as e:
            if isinstance(e, MemoryError):
                d = res = None
                gc.collect()
            if t == 'result':  # never answer a reply: two nodes could bounce errors forever
                self.log_err(e.kind if isinstance(e, PErr) else type(e).__name__, str(e))
            elif mid and self.recent.get(mid):
                raise  # the reply is made and kept for a redelivery; the connection failed sending it
            else:
                self.reply(rt, mid, False, None, err(e), out)

        finally:
            if mid and self.recent.get(mid, 0) is None:
                self.recent[mid] = True  # done (no reply kept)

    async def _later(self, coro, rt, mid, need, out):
        try:
            res = await coro
            if need:
                self.reply(rt, mid, True, res, None, out)
        except Exception as e:
            if not (mid and self.recent.get(mid)):  # else the reply is made; sending it failed
                self.reply(rt, mid, False, None, err(e), out)
        finally:
            if mid and self.recent.get(mid, 0) is None:
                self.recent[mid] = True

    def reply(self, rt, mid, ok, res=None, e=None, out='', keep=True):
        r = {'type': 'result', 'correlation_id': mid, 'ok': ok, 'sender': self.name,
             'message_id': P.new_id(), 'time_stamp': P.now()}
        if rt:
            r['receiver'] = rt
        if ok:
            if P.jsonable(res):
                r['result'] = res
            else:
                try:
                    r['result'] = repr(res)
                except Exception as x:
                    r['result'] = '<unrepresentable %s: %s>' % (type(res).__name__, x)
                r['repr'] = True
        else:
            r['error'] = e
        if out:
            r['stdout'] = out
        res = None
        # a kept reply lives on (for duplicates): made now, while the request's garbage (its
        # payload, parsed content, per-use module) still fills the heap, it would land above it
        # and split the largest free block once that is collected; collected first, it fills a hole
        gc.collect()
        try:
            s = json.dumps(r)
        except MemoryError:  # no block for its text: written in pieces, else a smaller error reply
            gc.collect()
            if rt:
                try:
                    self.use('pcold').stream(self, self.pre + '/' + rt + '/in', r)
                    if keep and mid in self.recent:
                        self.recent[mid] = True
                    return
                except MemoryError:
                    gc.collect()
            r.pop('result', None)
            r.pop('stdout', None)
            gc.collect()
            r['ok'] = False
            r['error'] = {'kind': 'MemoryError', 'message': 'the reply is too large for this node', 'traceback': ''}
            s = json.dumps(r)
        r = None
        if rt:
            t = self.pre + '/' + rt + '/in'
            if keep and mid in self.recent:  # kept for duplicates when small
                self.recent[mid] = s if len(s) <= self.keep else True  # (its topic is made again)
            self.pub(t, s, 1)
        else:
            self.log(s, 'reply', 'info' if ok else 'error')

    def deliver(self, d):
        box = self.pending.get(d['correlation_id'])
        if box is not None:
            box[0] = d
            if box[1]:
                box[1].set()

    async def drain(self):
        while self.queue and not self.pumping:
            self.handle(self.queue.pop(0))
            await asyncio.sleep_ms(0)

    # ---- message types -----------------------------------------------------------------------
    def _t_eval(self, d):
        s = d['to_evaluate']
        return eval(_compile(s, '<eval>', 'eval') if _compile else s, self.ns)

    def _t_exec(self, d):
        s = d['to_exec']
        exec(_compile(s, '<exec>', 'exec') if _compile else s, self.ns)

    def _t_function(self, d):
        return self.use('pcold').function(self, d)

    def _t_apply(self, d):
        return self.use('pcold').apply(self, d)

    def _t_script(self, d):
        return self.use('pscript').deploy(self, d.get('name') or 'main', d['script'])

    def _t_file(self, d):
        return self.use('pfiles').chunk(self, d)

    def _t_command(self, d):
        c = d['command']
        if c == 'ping':
            return 'pong'
        return self.use('pcmd').run(self, c, d.get('kwargs') or {})

    def stop_blink(self):
        b = self.blinker
        self.blinker = None
        if b is not None:
            b.cancel()
        return b is not None

    def stop_script(self, n):
        t = self.scripts.pop(n)
        if t is asyncio.current_task():
            self.halt = t  # blocked in its own sleep (nap): it ends there
        else:
            t.cancel()

    def nap(self, ms):
        """time.sleep_ms as scripts see it: while a script sleeps, the node serves (pscript.nap)."""
        if self.napper is None or self.inside:
            if self.wdt:
                self.wdt.feed()
            return _sleep_ms(ms)
        self.napper(self, ms)

    def uptime(self):
        """Seconds since start. ticks_diff covers +-6.2 days on a board: whole hours move from
        t0 to `up` whenever this runs (each keepalive, presence, `info`)."""
        d = time.ticks_diff(time.ticks_ms(), self.t0)
        while d >= 3600000:
            self.up += 3600
            self.t0 = time.ticks_add(self.t0, 3600000)
            d -= 3600000
        return self.up + d / 1000

    def keepalive(self):
        """Keepalive: a PINGREQ every half KEEPALIVE; raises OSError when the broker is silent."""
        ka = self.mq.ka * 500
        self.uptime()
        t = time.ticks_ms()
        if ka and time.ticks_diff(t, self.pinged) >= ka:
            if time.ticks_diff(t, self.mq.last_rx) > ka * 3:
                raise OSError(110)
            self.pinged = t
            self.mq.ping()

    def reset(self):
        self.exit = 'reset'
        asyncio.create_task(self._stop_soon())

    async def _stop_soon(self):
        await asyncio.sleep_ms(50)
        self.conn.cancel()

    # ---- connection --------------------------------------------------------------------------
    def tick(self):  # after each message: collect, and track the most live heap seen
        gc.collect()
        a = gc.mem_alloc()
        if a > self.peak:
            self.peak = a

    async def _conn(self):
        cfg = self.cfg
        lo = _cfg(cfg, 'RECONNECT_MIN_MS', 500)
        hi = _cfg(cfg, 'RECONNECT_MAX_MS', 60000)
        n = cfg.BROKER_HOST  # a list names the hubs of one cluster: pconn takes the bi-th
        n = 1 if isinstance(n, str) else len(n) or 1  # (an empty list fails in pconn, and says so)
        delay = lo
        fails = 0  # connection attempts failed in a row: the next broker at once, a round backs off
        while True:
            if fails % n:
                await asyncio.sleep_ms(50)
            elif fails:
                j = os.urandom(2)
                await asyncio.sleep_ms(delay // 2 + (j[0] << 8 | j[1]) * delay // 65536)
                delay = min(delay * 2, hi)
            try:
                await pnet.up(cfg)
                self.use('pconn').connect(self)
            except Exception as e:
                _print('[plastic] connect to %s:%s failed: %r' % (self.mq.host, self.mq.port, e))
                self.mq.close()
                fails += 1
                self.bi += 1
                continue
            _print('[plastic] %s online' % self.name)
            delay = lo
            fails = 0
            self.serve = asyncio.create_task(self._serve())
            try:
                await self.serve
            except (Exception, asyncio.CancelledError) as e:
                if self.exit:  # a reset: main() says offline on this connection
                    return
                _print('[plastic] connection lost: %r' % (e,))
            self.serve = None
            self.mq.close()  # the same broker once more first: a blip must not move our session

    async def _serve(self):
        p = asyncio.create_task(self._pinger())
        try:
            while True:
                if self.queue and not self.pumping:
                    self.handle(self.queue.pop(0))
                    self.tick()
                    continue
                await self.mq.read()
                self.tick()
        finally:
            p.cancel()

    async def _pinger(self):
        ka = self.mq.ka * 500
        if not ka:
            return
        self.pinged = time.ticks_ms()
        while True:
            await asyncio.sleep_ms(ka - time.ticks_diff(time.ticks_ms(), self.pinged))
            if self.bye is not None:
                __import__('pbye').rebase(self)
            try:
                self.keepalive()
            except OSError as e:
                _print('[plastic] broker silent or gone: %r' % (e,))
                self.lost()
                return

    async def _wdt(self, ms):
        try:
            w = phw.machine.WDT(timeout=ms) if phw.PLATFORM != 'esp8266' else phw.machine.WDT()
        except Exception as e:
            self.log('no watchdog here: %r' % (e,), 'node', 'error')
            return
        self.wdt = w
        self.mq.feed = w.feed  # fed while a connection step waits, too
        while True:
            w.feed()
            await asyncio.sleep_ms(ms // 3 if ms < 3000 else 1000)

    async def main(self):
        self.conn = conn = asyncio.create_task(self._conn())
        if self.sig is not None and pnet.network is not None:
            asyncio.create_task(self.sig.keep_time(pnet))  # a board: keep the clock set
        ms = _cfg(self.cfg, 'WDT_TIMEOUT_MS', None)
        if ms is None:  # on by default on boards
            ms = 0 if phw.SIM else 8000
        if ms:
            asyncio.create_task(self._wdt(ms))
        for s in _cfg(self.cfg, 'AUTOSTART', ()):
            try:
                self.use('pscript').start(self, s)
            except Exception as e:
                self.log('autostart %s failed: %r' % (s, e), 'node', 'error')
        try:
            await conn  # runs until a reset cancels it
        except asyncio.CancelledError:
            pass
        self.offline()

    def offline(self):
        # (our own offline comes back to us, but no packet is handled after this: no answer)
        try:
            self.mq.publish(self.t_status, self.presence('offline'), 1, True)
        except Exception:
            pass
        self.mq.disconnect()


def run(cfg):
    """Runs the agent until a reset (returns 'reset') or Ctrl-C."""
    a = Agent(cfg)
    try:
        asyncio.run(a.main())
    except KeyboardInterrupt as e:
        try:
            bytearray(8)
        except MemoryError:
            # The heap is locked: on the unix port, Ctrl-C (raised from the SIGINT handler,
            # MICROPY_ASYNC_KBD_INTR) stopped a garbage collection, and no allocation can ever
            # succeed again (nor may a collection run: its marks are stale). pbye says goodbye
            # without the heap. (A board's Ctrl-C waits for the next bytecode: never here.)
            if a.say_bye:
                a.say_bye(a)
            raise e
        a.offline()
        raise e
    finally:
        try:  # a fresh loop for the next run: the old one's tasks must not run on
            asyncio.new_event_loop()
        except MemoryError:  # (the locked heap above: the process is ending anyway)
            pass
    if a.exit == 'reset' and not phw.SIM:
        phw.reset()
    return a.exit
