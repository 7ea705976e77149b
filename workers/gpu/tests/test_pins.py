"""The real provider's loading with every package stood in for: the pinned hub revisions reach every hub call, the
FlashAttention-3 guard runs before TRELLIS loads, and TRELLIS's folder is checked and loaded model by model so the
first failure is the one reported (never a retry on the hub)."""

from __future__ import annotations

import json
import os
import tempfile
import types
import unittest
from unittest import mock

import helpers  # noqa: F401 (puts the worker on sys.path)
from fast3d_gpu import torch_provider
from fast3d_gpu.hub import FLUX_REVISION, TRELLIS_REVISION
from fast3d_gpu.torch_provider import TorchOptions, TorchProvider

MODELS = {
    "sparse_structure_decoder": "ckpts/ss_dec", "sparse_structure_flow_model": "ckpts/ss_flow",
    "slat_decoder_gs": "ckpts/slat_dec_gs", "slat_decoder_mesh": "ckpts/slat_dec_mesh",
    "slat_decoder_rf": "ckpts/slat_dec_rf", "slat_flow_model": "ckpts/slat_flow",
}
SAMPLER = {"name": "FlowEulerGuidanceIntervalSampler", "args": {"sigma_min": 1e-5}, "params": {"steps": 25}}


class StandInHub:
    """huggingface_hub as the provider sees it: snapshot_download makes `.../snapshots/<revision>` with TRELLIS's or
    FLUX's files, and records each call; hf_hub_download (TRELLIS's fallback) must never be called."""

    def __init__(self, root, skip=()):
        self.root, self.skip, self.calls, self.single_file_calls = root, set(skip), [], []

    def snapshot_download(self, repo_id, revision=None, **patterns):
        self.calls.append((repo_id, revision))
        path = os.path.join(self.root, repo_id.replace("/", "--"), "snapshots", revision or "f" * 40)
        os.makedirs(path, exist_ok=True)
        if "TRELLIS" in repo_id:
            with open(os.path.join(path, "pipeline.json"), "w") as f:
                json.dump({"name": "TrellisImageTo3DPipeline", "args": {
                    "models": MODELS, "sparse_structure_sampler": SAMPLER, "slat_sampler": SAMPLER,
                    "slat_normalization": {"mean": [0], "std": [1]}, "image_cond_model": "dinov2_vitl14_reg"}}, f)
            os.makedirs(os.path.join(path, "ckpts"), exist_ok=True)
            for relative in MODELS.values():
                for suffix in (".json", ".safetensors"):
                    if relative + suffix not in self.skip:
                        open(os.path.join(path, relative + suffix), "w").close()
        return path

    def hf_hub_download(self, *args, **kwargs):
        self.single_file_calls.append((args, kwargs))
        raise AssertionError("an unpinned single-file hub download was attempted")


class StandInTorch:
    bfloat16 = "bfloat16"
    __version__ = "2.7.1+cu128"

    def __init__(self, hub_dir, capability=(9, 0)):
        outer = self
        self.seeds = []

        class Cuda:
            @staticmethod
            def is_available():
                return True

            @staticmethod
            def get_device_name(i):
                return "Stand-in GPU"

            @staticmethod
            def get_device_properties(i):
                return types.SimpleNamespace(total_memory=80 * 1024 ** 3)

            @staticmethod
            def get_device_capability(i=0):
                return capability

            @staticmethod
            def mem_get_info():
                return (1, 2)

        self.cuda = Cuda
        self.backends = types.SimpleNamespace(cudnn=types.SimpleNamespace())
        self.hub = types.SimpleNamespace(get_dir=lambda: hub_dir)
        self.version = types.SimpleNamespace(cuda="12.8")
        self.manual_seed = outer.seeds.append


class StandInFlux:
    loaded = []

    @classmethod
    def from_pretrained(cls, folder, torch_dtype=None):
        cls.loaded.append(folder)
        pipe = types.SimpleNamespace(to=lambda device: None, set_progress_bar_config=lambda **kw: None)
        return pipe


class StandInPipeline:
    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def cuda(self):
        return None


