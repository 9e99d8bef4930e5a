# Simulated `machine` for ports without GPIO (the unix port): the ESP8266 pin bank 0-5, 12-16,
# all starting at 1; pin 2 is the on-board LED, active low. phw installs it as sys.modules['machine'].
import os

BANK = (0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16)
_state = {}
for _p in BANK:
    _state[_p] = 1
_uid = os.urandom(6)
reset_hook = None


class Pin:
    IN = 0
    OUT = 1
    OPEN_DRAIN = 2
    PULL_UP = 1
    PULL_DOWN = 2
    IRQ_FALLING = 2
    IRQ_RISING = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        if id not in _state:
            raise ValueError('invalid pin %r (the simulated bank is %r)' % (id, BANK))
        self.id = id
        self.mode = mode
        if value is not None:
            self.value(value)

    def init(self, mode=-1, pull=-1, value=None):
        self.mode = mode
        if value is not None:
            self.value(value)

    def value(self, v=None):
        if v is None:
            return _state[self.id]
        _state[self.id] = 1 if v else 0

    def __call__(self, v=None):
        return self.value(v)

    def on(self):
        _state[self.id] = 1

    def off(self):
        _state[self.id] = 0

    def __repr__(self):
        return 'Pin(%d)' % self.id


def unique_id():
    return _uid


def reset():
    if reset_hook:
        reset_hook()
    raise SystemExit


soft_reset = reset


def idle():
    pass


def freq(*a):
    return 80000000
