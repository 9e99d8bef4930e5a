# Wi-Fi for boards; a no-op where there is no `network` module (the unix port).
import asyncio, time

try:
    import network
except ImportError:
    network = None

synced = False  # the clock was set by NTP


async def up(cfg):
    """Returns once the station interface has an address; raises OSError after 30 s."""
    if network is None:
        return
    w = network.WLAN(network.STA_IF)
    if not w.isconnected():
        w.active(True)
        if cfg.WIFI_SSID:
            try:
                w.disconnect()
            except Exception:
                pass
            w.connect(cfg.WIFI_SSID, cfg.WIFI_PASSWORD)
        for _ in range(300):
            if w.isconnected():
                break
            await asyncio.sleep_ms(100)
        else:
            raise OSError(116, 'Wi-Fi not connected')
    if not synced and (time.gmtime()[0] < 2024 or getattr(cfg, 'NODE_KEY', '')):
        ntp()  # best effort: tried again at the next connect (with a key, every minute)


def ntp():
    """Sets the clock from NTP (blocks for up to ntptime's 1 s timeout)."""
    global synced
    try:
        import ntptime
        ntptime.settime()
        synced = True
    except Exception:
        synced = False
    return synced


def address():
    if network is None:
        return '127.0.0.1'
    try:
        return network.WLAN(network.STA_IF).ifconfig()[0]
    except Exception:
        return ''
