# main.py: starts the plastic agent (boards run it after boot.py; unix: `micropython main.py`).
import gc, sys
gc.collect()
try:
    import network
    network.WLAN(network.AP_IF).active(False)  # the access point is not needed
except Exception:
    pass
import config
import pagent

while True:
    try:
        r = pagent.run(config)
    except KeyboardInterrupt:
        break
    except Exception as e:  # never die: log and start again
        sys.print_exception(e)
        r = 'error'
        import time
        time.sleep(2)
    gc.collect()
    if r is None:
        break
