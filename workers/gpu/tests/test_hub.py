"""Pinned hub snapshots, hub errors as readiness messages, and the Gaussian-only TRELLIS folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import textwrap
import unittest
from unittest import mock

from helpers import health_after_loading  # (also puts the worker on sys.path)
from fast3d_gpu.hub import DINOV2_HUB_ENTRY, FLUX_FILES, TRELLIS_FILES, TRELLIS_MESH_FILES, HubError, fetch_snapshot, gaussian_only_folder, link_torch_hub_repo, read_revisions
from test_imports import FAKE_SITE, WORKER, write_tree

A = "a" * 40
B = "b" * 40


class FakeHub:
    """snapshot_download as huggingface_hub answers it: the folder .../snapshots/<commit>."""

    def __init__(self, root, current=A, error=None):
        self.root, self.current, self.error, self.calls = root, current, error, []

    def __call__(self, repo_id, revision=None, **patterns):
        self.calls.append((repo_id, revision))
        self.patterns = patterns
        if self.error:
            raise self.error
        path = os.path.join(self.root, repo_id.replace("/", "--"), "snapshots", revision or self.current)
        os.makedirs(path, exist_ok=True)
        return path


class GatedRepoError(Exception):
    """Named as huggingface_hub names it; the provider recognises the class by name."""


class SnapshotTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.revisions = os.path.join(self.dir.name, "revisions.json")

    def tearDown(self):
        self.dir.cleanup()

    def test_first_download_records_the_commit_and_later_starts_load_exactly_it(self):
        hub = FakeHub(self.dir.name, current=A)
        first = fetch_snapshot("org/model", None, self.revisions, hub, "Model")
        self.assertEqual(first.revision, A)
        self.assertEqual(read_revisions(self.revisions), {"org/model": A})
        hub.current = B  # the repository moved on
        again = fetch_snapshot("org/model", None, self.revisions, hub, "Model")
        self.assertEqual(again.revision, A)
        self.assertEqual(hub.calls[-1], ("org/model", A))

    def test_only_the_files_the_loaders_read_are_downloaded(self):
        hub = FakeHub(self.dir.name)
        fetch_snapshot("black-forest-labs/FLUX.1-schnell", None, None, hub, "FLUX.1-schnell", FLUX_FILES)
        self.assertIn("transformer/*", hub.patterns["allow_patterns"])
        self.assertNotIn("*.safetensors", hub.patterns["allow_patterns"], "not the single-file checkpoints at the top")
        fetch_snapshot("microsoft/TRELLIS-image-large", None, None, hub, "TRELLIS", TRELLIS_FILES)
        self.assertIn("ckpts/slat_dec_mesh*", hub.patterns["ignore_patterns"])

    def test_a_configured_commit_wins_and_branch_names_are_refused(self):
        hub = FakeHub(self.dir.name)
        self.assertEqual(fetch_snapshot("org/model", B, self.revisions, hub, "Model").revision, B)
        self.assertEqual(read_revisions(self.revisions), {}, "a configured pin needs no record")
        with self.assertRaises(HubError) as caught:
            fetch_snapshot("org/model", "main", self.revisions, hub, "Model")
        self.assertIn("not a 40-hex commit hash", str(caught.exception))

    def test_a_gated_model_says_to_accept_the_licence_and_set_hf_token(self):
        hub = FakeHub(self.dir.name, error=GatedRepoError("Access to model org/flux is restricted"))
        with mock.patch.dict(os.environ, {}, clear=False):
            os.environ.pop("HF_TOKEN", None)
            with self.assertRaises(HubError) as caught:
                fetch_snapshot("org/flux", None, self.revisions, hub, "FLUX.1-schnell")
        message = str(caught.exception)
        self.assertTrue(message.startswith("MODEL LICENCE NOT ACCEPTED: FLUX.1-schnell (org/flux) is gated"), message)
        self.assertIn("HF_TOKEN is not set", message)
        self.assertIn("accept the model's licence", message.lower())

    def test_an_unauthorised_answer_counts_as_gated(self):
        class Response:
            status_code = 401

        error = RuntimeError("401 Client Error")
        error.response = Response()
        hub = FakeHub(self.dir.name, error=error)
        with mock.patch.dict(os.environ, {"HF_TOKEN": "secret-token"}):
            with self.assertRaises(HubError) as caught:
                fetch_snapshot("org/flux", None, self.revisions, hub, "FLUX.1-schnell")
        self.assertIn("MODEL LICENCE NOT ACCEPTED", str(caught.exception))
        self.assertIn("HF_TOKEN is set", str(caught.exception))
        self.assertNotIn("secret-token", str(caught.exception))

    def test_a_gated_flux_is_the_workers_named_readiness_failure(self):
        # The real provider in the worker process, on stand-in packages: a CUDA device, and a hub that refuses.
        site = os.path.join(self.dir.name, "site")
        tree = dict(FAKE_SITE)
        tree["torch/__init__.py"] = textwrap.dedent("""
            __version__ = "2.7.1+cu128"
            class _Props:
                total_memory = 80 * 1024 ** 3
            class cuda:
                @staticmethod
                def is_available(): return True
                @staticmethod
                def get_device_name(i): return "Stand-in GPU"
                @staticmethod
                def get_device_properties(i): return _Props()
                @staticmethod
                def mem_get_info(): return (1, 2)
            class backends:
                class cudnn:
                    pass
        """)
        tree["huggingface_hub/__init__.py"] = textwrap.dedent("""
            class GatedRepoError(Exception):
                pass
            def snapshot_download(repo_id, revision=None, **patterns):
                raise GatedRepoError(f"Access to model {repo_id} is restricted")
        """)
        write_tree(site, tree)
        env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": site}
        process = subprocess.Popen([sys.executable, "-S", WORKER, "--port", "0", "--revisions-file", self.revisions],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            url = process.stdout.readline().split("listening on ")[1].split()[0]
            body = health_after_loading(url)
        finally:
            process.terminate()
            _, stderr = process.communicate(timeout=10)
        self.assertEqual(body["status"], "failed", stderr)
        self.assertTrue(body["error"].startswith(
            "MODEL LICENCE NOT ACCEPTED: FLUX.1-schnell (black-forest-labs/FLUX.1-schnell) is gated"), body["error"])
        self.assertIn("HF_TOKEN is not set", body["error"])
        self.assertIn("GPU WORKER NOT READY: MODEL LICENCE NOT ACCEPTED", stderr)


class GaussianFolderTest(unittest.TestCase):
    def test_only_the_models_the_gaussian_path_runs_are_listed_and_weights_are_linked(self):
        with tempfile.TemporaryDirectory() as root:
            snapshot = os.path.join(root, "snapshot")
            os.makedirs(os.path.join(snapshot, "ckpts"))
            with open(os.path.join(snapshot, "ckpts", "slat_dec_gs.json"), "w") as f:
                f.write("{}")
            models = {
                "sparse_structure_decoder": "ckpts/ss_dec", "sparse_structure_flow_model": "ckpts/ss_flow",
                "slat_decoder_gs": "ckpts/slat_dec_gs", "slat_decoder_rf": "ckpts/slat_dec_rf",
                "slat_decoder_mesh": "ckpts/slat_dec_mesh", "slat_flow_model": "ckpts/slat_flow",
            }
            with open(os.path.join(snapshot, "pipeline.json"), "w") as f:
                json.dump({"name": "TrellisImageTo3DPipeline", "args": {"models": models, "image_cond_model": "dinov2_vitl14_reg"}}, f)
            target = gaussian_only_folder(snapshot, os.path.join(root, "state", "trellis"))
            gaussian_only_folder(snapshot, target)  # a second start rewrites it in place
            with open(os.path.join(target, "pipeline.json")) as f:
                config = json.load(f)
            self.assertEqual(sorted(config["args"]["models"]),
                             ["slat_decoder_gs", "slat_flow_model", "sparse_structure_decoder", "sparse_structure_flow_model"])
            self.assertEqual(config["args"]["image_cond_model"], "dinov2_vitl14_reg")
            self.assertTrue(os.path.islink(os.path.join(target, "ckpts")))
            self.assertTrue(os.path.exists(os.path.join(target, "ckpts", "slat_dec_gs.json")))
            # With meshes on, the mesh decoder stays; the radiance-field decoder never does.
            meshed = gaussian_only_folder(snapshot, os.path.join(root, "state", "trellis-mesh"), mesh=True)
            with open(os.path.join(meshed, "pipeline.json")) as f:
                listed = sorted(json.load(f)["args"]["models"])
            self.assertIn("slat_decoder_mesh", listed)
            self.assertNotIn("slat_decoder_rf", listed)
            self.assertNotIn("ckpts/slat_dec_mesh*", TRELLIS_MESH_FILES["ignore_patterns"])

    def test_a_folder_without_a_gaussian_decoder_is_refused(self):
        with tempfile.TemporaryDirectory() as root:
            with open(os.path.join(root, "pipeline.json"), "w") as f:
                json.dump({"args": {"models": {"slat_decoder_mesh": "ckpts/m"}}}, f)
            with self.assertRaises(HubError):
                gaussian_only_folder(root, os.path.join(root, "out"))


class TorchHubPinTest(unittest.TestCase):
    def test_the_pinned_dinov2_checkout_replaces_an_unpinned_copy_in_torch_hub(self):
        with tempfile.TemporaryDirectory() as root:
            checkout = os.path.join(root, "dinov2")
            write_tree(checkout, {"hubconf.py": "dependencies = ['torch']\n"})
            hub_dir = os.path.join(root, "hub")
            write_tree(os.path.join(hub_dir, DINOV2_HUB_ENTRY), {"hubconf.py": "# newest upstream code\n"})
            link = link_torch_hub_repo(hub_dir, DINOV2_HUB_ENTRY, checkout)
            self.assertEqual(os.path.realpath(link), os.path.realpath(checkout))
            self.assertTrue(os.path.isdir(link + ".unpinned"))
            self.assertEqual(link_torch_hub_repo(hub_dir, DINOV2_HUB_ENTRY, checkout), link)
            with self.assertRaises(HubError):
                link_torch_hub_repo(hub_dir, DINOV2_HUB_ENTRY, os.path.join(root, "missing"))


if __name__ == "__main__":
    unittest.main()
