"""Container health check: exit 0 when the service answers 200 on a path, else 1.

    python3 /opt/wavemae/healthcheck.py            # /healthz (the image's HEALTHCHECK)
    python3 /opt/wavemae/healthcheck.py /readyz    # ready: model loaded and warmed

Standard library only (the image has no curl). Reads the port from WAVEMAE_PORT (default 8000).
"""

import os
import sys
import urllib.request

path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
port = os.environ.get("WAVEMAE_PORT", "8000")
try:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception:  # refused, timed out, 503...: not healthy
    sys.exit(1)
