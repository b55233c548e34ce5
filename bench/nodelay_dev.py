"""`formica dev` with TCP_NODELAY on the API front door: what the API figures could be.

Only for bench/api_load.py's comparison; it changes a class attribute in this process and then runs
the ordinary ``formica.local.cli_dev``. http.server writes a response's headers and body in two
sends; with Nagle's algorithm on, the second waits for the client's delayed ACK (about 40 ms on
Linux) whenever the connection is kept alive.
"""

import sys

from formica.local import front_door
from formica.local.cli_dev import main

front_door._GatewayRequestHandler.disable_nagle_algorithm = True

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
