# plastic agent configuration. Plain assignments: `plastic agent bundle` rewrites them.
WIFI_SSID = ''
WIFI_PASSWORD = ''
BROKER_HOST = '127.0.0.1'   # or the hubs of one cluster, tried in turn: ['10.0.0.2', '10.0.0.3:1884']
BROKER_PORT = 1883
BROKER_USER = ''
BROKER_PASSWORD = ''
BROKER_TLS = False          # True: TLS to the broker (port 8883 usually; set BROKER_PORT)
BROKER_CA = ''              # PEM CA certificate file on the board; '' = TLS without verification (insecure)
NODE_NAME = ''              # '' = platform + hex of machine.unique_id(), e.g. esp8266-a1b2c3
GROUPS = []                 # e.g. ['lab', 'kitchen']
POOLS = ()                  # pools whose requests this node shares (one member takes each), e.g. ['workers']
TOPIC_PREFIX = 'plastic'
WDT_TIMEOUT_MS = None       # None = 8000 on boards, off (0) on the unix port; 0 = off
KEEPALIVE = 30              # seconds; PINGREQ every KEEPALIVE/2
CLEAN_SESSION = False       # False: the broker keeps QoS 1 requests while the node is away
RECONNECT_MIN_MS = 500      # reconnect backoff, doubled up to RECONNECT_MAX_MS, with jitter
RECONNECT_MAX_MS = 60000
ROOT = 'node'               # uploaded files and scripts live here (importable)
LED_PIN = 2
LED_ACTIVE_LOW = None       # None = auto (True on ESP8266, False on ESP32)
MAX_PAYLOAD = 0             # 0 = the protocol's 262144; larger payloads are refused (PayloadTooLarge)
RX_BUFFER = None            # bytes reserved once for incoming payloads (the announced max_payload); None = heap / 8
AUTOSTART = []              # script names (saved by earlier `script` messages) started at boot
LEAN = True                 # drop rarely used modules (commands, files, scripts) after each use
DEDUP = None                # message_ids remembered against duplicate delivery (the protocol says 4096); None = 16, 8 under 64 KB of heap
DEDUP_REPLY_MAX = 320       # replies up to this many bytes are kept to be resent byte for byte
NODE_KEY = ''               # 64 hex digits: run only requests signed with this key; '' = signing off
MAX_SKEW = 120              # seconds a signed request's time_stamp may be from this node's clock
