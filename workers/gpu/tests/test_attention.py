"""The FlashAttention-3 guard's decision by compute capability (attention.py), with torch and xformers mocked."""

from __future__ import annotations

import types
import unittest

import helpers  # noqa: F401 (puts the worker on sys.path)
from fast3d_gpu.attention import apply_fa3_guard, fa3_allowed, fa3_decision


def card(capability):
    return types.SimpleNamespace(cuda=types.SimpleNamespace(get_device_capability=lambda device=0: capability))


class Fmha:
    """xformers.ops.fmha's flag, as dispatch.py keeps it (on by default)."""

    def __init__(self):
        self.use_fa3 = True

    def _set_use_fa3(self, value):
        self.use_fa3 = value

    def _get_use_fa3(self):
        return self.use_fa3


class Fa3GuardTest(unittest.TestCase):
    def test_fa3_stays_on_ada_and_hopper_and_goes_off_on_blackwell(self):
        for capability, allowed in (((8, 0), True), ((8, 9), True), ((9, 0), True), ((10, 0), False), ((12, 0), False)):
            fmha = Fmha()
            decision = apply_fa3_guard(card(capability), fmha)
            self.assertEqual(fa3_allowed(capability), allowed, capability)
            self.assertEqual(fmha.use_fa3, allowed, capability)
            self.assertEqual(decision, fa3_decision(capability))
            self.assertIn("off" if not allowed else "left to xformers", decision)

    def test_without_xformers_only_the_decision_is_made(self):
        self.assertIn("off", apply_fa3_guard(card((12, 0)), None))

    def test_an_xformers_without_the_setter_is_refused_by_name(self):
        with self.assertRaisesRegex(RuntimeError, "_set_use_fa3"):
            apply_fa3_guard(card((10, 0)), types.SimpleNamespace())
        # On a card FA3 runs on, nothing needs setting.
        apply_fa3_guard(card((9, 0)), types.SimpleNamespace())


if __name__ == "__main__":
    unittest.main()
