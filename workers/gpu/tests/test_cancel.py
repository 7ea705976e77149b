"""Cancellation between stages and bake steps (DELETE /v1/jobs/<id>, a client that hangs up, a job cancelled while
it waits for the GPU), each freeing the GPU lock; and the mesh warm-up with its one retry after an out-of-memory."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import unittest

from helpers import RunningWorker
from test_server import disc_png, splat_body
from fast3d_gpu.fake import BAKE_STEPS, STAGES, FakeProvider
from fast3d_gpu.provider import CancelToken, Cancelled


class CancelTest(unittest.TestCase):
    def setUp(self):
        self.provider = FakeProvider(stage_seconds=0.15)
        self.running = RunningWorker(self.provider)
        self.running.wait_loaded()

    def tearDown(self):
        self.running.close()

    def post_in_background(self, body, headers=None):
        result = {}

        def run():
            status, answer_headers, data = self.running.request("POST", "/v1/image-to-3d", body, headers=headers)
            result["answer"] = (status, answer_headers, json.loads(data) if status != 200 else data)

        thread = threading.Thread(target=run)
        thread.start()
        return thread, result

    def wait_for_stage(self, count, timeout=5):
        deadline = time.monotonic() + timeout
        while len(self.provider.stages_run) < count and time.monotonic() < deadline:
            time.sleep(0.01)

    def test_delete_ends_a_mesh_job_between_bake_steps_and_frees_the_gpu(self):
        body = splat_body(disc_png(), mesh={"texture_size": 64})
        body["job_id"] = "job-7"
        thread, result = self.post_in_background(body)
        self.wait_for_stage(len(STAGES) + 1)  # into the bake
        started = time.monotonic()
        status, _, answer = self.running.json("DELETE", "/v1/jobs/job-7")
        self.assertEqual((status, answer), (200, {"cancelled": "job-7"}))
        thread.join(5)
        status, _, error = result["answer"]
        self.assertEqual(status, 499)
        self.assertIn("cancelled by DELETE", error["error"])
        self.assertLess(time.monotonic() - started, 1.0, "stopped at the next step, not at the end")
        ran = self.provider.stages_run
        self.assertTrue(set(STAGES) <= set(ran) and len(ran) < len(STAGES) + len(BAKE_STEPS), ran)
        _, _, health = self.running.json("GET", "/health")
        self.assertFalse(health["busy"], "the GPU lock is free")
        # The id is free again, and an unknown one is a 404.
        self.assertEqual(self.running.json("DELETE", "/v1/jobs/job-7")[0], 404)

    def test_the_job_id_may_come_in_a_header_and_bad_ids_are_refused(self):
        thread, result = self.post_in_background(splat_body(disc_png()), headers={"X-Fast3d-Job": "from-header"})
        self.wait_for_stage(1)
        self.assertEqual(self.running.json("DELETE", "/v1/jobs/from-header")[0], 200)
        thread.join(5)
        self.assertEqual(result["answer"][0], 499)
        body = splat_body(disc_png())
        body["job_id"] = "no spaces/please"
        status, _, error = self.running.json("POST", "/v1/image-to-3d", body)
        self.assertEqual(status, 400)
        self.assertIn("job_id", error["error"])

    def test_a_client_that_hangs_up_ends_its_job_and_the_next_one_runs(self):
        payload = json.dumps(splat_body(disc_png(), mesh={})).encode()
        conn = socket.create_connection(("127.0.0.1", self.running.port))
        conn.sendall(b"POST /v1/image-to-3d HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
        self.wait_for_stage(1)
        conn.close()  # the service's deadline passed: it gives up on the answer
        time.sleep(0.6)
        ran = list(self.provider.stages_run)
        self.assertLess(len(ran), 4, f"the job stopped at the next stage after the hang-up: {ran}")
        started = time.monotonic()
        status, _, _ = self.running.request("POST", "/v1/image-to-3d", splat_body(disc_png()))
        self.assertEqual(status, 200)
        self.assertLess(time.monotonic() - started, len(STAGES) * 0.15 + 1.0, "the next job did not wait behind it")

    def test_a_job_cancelled_while_waiting_for_the_gpu_never_runs(self):
        first, first_result = self.post_in_background(splat_body(disc_png()))
        self.wait_for_stage(1)
        body = splat_body(disc_png(), seed=99)
        body["job_id"] = "waiting"
        second, second_result = self.post_in_background(body)
        time.sleep(0.2)
        self.assertEqual(self.running.json("DELETE", "/v1/jobs/waiting")[0], 200)
        second.join(5)
        self.assertEqual(second_result["answer"][0], 499)
        first.join(5)
        self.assertEqual(first_result["answer"][0], 200)
        _, _, received = self.running.json("GET", "/v1/received")
        self.assertNotIn(99, [call["seed"] for call in received["received"]], "the cancelled job never reached the GPU")

    def test_the_token_raises_only_once_cancelled(self):
        token = CancelToken()
        token.check()
        token.cancel("first reason")
        token.cancel("second reason")
        with self.assertRaisesRegex(Cancelled, "first reason"):
            token.check()


class MeshWarmUpTest(unittest.TestCase):
    def load(self, **kwargs):
        provider = FakeProvider(**kwargs)
        provider.load()
        return provider, provider.status()

    def test_the_mesh_warm_up_bakes_before_ready(self):
        provider, status = self.load()
        self.assertEqual((status.state, provider.warmups, provider.cache_emptied), ("ready", 1, 0))
        provider, status = self.load(mesh=False)
        self.assertEqual((status.state, provider.warmups), ("ready", 0), "no mesh stack, no mesh warm-up")

    def test_an_out_of_memory_is_retried_once_after_emptying_the_cache(self):
        provider, status = self.load(warmup_failures=["oom"])
        self.assertEqual((status.state, provider.warmups, provider.cache_emptied), ("ready", 2, 1))

    def test_a_second_failure_is_reported_with_its_cause(self):
        provider, status = self.load(warmup_failures=["oom", "oom"])
        self.assertEqual((status.state, provider.warmups, provider.cache_emptied), ("failed", 2, 1))
        self.assertIn("warm-up failed twice, the second time after emptying the CUDA cache", status.error)
        self.assertIn("CUDA out of memory", status.error)

    def test_other_failures_are_not_retried(self):
        provider, status = self.load(warmup_failures=["xatlas missing"])
        self.assertEqual((status.state, provider.warmups, provider.cache_emptied), ("failed", 1, 0))
        self.assertEqual(status.error, "warm-up failed: RuntimeError: warm-up bake broke: xatlas missing")

    def test_the_worker_flag_reaches_the_fake(self):
        import worker

        provider = worker.build_provider(worker.parse_args(["--fake", "--fake-warmup-fail", "oom,oom"]))
        provider.load()
        self.assertIn("warm-up failed twice", provider.status().error)


if __name__ == "__main__":
    unittest.main()
