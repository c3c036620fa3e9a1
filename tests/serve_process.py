"""``voicepipe serve`` in a subprocess, its callers served by the stand-in transport."""

import sys

from voicepipe.cli import main
from voicepipe.serve import app

app.TRANSPORT_ROUTES["web"] = "serve_socket_transport"

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
