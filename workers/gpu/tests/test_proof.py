"""scripts/gpu-proof.py's parts that need no GPU: its arguments, its table, how a check becomes a row, the time
verdict, and (on a Python without torch) that every torch row says n/a rather than crashing."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import unittest

import helpers  # noqa: F401 (puts the worker on sys.path)

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))),
                      "scripts", "gpu-proof.py")


def load_proof():
    spec = importlib.util.spec_from_file_location("gpu_proof", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_proof"] = module
    spec.loader.exec_module(module)
    return module


proof = load_proof()


class ProofScriptTest(unittest.TestCase):
    def test_arguments(self):
        args = proof.parse_args([])
        self.assertEqual((args.device, args.quick, args.json), ("cuda", False, ""))
        args = proof.parse_args(["--device", "cpu", "--quick", "--json", "rows.json"])
        self.assertEqual((args.device, args.quick, args.json), ("cpu", True, "rows.json"))
        with self.assertRaises(SystemExit):
            proof.parse_args(["--device", "tpu"])

    def test_a_check_becomes_a_row(self):
        table = proof.Table()
        proof.run_check(table, "good", lambda: (True, "fine"))
        proof.run_check(table, "bad", lambda: (False, "PSNR 12.0 dB (needs 30)"))
        proof.run_check(table, "broken", lambda: 1 / 0)

        def missing():
            raise proof.NotApplicable("gsplat is not installed")

        proof.run_check(table, "absent", missing)
        self.assertEqual([(r.name, r.status) for r in table.rows],
                         [("good", "PASS"), ("bad", "FAIL"), ("broken", "FAIL"), ("absent", "n/a")])
        self.assertEqual(table.rows[2].detail, "ZeroDivisionError: division by zero")
        self.assertTrue(table.failed)
        text = table.render().splitlines()
        self.assertTrue(text[0].startswith("check"))
        self.assertRegex(text[2], r"^bad\s+FAIL\s+\d+\.\ds  PSNR 12\.0 dB \(needs 30\)$")
        self.assertFalse(proof.Table([proof.Row("x", "n/a", "")]).failed, "n/a is not a failure")
        with self.assertRaises(ValueError):
            table.add("odd", "MAYBE", "")

    def test_the_time_budget_is_ten_minutes(self):
        self.assertEqual(proof.time_verdict(599), (True, "599 s of 600 s"))
        self.assertFalse(proof.time_verdict(601)[0])

    def test_without_torch_the_device_row_fails_and_the_others_say_why_not(self):
        code = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = [sys.argv[1]] + sys.argv[2:]; "
                "runpy.run_path(sys.argv[0], run_name='__main__')")
        result = subprocess.run([sys.executable, "-c", code, SCRIPT, "--quick"], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.returncode, 1, "no torch proves nothing: the run fails")
        self.assertIn("device          FAIL", result.stdout)
        self.assertIn("torch is not installed", result.stdout)
        for row in ("FA3 decision", "raster", "bake mesh", "gsplat", "bake Gaussians", "same seed", "time"):
            self.assertIn(row, result.stdout)


if __name__ == "__main__":
    unittest.main()
