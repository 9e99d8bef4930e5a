# Simulated `machine` for ports without GPIO (the unix port): the ESP8266 pin bank 0-5, 12-16,
# all starting at 1; pin 2 is the on-board LED, active low. phw installs it as sys.modules['machine'].
import os

BANK = (0, 1, 2, 3, 4, 5, 12, 13, 14, 15, 16)
_v = {}
for _p in BANK:
    _v[_p] = 1
_uid = os.urandom(6)
reset_hook = None


class Pin:
    IN = 0
    OUT = 1
    PULL_UP = 1

    def __init__(self, id, mode=-1, pull=-1, value=None):
        if id not in _v:
            raise ValueError('invalid pin %r (the simulated bank is %r)' % (id, BANK))
        self.id = id
        if value is not None:
            _v[id] = 1 if value else 0

    def value(self, v=None):
        if v is None:
            return _v[self.id]
        _v[self.id] = 1 if v else 0

    def on(self):
        _v[self.id] = 1

    def off(self):
        _v[self.id] = 0


def unique_id():
    return _uid


def reset():
    if reset_hook:
        reset_hook()
