"""Shared test helpers: a worker on an ephemeral loopback port, and small HTTP calls."""

from __future__ import annotations

import http.client
import json
import logging
import os
import sys
import threading
import time
import urllib.error
import urllib.request
import unittest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fast3d_gpu.server import Limits, Worker, make_server  # noqa: E402

# Tests provoke failures on purpose; their tracebacks would only be noise.
logging.getLogger("fast3d.gpu").setLevel(logging.CRITICAL)


class RunningWorker:
    def __init__(self, provider, limits=None, load=True):
        self.worker = Worker(provider, limits or Limits())
        self.server = make_server(self.worker, "127.0.0.1", 0)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.loader = self.worker.start_loading() if load else None

    def wait_loaded(self, timeout=10):
        self.loader.join(timeout)

    def request(self, method, path, body=None, raw=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        conn.request(method, path, body=payload, headers={"Content-Type": "application/json", **(headers or {})})
        response = conn.getresponse()
        data = response.read()
        conn.close()
        return response.status, dict(response.getheaders()), data

    def json(self, method, path, body=None, **kw):
        status, headers, data = self.request(method, path, body, **kw)
        return status, headers, json.loads(data)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def health_after_loading(url: str, seconds: float = 10):
    """The worker's /health body once it stops loading and answers an error status (None if it never does)."""
    body, deadline = None, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=5)
        except urllib.error.HTTPError as err:
            body = json.loads(err.read())
            if body["status"] != "loading":
                break
        time.sleep(0.05)
    return body


class FakeWorkerTestCase(unittest.TestCase):
    """Tests against one worker with the fake provider, loaded once for the class."""

    @classmethod
    def setUpClass(cls):
        from fast3d_gpu.fake import FakeProvider

        cls.running = RunningWorker(FakeProvider())
        cls.running.wait_loaded()

    @classmethod
    def tearDownClass(cls):
        cls.running.close()


def parse_ply(data: bytes):
    """(header lines, count, rows of floats) of a binary little-endian float PLY."""
    import struct

    end = data.index(b"end_header\n") + len(b"end_header\n")
    lines = data[:end].decode("ascii").splitlines()
    count = int(lines[2].split()[2])
    names = [line.split()[2] for line in lines if line.startswith("property float ")]
    body = data[end:]
    row = struct.Struct("<" + "f" * len(names))
    rows = [dict(zip(names, row.unpack_from(body, i * row.size))) for i in range(count)]
    return lines, count, rows, len(body) == count * row.size
