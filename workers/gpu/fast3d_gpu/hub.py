"""Model snapshots from the Hugging Face hub at a pinned revision, and hub errors as readiness messages.

Pinning: every model the worker downloads has a default commit (below), passed to every hub call; the image and
the worker's flags can set another 40-hex commit, never a branch. With the revision set to empty, the first
download resolves the repository's current commit and records it in the revisions file (on the cache volume, next
to the weights), and every later start loads exactly that commit; that fallback is for trying a newer model, not
for competitions, which disqualify floating dependencies.

Where each default commit comes from (docs/gpu-worker.md "Pinned models"):
- TRELLIS-image-large 25e0d31ffbebe4b5a97464dd851910efc3002d96: the subnet's mesh base miner pins it
  (404-Repo/404-base-miner-mesh, model_versions.yml); hub cache paths in other public repositories show the same
  snapshot.
- FLUX.1-schnell 741f7c3ce8b383c54771c7003378a50191e9efe9: the snapshot folder of black-forest-labs/FLUX.1-schnell
  that several public repositories name in their hub cache paths (nod-ai/shark-ai, the Flux server README among
  them); no upstream project pins it in a lock file.

huggingface_hub's `snapshot_download(repo_id, revision=..., token=...)` returns the local folder
`.../snapshots/<commit>`; HF_TOKEN in the environment is read by huggingface_hub itself.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

COMMIT = re.compile(r"^[0-9a-f]{40}$")

TRELLIS_REVISION = "25e0d31ffbebe4b5a97464dd851910efc3002d96"
FLUX_REVISION = "741f7c3ce8b383c54771c7003378a50191e9efe9"


class HubError(RuntimeError):
    """A model could not be fetched; the message says what to do."""


@dataclass
class Snapshot:
    repo_id: str
    revision: str
    path: str


def is_local(model: str) -> bool:
    return os.path.isdir(model)


def read_revisions(path: Optional[str]) -> dict:
    if not path:
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def record_revision(path: Optional[str], repo_id: str, revision: str) -> None:
    if not path:
        return
    data = read_revisions(path)
    data[repo_id] = revision
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


# What each model's loader reads: FLUX.1-schnell's repository also holds the original single-file checkpoints
# (about 24 GB more) that diffusers' FluxPipeline never opens; TRELLIS's holds decoders the Gaussian path skips.
FLUX_FILES = {"allow_patterns": ["model_index.json", "scheduler/*", "text_encoder/*", "text_encoder_2/*",
                                 "tokenizer/*", "tokenizer_2/*", "transformer/*", "vae/*"]}
TRELLIS_FILES = {"ignore_patterns": ["ckpts/slat_dec_mesh*", "ckpts/slat_dec_rf*", "assets/*"]}
# With meshes on (--mesh), the mesh decoder's checkpoint (ckpts/slat_dec_mesh*: its .json and .safetensors) too.
TRELLIS_MESH_FILES = {"ignore_patterns": ["ckpts/slat_dec_rf*", "assets/*"]}


def fetch_snapshot(repo_id: str, revision: Optional[str], revisions_file: Optional[str],
                   download: Callable[..., str], label: str, files: Optional[dict] = None) -> Snapshot:
    """The snapshot of `repo_id` at the configured revision, else the recorded one, else the current commit
    (then recorded). `download` is huggingface_hub.snapshot_download (a stand-in in tests); `files` its
    allow_patterns / ignore_patterns."""
    if revision and not COMMIT.match(revision):
        raise HubError(f"{label}: revision {revision!r} is not a 40-hex commit hash; pin a commit, not a branch or tag")
    recorded = read_revisions(revisions_file).get(repo_id)
    wanted = revision or recorded or None
    try:
        path = download(repo_id=repo_id, revision=wanted, **(files or {}))
    except Exception as err:  # noqa: BLE001 (classified below; anything else passes through unchanged)
        raise HubError(describe_hub_error(repo_id, label, err)) from err
    resolved = os.path.basename(os.path.normpath(path))
    if not COMMIT.match(resolved):
        raise HubError(f"{label}: the hub cache gave {path}, which does not end in a commit hash")
    if wanted and resolved != wanted:
        raise HubError(f"{label}: asked for revision {wanted}, got {resolved}")
    if revisions_file and recorded != resolved and not revision:
        record_revision(revisions_file, repo_id, resolved)
    return Snapshot(repo_id, resolved, path)


def _chain(err: BaseException):
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        yield err
        err = err.__cause__ or err.__context__


def describe_hub_error(repo_id: str, label: str, err: BaseException) -> str:
    """One sentence for /health. Gated or unauthorised repositories get what to do about it."""
    names = {cls.__name__ for e in _chain(err) for cls in type(e).__mro__}
    text = " ".join(str(e) for e in _chain(err))
    status = _http_status(err)
    token = "HF_TOKEN is set" if os.environ.get("HF_TOKEN") else "HF_TOKEN is not set"
    if "GatedRepoError" in names or status in (401, 403) or "gated" in text.lower():
        return (
            f"MODEL LICENCE NOT ACCEPTED: {label} ({repo_id}) is gated on the Hugging Face hub and this token may not "
            f"download it ({token}). Accept the model's licence on its hub page with your account, create a read "
            "token, and start the container with HF_TOKEN set to it"
        )
    if "RepositoryNotFoundError" in names or "RevisionNotFoundError" in names or status == 404:
        return f"{label} ({repo_id}) or its revision was not found on the hub ({type(err).__name__}: {err})"
    if "LocalEntryNotFoundError" in names or "OfflineModeIsEnabled" in names:
        return f"{label} ({repo_id}) is not in the local cache and cannot be downloaded now ({type(err).__name__}: {err})"
    return f"{label} ({repo_id}) could not be downloaded: {type(err).__name__}: {err}"


def _http_status(err: BaseException) -> Optional[int]:
    for e in _chain(err):
        response: Any = getattr(e, "response", None)
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return status
    return None


# TRELLIS's pipeline.json lists every decoder; from_pretrained builds each one (trellis/pipelines/base.py).
# These two are never used for formats=["gaussian"] (trellis_image_to_3d.py decode_slat).
UNUSED_DECODERS = ("slat_decoder_mesh", "slat_decoder_rf")


def gaussian_only_folder(snapshot: str, target: str, mesh: bool = False) -> str:
    """A model folder for TrellisImageTo3DPipeline.from_pretrained whose pipeline.json lists only the models the
    Gaussian path runs: the mesh decoder (FlexiCubes, kaolin) and the radiance-field decoder are not built.
    With `mesh`, the mesh decoder is kept (formats=["gaussian", "mesh"]); the radiance-field one never is.
    Everything else links to the snapshot, so nothing is copied. Returns `target`."""
    with open(os.path.join(snapshot, "pipeline.json"), encoding="utf-8") as f:
        config = json.load(f)
    models = config.get("args", {}).get("models")
    if not isinstance(models, dict) or "slat_decoder_gs" not in models:
        raise HubError(f"{snapshot}/pipeline.json lists no Gaussian decoder (args.models.slat_decoder_gs)")
    if mesh and "slat_decoder_mesh" not in models:
        raise HubError(f"{snapshot}/pipeline.json lists no mesh decoder (args.models.slat_decoder_mesh)")
    unused = tuple(k for k in UNUSED_DECODERS if not (mesh and k == "slat_decoder_mesh"))
    config["args"]["models"] = {k: v for k, v in models.items() if k not in unused}
    os.makedirs(target, exist_ok=True)
    for entry in os.listdir(snapshot):
        if entry == "pipeline.json":
            continue
        link = os.path.join(target, entry)
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(os.path.join(os.path.abspath(snapshot), entry), link)
    tmp = os.path.join(target, f"pipeline.json.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(config, f, indent=2)
    os.replace(tmp, os.path.join(target, "pipeline.json"))
    return target


# TRELLIS loads DINOv2 with torch.hub.load("facebookresearch/dinov2", name) (trellis_image_to_3d.py
# _init_image_cond_model). torch.hub uses the checkout in <hub dir>/facebookresearch_dinov2_main when it is
# there and downloads the repository's newest code otherwise; a pinned checkout linked there keeps it fixed.
DINOV2_HUB_ENTRY = "facebookresearch_dinov2_main"


def link_torch_hub_repo(hub_dir: str, entry: str, checkout: str) -> str:
    """Makes <hub_dir>/<entry> the pinned `checkout`; an earlier, unpinned copy is moved aside. Returns the link."""
    if not os.path.isfile(os.path.join(checkout, "hubconf.py")):
        raise HubError(f"{checkout} is not a torch.hub repository checkout (no hubconf.py)")
    os.makedirs(hub_dir, exist_ok=True)
    link = os.path.join(hub_dir, entry)
    if os.path.islink(link):
        if os.path.realpath(link) == os.path.realpath(checkout):
            return link
        os.remove(link)
    elif os.path.exists(link):
        os.replace(link, f"{link}.unpinned")
    os.symlink(os.path.abspath(checkout), link)
    return link


def missing_model_files(folder: str) -> list:
    """The files a TRELLIS model folder's pipeline.json names (each model's .json and .safetensors) that are not
    there, relative to the folder; pipeline.json itself when it is missing."""
    config_path = os.path.join(folder, "pipeline.json")
    if not os.path.isfile(config_path):
        return ["pipeline.json"]
    with open(config_path, encoding="utf-8") as f:
        models = json.load(f).get("args", {}).get("models", {})
    missing = []
    for relative in models.values():
        for suffix in (".json", ".safetensors"):
            if not os.path.isfile(os.path.join(folder, relative + suffix)):
                missing.append(relative + suffix)
    return missing
