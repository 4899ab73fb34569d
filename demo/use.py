"""Marks an identity as used at a given time (the emulator cannot sign real requests in the past).

Usage: use.py role|user NAME RFC3339
"""

import json
import os
import sys
import urllib.request

kind, name, at = sys.argv[1:4]
body = {"account": os.environ["AWS_ACCESS_KEY_ID"], "kind": kind, "name": name, "last_used": at}
req = urllib.request.Request(f"{os.environ['AWS_ENDPOINT_URL']}/_dormant/iam/backdate", data=json.dumps(body).encode(), method="POST", headers={"Content-Type": "application/json"})
urllib.request.urlopen(req).read()
