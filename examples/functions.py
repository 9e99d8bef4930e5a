# Upload with `plastic cp functions.py NODE:functions.py`, then
# `plastic call NODE functions.add '{"a": 2, "b": 3}'`.

def add(a, b):
    return a + b


def led(on):
    """Lights (True) or darkens (False) the on-board LED, which is active low."""
    import machine
    machine.Pin(2, machine.Pin.OUT).value(0 if on else 1)
    return on
