# Wi-Fi for boards; a no-op where there is no `network` module (the unix port).
import asyncio, time

try:
    import network
except ImportError:
    network = None

_synced = False


async def up(cfg):
    """Returns once the station interface has an address; raises OSError after 30 s."""
    global _synced
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
    if not _synced and time.gmtime()[0] < 2024:
        try:
            import ntptime
            ntptime.settime()
            _synced = True
        except Exception:
            pass


def address():
    if network is None:
        return '127.0.0.1'
    try:
        return network.WLAN(network.STA_IF).ifconfig()[0]
    except Exception:
        return ''
