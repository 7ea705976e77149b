"""`--flux-offload auto` (the default) picks FLUX's offload from the GPU's memory; the fake provider reports a
pretend GPU so the choice is checked end to end through the worker process and its /health."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import unittest
import urllib.error
import urllib.request

import helpers  # noqa: F401 (puts the worker on sys.path)
from fast3d_gpu.memory import GIB, choose_offload, resolve_offload

WORKER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "worker.py")


def health_of(*args):
    process = subprocess.Popen([sys.executable, WORKER, "--fake", "--port", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = process.stdout.readline().split("listening on ")[1].split()[0]
        deadline = time.monotonic() + 10
        while True:
            try:
                return json.loads(urllib.request.urlopen(url + "/health", timeout=5).read())
            except urllib.error.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        process.terminate()
        process.communicate(timeout=10)


class OffloadChoiceTest(unittest.TestCase):
    def test_card_sizes_as_the_driver_reports_them(self):
        self.assertEqual(choose_offload(int(22.5 * GIB)), "sequential")  # RTX 4090, L4 (24 GB)
        self.assertEqual(choose_offload(int(31.4 * GIB)), "sequential")  # RTX 5090 (32 GB)
        self.assertEqual(choose_offload(int(44.4 * GIB)), "model")  # L40S, RTX 6000 Ada (48 GB)
        self.assertEqual(choose_offload(int(79.1 * GIB)), "none")  # A100, H100 (80 GB)
        self.assertEqual(choose_offload(int(139.8 * GIB)), "none")  # H200, B200

    def test_an_explicit_mode_is_kept_and_unknown_ones_refused(self):
        self.assertEqual(resolve_offload("none", int(22.5 * GIB)), "none")
        with self.assertRaises(ValueError):
            resolve_offload("half", int(80 * GIB))

    def test_auto_is_the_default_and_health_reports_the_choice(self):
        self.assertEqual(health_of("--fake-vram-gb", "44.4")["flux_offload"], "model")
        self.assertEqual(health_of("--fake-vram-gb", "79.1")["flux_offload"], "none")
        body = health_of("--fake-vram-gb", "22.5", "--flux-offload", "model")
        self.assertEqual((body["flux_offload"], body["vram_total"]), ("model", int(22.5 * GIB)))

    def test_without_flux_there_is_nothing_to_offload(self):
        body = health_of("--fake-vram-gb", "22.5", "--no-flux")
        self.assertIsNone(body["flux_offload"])
        self.assertEqual([m["loaded"] for m in body["models"]], [False, True])


if __name__ == "__main__":
    unittest.main()
