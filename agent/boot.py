# boot.py: runs first on a board. Keep it tiny; main.py starts the agent.
import gc
try:
    import esp
    esp.osdebug(None)
except ImportError:
    pass
gc.collect()
