# Freezes the agent into a MicroPython firmware image, so its bytecode runs from flash and
# costs (almost) no RAM. ESP8266 builds need this for comfortable headroom (docs/agent.md):
#   cd micropython/ports/esp8266
#   make BOARD=ESP8266_GENERIC FROZEN_MANIFEST=/path/to/plastic/agent/firmware/manifest.py
# then copy only boot.py, main.py and config.py to the board.
include("$(PORT_DIR)/boards/manifest.py")
for m in ("pagent", "pcold", "pconn", "pcmd", "pfiles", "phw", "plastic", "pmachine", "pmqtt", "pnet", "pproto", "pscript",
          "psign", "ptls"):
    module(m + ".py", base_path="..")
