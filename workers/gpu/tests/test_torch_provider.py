"""The real provider where torch is absent: it must report why, never raise, and the worker process must
stay up and say so on /health. Also the out-of-memory recognition, against a stand-in torch module."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import types
import unittest

import helpers
from helpers import health_after_loading
from fast3d_gpu.torch_provider import OPACITY_EPS, TorchProvider, is_out_of_memory, opacity_logits

WORKER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "worker.py")
# Runs worker.py with torch made unimportable, whatever this machine has installed.
WITHOUT_TORCH = (
    "import runpy, sys; sys.modules['torch'] = None; sys.argv = [sys.argv[1]] + sys.argv[2:]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


class TorchMissingTest(unittest.TestCase):
    def test_load_reports_torch_missing_without_raising(self):
        saved = sys.modules.get("torch", "absent")
        sys.modules["torch"] = None  # makes `import torch` raise ImportError
        try:
            provider = TorchProvider()
            provider.load()
        finally:
            if saved == "absent":
                del sys.modules["torch"]
            else:
                sys.modules["torch"] = saved
        status = provider.status()
        self.assertEqual(status.state, "failed")
        self.assertIn("torch is not installed", status.error)
        self.assertIn(sys.executable, status.error)

    def test_worker_process_stays_up_and_health_says_torch_is_missing(self):
        process = subprocess.Popen(
            [sys.executable, "-c", WITHOUT_TORCH, WORKER, "--port", "0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            line = process.stdout.readline()
            self.assertIn("listening on http://127.0.0.1:", line)
            url = line.split("listening on ")[1].split()[0]
            body = health_after_loading(url)
            self.assertIsNotNone(body)
            self.assertEqual((body["ready"], body["status"]), (False, "failed"))
            self.assertIn("torch is not installed", body["error"])
            time.sleep(0.2)
            self.assertIsNone(process.poll(), "the worker must stay up")
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=10)
        self.assertIn("GPU WORKER NOT READY: torch is not installed", stderr)

    def test_fake_flag_serves_the_fake_provider(self):
        process = subprocess.Popen([sys.executable, WORKER, "--fake", "--port", "0"], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
        try:
            line = process.stdout.readline()
            self.assertIn("provider=fake", line)
        finally:
            process.terminate()
            process.communicate(timeout=10)
        self.assertEqual(process.returncode, 0, "SIGTERM stops the worker cleanly")


class FakeTorch:
    """Just enough of torch's surface for the provider's bookkeeping: generators, no_grad, CUDA memory calls."""

    class OutOfMemoryError(RuntimeError):
        pass

    def __init__(self):
        self.emptied = 0
        self.seeds = []
        outer = self

        class Cuda:
            OutOfMemoryError = FakeTorch.OutOfMemoryError

            @staticmethod
            def empty_cache():
                outer.emptied += 1

            @staticmethod
            def mem_get_info():
                return (6 * 2**30, 48 * 2**30)

        self.cuda = Cuda

    def manual_seed(self, seed):
        self.seeds.append(seed)

    class Generator:
        def __init__(self, device):
            self.device = device

        def manual_seed(self, seed):
            self.seed = seed
            return self

    class no_grad:  # noqa: N801 (torch's name)
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False


class OutOfMemoryTest(unittest.TestCase):
    def test_cuda_oom_frees_the_cache_answers_503_and_the_worker_serves_on(self):
        torch = FakeTorch()
        calls = []

        def flux(**kwargs):
            calls.append(kwargs)
            raise FakeTorch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")

        provider = TorchProvider()
        provider._torch, provider._device_name, provider._state, provider._flux = torch, "Fake GPU", "ready", flux
        running = helpers.RunningWorker(provider, load=False)
        try:
            status, headers, body = running.json("POST", "/v1/images/generations", {"prompt": "a cup", "size": "512x512", "seed": 9, "steps": 3})
            self.assertEqual(status, 503)
            self.assertIn("CUDA out of memory during text-to-image", body["error"])
            self.assertIn("memory was freed", body["error"])
            self.assertEqual(torch.emptied, 1)
            self.assertEqual(calls[0]["num_inference_steps"], 3)
            self.assertEqual((calls[0]["height"], calls[0]["width"], calls[0]["guidance_scale"]), (512, 512, 0.0))
            self.assertEqual(calls[0]["generator"].seed, 9)
            self.assertEqual(torch.seeds, [9], "the global generators are seeded per call too")
            status, _, health = running.json("GET", "/health")
            self.assertEqual(status, 200)
            self.assertEqual((health["vram_total"], health["vram_used"]), (48 * 2**30, 42 * 2**30))
            self.assertEqual(health["device"], "cuda:0 (Fake GPU)")
        finally:
            running.close()

    def test_other_errors_are_not_treated_as_oom(self):
        provider = TorchProvider()
        provider._torch, provider._device_name = FakeTorch(), "Fake GPU"
        with self.assertRaises(ValueError):
            provider._guard("image-to-3d", lambda: (_ for _ in ()).throw(ValueError("bad shape")))
        self.assertEqual(provider._torch.emptied, 0)


class OutOfMemoryRecognitionTest(unittest.TestCase):
    def test_recognises_torch_oom_and_oom_runtime_errors_only(self):
        class OutOfMemoryError(RuntimeError):
            pass

        torch = types.SimpleNamespace(cuda=types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError))
        self.assertTrue(is_out_of_memory(torch, OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")))
        self.assertTrue(is_out_of_memory(torch, RuntimeError("CUDA error: out of memory")))
        self.assertFalse(is_out_of_memory(torch, RuntimeError("shape mismatch")))
        self.assertFalse(is_out_of_memory(None, ValueError("out of memory")))


class ListTensor:
    """A 1-D tensor of Python floats with the two methods opacity_logits uses, behaving as torch's do."""

    def __init__(self, values):
        self.values = [float(v) for v in values]

    def float(self):
        return ListTensor(self.values)

    def clamp(self, low, high):
        return ListTensor(min(high, max(low, v)) for v in self.values)


class ListTorch:
    @staticmethod
    def logit(t):
        # torch.logit without eps: log(p / (1 - p)), so exactly 0 and 1 give -inf and +inf.
        return ListTensor(math.inf if v >= 1 else -math.inf if v <= 0 else math.log(v / (1 - v)) for v in t.values)


class OpacityLogitTest(unittest.TestCase):
    def test_saturated_opacities_get_finite_logits_that_round_trip(self):
        logits = opacity_logits(ListTorch, ListTensor([0.0, 1e-9, 0.25, 0.5, 1.0])).values
        self.assertTrue(all(math.isfinite(v) for v in logits), logits)
        bound = math.log((1 - OPACITY_EPS) / OPACITY_EPS)
        self.assertAlmostEqual(logits[-1], bound, places=6)
        self.assertAlmostEqual(logits[0], -bound, places=6)
        self.assertAlmostEqual(logits[2], math.log(1 / 3), places=9)
        self.assertEqual(logits[3], 0.0)
        # The validator's sigmoid of the clamped value is still fully opaque at 8-bit precision.
        self.assertGreater(1 / (1 + math.exp(-logits[-1])), 1 - 1 / 512)


if __name__ == "__main__":
    unittest.main()