class Modules:
    def __init__(self, root, hub, capability=(9, 0), fail_model=None):
        self.torch = StandInTorch(os.path.join(root, "torch-hub"), capability)
        self.hub = hub
        self.loaded = []
        self.fa3 = []

        def from_pretrained(path):
            self.loaded.append(path)
            if fail_model and path.endswith(fail_model):
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return f"model at {path}"

        self.fmha = types.SimpleNamespace(_set_use_fa3=self.fa3.append)
        self.dict = {
            "torch": self.torch, "huggingface_hub": hub, "FluxPipeline": StandInFlux,
            "TrellisImageTo3DPipeline": StandInPipeline, "fmha": self.fmha,
            "trellis_models": types.SimpleNamespace(from_pretrained=from_pretrained),
            "trellis_samplers": types.SimpleNamespace(FlowEulerGuidanceIntervalSampler=lambda **kw: ("sampler", kw)),
        }


class PinnedLoadTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.root = self.dir.name

    def tearDown(self):
        self.dir.cleanup()

    def load(self, modules, **options):
        provider = TorchProvider(TorchOptions(warmup=False, state_dir=os.path.join(self.root, "state"),
                                              revisions_file=os.path.join(self.root, "revisions.json"), **options))
        with mock.patch.object(torch_provider, "import_worker_modules", lambda *a, **k: modules.dict):
            provider.load()
        return provider

    def test_the_pinned_revisions_reach_every_hub_call(self):
        hub = StandInHub(self.root)
        modules = Modules(self.root, hub)
        provider = self.load(modules, mesh=True)
        status = provider.status()
        self.assertEqual(status.state, "ready", status.error)
        self.assertEqual(hub.calls, [("black-forest-labs/FLUX.1-schnell", FLUX_REVISION),
                                     ("microsoft/TRELLIS-image-large", TRELLIS_REVISION)])
        self.assertEqual(hub.single_file_calls, [], "no hub call without a revision")
        self.assertEqual([m.revision for m in status.models], [FLUX_REVISION, TRELLIS_REVISION])
        self.assertEqual(TRELLIS_REVISION, "25e0d31ffbebe4b5a97464dd851910efc3002d96")
        self.assertFalse(os.path.exists(os.path.join(self.root, "revisions.json")), "a pinned commit needs no record")
        # Every TRELLIS model came from the local folder, each once.
        self.assertEqual(len(modules.loaded), 5, "the radiance-field decoder is never loaded")
        self.assertTrue(all(path.startswith(os.path.join(self.root, "state")) for path in modules.loaded), modules.loaded)

    def test_the_image_defaults_are_the_pins(self):
        import worker

        with mock.patch.dict(os.environ, {}, clear=False):
            for key in ("FAST3D_WORKER_FLUX_REVISION", "FAST3D_WORKER_TRELLIS_REVISION"):
                os.environ.pop(key, None)
            args = worker.parse_args([])
        self.assertEqual((args.flux_revision, args.trellis_revision), (FLUX_REVISION, TRELLIS_REVISION))

    def test_a_missing_checkpoint_is_named_before_anything_loads(self):
        hub = StandInHub(self.root, skip={"ckpts/slat_flow.safetensors"})
        modules = Modules(self.root, hub)
        status = self.load(modules, load_flux=False).status()
        self.assertEqual(status.state, "failed")
        self.assertIn("lacks ckpts/slat_flow.safetensors", status.error)
        self.assertEqual(modules.loaded, [], "nothing is loaded from an incomplete folder")
        self.assertEqual(hub.single_file_calls, [])

    def test_a_model_that_fails_to_load_reports_its_own_first_error(self):
        hub = StandInHub(self.root)
        modules = Modules(self.root, hub, fail_model="ckpts/slat_dec_gs")
        status = self.load(modules, load_flux=False).status()
        self.assertEqual(status.state, "failed")
        self.assertIn("TRELLIS model slat_decoder_gs", status.error)
        self.assertIn("CUDA out of memory", status.error)
        self.assertNotIn("not found", status.error)
        self.assertEqual(sum(path.endswith("slat_dec_gs") for path in modules.loaded), 1, "no second attempt")
        self.assertEqual(hub.single_file_calls, [], "never retried as a hub repository")

    def test_the_fa3_guard_runs_before_trellis_loads(self):
        for capability, expected in (((9, 0), []), ((12, 0), [False])):
            modules = Modules(self.root, StandInHub(self.root), capability=capability)
            provider = self.load(modules, load_flux=False)
            self.assertEqual(provider.status().state, "ready")
            self.assertEqual(modules.fa3, expected, capability)
            self.assertIn(f"compute {capability[0]}.{capability[1]}", provider.attention_decision)


if __name__ == "__main__":
    unittest.main()
