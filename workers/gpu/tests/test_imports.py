"""The worker's import chain (trellis_imports.py) against stand-in packages laid out as TRELLIS's are: its
package __init__ pulls in open3d and kaolin, which the Gaussian path never calls."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import unittest
from unittest import mock

import helpers  # noqa: F401 (puts the worker on sys.path)
from fast3d_gpu import trellis_imports
from fast3d_gpu.trellis_imports import StandInUsed, configure_trellis_env, install_stand_ins

WORKER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "worker.py")


def write_tree(root: str, files: dict) -> None:
    for path, text in files.items():
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w", encoding="utf-8") as f:
            f.write(textwrap.dedent(text))


# A site-packages with just enough of each package for the worker's imports, TRELLIS's chain included.
FAKE_SITE = {
    "torch/__init__.py": """
        __version__ = "2.7.1+cu128"
        class version:
            cuda = "12.8"
    """,
    "huggingface_hub/__init__.py": "def snapshot_download(**kwargs): raise RuntimeError('offline')\n",
    "diffusers/__init__.py": "class FluxPipeline: pass\n",
    "xformers/__init__.py": "",
    "xformers/ops.py": "",
    "spconv/__init__.py": "",
    "spconv/pytorch.py": "",
    "trellis/__init__.py": "from . import pipelines, representations\n",
    "trellis/pipelines/__init__.py": """
        import os
        from .trellis_text_to_3d import TrellisTextTo3DPipeline
        class TrellisImageTo3DPipeline:
            backends = (os.environ.get('ATTN_BACKEND'), os.environ.get('SPARSE_ATTN_BACKEND'), os.environ.get('SPCONV_ALGO'))
    """,
    "trellis/pipelines/trellis_text_to_3d.py": "import open3d as o3d\nclass TrellisTextTo3DPipeline: pass\n",
    "trellis/pipelines/samplers.py": "class FlowEulerGuidanceIntervalSampler: pass\n",
    "trellis/models/__init__.py": "def from_pretrained(path): raise RuntimeError('stand-in')\n",
    "trellis/representations/__init__.py": "from .mesh import check\n",
    "trellis/representations/mesh.py": "from kaolin.utils.testing import check_tensor as check\n",
}


# What the mesh path imports beside the above (trellis_imports.MESH_MODULES).
MESH_SITE = {
    "gsplat/__init__.py": "def rasterization(*a, **k): raise RuntimeError('stand-in')\n",
    "xatlas/__init__.py": "", "pyvista/__init__.py": "", "pymeshfix/__init__.py": "", "igraph/__init__.py": "",
    "trimesh/__init__.py": "", "cv2/__init__.py": "", "utils3d/__init__.py": "", "utils3d/torch.py": "",
}


class StandInTest(unittest.TestCase):
    def setUp(self):
        self.saved = {k: v for k, v in sys.modules.items() if k.split(".")[0] in ("open3d", "kaolin")}
        for name in list(self.saved):
            del sys.modules[name]

    def tearDown(self):
        for name in [k for k in sys.modules if k.split(".")[0] in ("open3d", "kaolin")]:
            del sys.modules[name]
        sys.modules.update(self.saved)

    def test_absent_packages_import_but_refuse_to_be_used(self):
        # Absent whatever this machine has installed.
        with mock.patch.object(trellis_imports, "_importable", return_value=False):
            installed = install_stand_ins()
        self.assertEqual(installed, ["open3d", "kaolin"])
        from kaolin.utils.testing import check_tensor  # noqa: F401 (the import FlexiCubes makes)
        import open3d  # noqa: F401

        with self.assertRaises(StandInUsed) as caught:
            check_tensor(object(), (None, 3))
        self.assertIn("kaolin", str(caught.exception))
        self.assertIn("mesh", str(caught.exception))
        with self.assertRaises(StandInUsed):
            open3d.geometry.TriangleMesh()

    def test_a_real_package_is_never_replaced(self):
        with tempfile.TemporaryDirectory() as site:
            write_tree(site, {"open3d/__init__.py": "REAL = True\n", "kaolin/__init__.py": "REAL = True\n",
                              "kaolin/utils/__init__.py": "", "kaolin/utils/testing.py": "def check_tensor(*a, **k): return True\n"})
            sys.path.insert(0, site)
            try:
                self.assertEqual(install_stand_ins(), [])
                import open3d
                from kaolin.utils.testing import check_tensor

                self.assertTrue(open3d.REAL)
                self.assertTrue(check_tensor(None, None))
            finally:
                sys.path.remove(site)


class BackendTest(unittest.TestCase):
    def test_the_flags_overwrite_the_environment_for_dense_and_sparse_attention(self):
        saved = {k: os.environ.get(k) for k in ("ATTN_BACKEND", "SPARSE_ATTN_BACKEND", "SPCONV_ALGO")}
        os.environ.update({"ATTN_BACKEND": "sdpa", "SPCONV_ALGO": "native"})
        try:
            configure_trellis_env("flash_attn", "auto")
            self.assertEqual((os.environ["ATTN_BACKEND"], os.environ["SPARSE_ATTN_BACKEND"], os.environ["SPCONV_ALGO"]),
                             ("flash_attn", "flash_attn", "auto"))
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def test_backends_trellis_sparse_attention_cannot_run_are_refused(self):
        with self.assertRaises(ValueError) as caught:
            configure_trellis_env("sdpa", "auto")
        self.assertIn("xformers, flash_attn", str(caught.exception))
        self.assertEqual(trellis_imports.ATTENTION_BACKENDS, ("xformers", "flash_attn"))


class CheckImportsTest(unittest.TestCase):
    def run_worker(self, site, *args, env=None):
        environment = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": site, "ATTN_BACKEND": "sdpa", **(env or {})}
        # -S: no site-packages of this machine, only the stand-in tree (and the standard library).
        return subprocess.run([sys.executable, "-S", WORKER, "--check-imports", *args], env=environment,
                              capture_output=True, text=True, timeout=60)

    def test_check_imports_walks_trellis_chain_with_stand_ins_and_the_flags_backends(self):
        with tempfile.TemporaryDirectory() as site:
            write_tree(site, FAKE_SITE)
            result = self.run_worker(site)
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("imports ok: torch 2.7.1+cu128 (CUDA 12.8), attention xformers, spconv auto", result.stdout)
            self.assertIn("stand-ins: open3d, kaolin", result.stdout)

    def test_check_imports_with_meshes_loads_the_licence_clean_bake(self):
        with tempfile.TemporaryDirectory() as site:
            write_tree(site, {**FAKE_SITE, **MESH_SITE})
            result = self.run_worker(site, "--mesh")
            self.assertEqual(result.returncode, 0, result.stderr)
            self.assertIn("meshes yes (to_glb)", result.stdout)

    def test_a_non_commercial_module_pulled_in_by_any_import_fails_the_check(self):
        for culprit in ("nvdiffrast", "diff_gaussian_rasterization"):
            with tempfile.TemporaryDirectory() as site:
                tree = {**FAKE_SITE, **MESH_SITE, f"{culprit}/__init__.py": ""}
                tree["xatlas/__init__.py"] = f"import {culprit}\n"
                write_tree(site, tree)
                result = self.run_worker(site, "--mesh")
                self.assertEqual(result.returncode, 1, culprit)
                self.assertIn(f"{culprit} was imported, but its licence forbids commercial use", result.stderr)

    def test_check_imports_names_what_is_missing_and_fails(self):
        with tempfile.TemporaryDirectory() as site:
            tree = dict(FAKE_SITE)
            del tree["spconv/__init__.py"], tree["spconv/pytorch.py"]
            write_tree(site, tree)
            result = self.run_worker(site)
            self.assertEqual(result.returncode, 1)
            self.assertIn("imports FAILED", result.stderr)
            self.assertIn("spconv", result.stderr)

    def test_check_imports_without_torch_fails(self):
        with tempfile.TemporaryDirectory() as site:
            result = self.run_worker(site)
            self.assertEqual(result.returncode, 1)
            self.assertIn("torch", result.stderr)


if __name__ == "__main__":
    unittest.main()
