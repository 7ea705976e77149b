"""The worker's HTTP layer: standard library only (no torch import), one lock around GPU work.

Routes (see docs/gpu-worker.md):
  GET  /health                  readiness, models, device and VRAM
  POST /v1/images/generations   OpenAI images API subset -> {"data": [{"b64_json": PNG}]}
  POST /v1/image-to-3d          RGBA PNG + TRELLIS sampler parameters -> PLY (TRELLIS internal frame); with a
                                `mesh` object, a parts container of that PLY and the baked GLB (protocol.py)
  GET  /v1/received             the parameters of recent calls, for providers that record them (the fake)
Errors are JSON {"error": "..."}: 400 bad input, 404 unknown route, 413 body too large, 503 loading / failed to
load / out of GPU memory, 500 anything else. Every answer carries the protocol version (protocol.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import threading
import time
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

from .pngcodec import PngError, png_info
from .protocol import PARTS_CONTENT_TYPE, PROTOCOL_HEADER, PROTOCOL_VERSION, pack_parts
from .provider import BadInput, CancelToken, Cancelled, ImageRequest, MeshOptions, NotReady, OutOfMemory, Provider, SplatRequest

log = logging.getLogger("fast3d.gpu")

MAX_SEED = 2**32 - 1
# Bounds of a mesh request: to_glb's simplify is a share of triangles removed (1 would remove them all), and
# the baked texture's side in pixels. The bake optimises the whole texture with Adam on the GPU: at 8192 that
# alone is gigabytes, so the side stops at 4096 (the service's config stops there too).
MAX_SIMPLIFY = 0.99
TEXTURE_SIZES = (64, 4096)
SIZE_PATTERN = re.compile(r"^(\d{2,5})x(\d{2,5})$")
# A job's name, for DELETE /v1/jobs/<id>: the request's `job_id` field or X-Fast3d-Job header.
JOB_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
JOB_HEADER = "X-Fast3d-Job"
CANCELLED_STATUS = 499  # the client closed the request (or had it cancelled); nobody reads the answer
LOCK_POLL_S = 0.1


class Limits:
    """Bounds on requests; the defaults suit FLUX.1-schnell and TRELLIS."""

    def __init__(self, max_body_bytes: int = 64 * 1024 * 1024, max_side: int = 2048, max_steps: int = 100,
                 max_prompt_chars: int = 4096, max_image_side: int = 4096):
        self.max_body_bytes = max_body_bytes
        self.max_side = max_side
        self.max_steps = max_steps
        self.max_prompt_chars = max_prompt_chars
        self.max_image_side = max_image_side


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: Optional[dict] = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


class Worker:
    """Owns the provider, its loading thread and the GPU lock. Independent of the HTTP server so tests can
    drive it through a real socket or directly."""

    def __init__(self, provider: Provider, limits: Optional[Limits] = None, default_steps: int = 4,
                 retry_after_s: int = 5):
        self.provider = provider
        self.limits = limits or Limits()
        self.default_steps = default_steps
        self.retry_after_s = retry_after_s
        self.gpu = threading.Lock()
        self._loader: Optional[threading.Thread] = None
        self._jobs: dict = {}
        self._jobs_lock = threading.Lock()

    def start_loading(self) -> threading.Thread:
        """Loads the models in a background thread so /health answers (503, loading) meanwhile."""

        def run() -> None:
            started = time.monotonic()
            try:
                self.provider.load()
            except Exception as err:  # load() reports its own failures; this is the last resort
                log.exception("model loading crashed")
                mark = getattr(self.provider, "mark_failed", None)
                if mark:
                    mark(f"model loading crashed: {err}")
            status = self.provider.status()
            if status.state == "ready":
                log.info("models ready in %.1f s on %s", time.monotonic() - started, status.device)
            else:
                log.error("GPU WORKER NOT READY: %s", status.error or status.state)

        self._loader = threading.Thread(target=run, name="model-loader", daemon=True)
        self._loader.start()
        return self._loader

    # --- routes -------------------------------------------------------------------------------------------

    def health(self) -> tuple[int, dict]:
        status = self.provider.status()
        body = {
            "protocol": PROTOCOL_VERSION,
            "ready": status.state == "ready",
            "status": status.state,
            "error": status.error,
            "provider": self.provider.name,
            "models": [asdict(m) for m in status.models],
            "device": status.device,
            "vram_total": status.vram_total,
            "vram_used": status.vram_used,
            "flux_offload": status.flux_offload,
            "busy": self.gpu.locked(),
            "mesh": bool(self.provider.supports_mesh),
        }
        return (200 if body["ready"] else 503), body

    # --- cancellation ---------------------------------------------------------------------------------------

    def register(self, job_id: Optional[str], token: CancelToken) -> None:
        if job_id is None:
            return
        if not isinstance(job_id, str) or not JOB_ID.match(job_id):
            raise BadInput("job_id must be 1..64 characters of letters, digits, '_', '-' or '.'")
        with self._jobs_lock:
            if job_id in self._jobs:
                raise BadInput(f"job {job_id} is already running")
            self._jobs[job_id] = token

    def forget(self, job_id: Optional[str], token: CancelToken) -> None:
        with self._jobs_lock:
            if job_id is not None and self._jobs.get(job_id) is token:
                del self._jobs[job_id]

    def cancel(self, job_id: str) -> dict:
        """DELETE /v1/jobs/<id>: the job stops at its next stage or bake step and frees the GPU."""
        with self._jobs_lock:
            token = self._jobs.get(job_id)
        if token is None:
            raise HttpError(404, f"no running job {job_id}")
        token.cancel("cancelled by DELETE")
        return {"cancelled": job_id}

    def images_generations(self, body: Any, token: Optional[CancelToken] = None) -> dict:
        fields = _object(body)
        prompt = fields.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise BadInput("prompt must be a non-empty string")
        if len(prompt) > self.limits.max_prompt_chars:
            raise BadInput(f"prompt is longer than {self.limits.max_prompt_chars} characters")
        n = fields.get("n", 1)
        if n != 1 or isinstance(n, bool):
            raise BadInput("n must be 1 (one image per request)")
        response_format = fields.get("response_format", "b64_json")
        if response_format != "b64_json":
            raise BadInput('response_format must be "b64_json" (this server does not host image URLs)')
        width, height = self._size(fields.get("size", "1024x1024"))
        request = ImageRequest(
            prompt=prompt,
            width=width,
            height=height,
            steps=_integer(fields, "steps", 1, self.limits.max_steps, self.default_steps),
            seed=_integer(fields, "seed", 0, MAX_SEED, 0),
            cancel=token,
        )
        png = self._on_gpu(lambda: self.provider.generate_image(request), token)
        return {"created": int(time.time()), "data": [{"b64_json": base64.b64encode(png).decode("ascii")}]}

    def image_to_3d(self, body: Any, token: Optional[CancelToken] = None) -> tuple[bytes, str]:
        """(answer bytes, content type): the PLY alone, or with a `mesh` request the parts container of the
        PLY and the GLB."""
        fields = _object(body)
        encoded = fields.get("image")
        if not isinstance(encoded, str) or not encoded:
            raise BadInput("image must be a base64-encoded RGBA PNG")
        if encoded.startswith("data:"):
            encoded = encoded.split(",", 1)[-1]
        try:
            png = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput("image is not valid base64") from None
        try:
            info = png_info(png)
        except PngError as err:
            raise BadInput(f"image: {err}") from None
        if not info.has_alpha:
            raise BadInput("image must be an RGBA PNG (the alpha channel is the object's matte)")
        if max(info.width, info.height) > self.limits.max_image_side:
            raise BadInput(f"image is {info.width}x{info.height}, larger than {self.limits.max_image_side} on a side")
        request = SplatRequest(
            png=png,
            seed=_integer(fields, "seed", 0, MAX_SEED, 0),
            sparse_structure_steps=_integer(fields, "sparse_structure_steps", 1, self.limits.max_steps, 12),
            sparse_structure_cfg=_number(fields, "sparse_structure_cfg", 0.0, 50.0, 7.5),
            slat_steps=_integer(fields, "slat_steps", 1, self.limits.max_steps, 12),
            slat_cfg=_number(fields, "slat_cfg", 0.0, 50.0, 3.0),
            cancel=token,
        )
        mesh = self._mesh_options(fields.get("mesh"))
        if mesh is None:
            return self._on_gpu(lambda: self.provider.image_to_3d(request), token), "application/octet-stream"
        if not self.provider.supports_mesh:
            raise BadInput("this worker makes no meshes: start it with --mesh (FAST3D_WORKER_MESH=1), which loads "
                           "TRELLIS's mesh decoder and the bake's dependencies")
        ply, glb = self._on_gpu(lambda: self.provider.image_to_3d_mesh(request, mesh), token)
        return pack_parts([("ply", ply), ("glb", glb)]), PARTS_CONTENT_TYPE

    def _mesh_options(self, value: Any) -> Optional[MeshOptions]:
        """The request's `mesh` object ({"simplify", "texture_size"}, both optional), or None when it asks none."""
        if value is None or value is False:
            return None
        if value is True:
            value = {}
        fields = _object(value, "mesh")
        return MeshOptions(
            simplify=_number(fields, "simplify", 0.0, MAX_SIMPLIFY, 0.95, "mesh.simplify"),
            texture_size=_integer(fields, "texture_size", TEXTURE_SIZES[0], TEXTURE_SIZES[1], 1024, "mesh.texture_size"),
        )

    # --- helpers ------------------------------------------------------------------------------------------

    def _size(self, value: Any) -> tuple[int, int]:
        match = SIZE_PATTERN.match(value) if isinstance(value, str) else None
        if not match:
            raise BadInput('size must be "WIDTHxHEIGHT", e.g. "1024x1024"')
        width, height = int(match.group(1)), int(match.group(2))
        side = self.limits.max_side
        for v in (width, height):
            if v < 64 or v > side or v % 16:
                raise BadInput(f"size {value}: each side must be a multiple of 16 in 64..{side}")
        return width, height

    def _on_gpu(self, work: Callable[[], Any], token: Optional[CancelToken] = None) -> Any:
        """Runs `work` under the GPU lock; a job cancelled while it waits for the lock never starts."""
        status = self.provider.status()
        if status.state == "loading":
            raise NotReady("models are still loading; retry when GET /health says ready")
        if status.state != "ready":
            raise NotReady(f"models failed to load: {status.error}")
        while not self.gpu.acquire(timeout=LOCK_POLL_S):
            if token is not None:
                token.check()
        try:
            if token is not None:
                token.check()
            return work()
        finally:
            self.gpu.release()


def _object(body: Any, what: str = "request body") -> dict:
    if not isinstance(body, dict):
        raise BadInput(f"{what} must be a JSON object")
    return body


def _integer(fields: dict, name: str, low: int, high: int, default: int,
             label: Optional[str] = None) -> int:
    value = fields.get(name)
    name = label or name
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value != int(value):
        raise BadInput(f"{name} must be an integer")
    if not low <= value <= high:
        raise BadInput(f"{name} must be in {low}..{high}")
    return int(value)


def _number(fields: dict, name: str, low: float, high: float, default: float,
             label: Optional[str] = None) -> float:
    value = fields.get(name)
    name = label or name
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadInput(f"{name} must be a number")
    if not low <= value <= high:
        raise BadInput(f"{name} must be in {low}..{high}")
    return float(value)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fast3d-gpu-worker"
    worker: Worker  # set on the subclass made by make_server

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _job(self, body: Any, token: CancelToken) -> Optional[str]:
        """Registers the job under its id (body `job_id`, else the X-Fast3d-Job header) and watches the connection:
        a client that goes away cancels it. Returns the id (None when the client gave none)."""
        job_id = body.get("job_id") if isinstance(body, dict) else None
        job_id = job_id if job_id is not None else self.headers.get(JOB_HEADER)
        self.worker.register(job_id, token)
        _watch_disconnect(self.connection, token)
        return job_id
    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0].rstrip("/") or "/"
        started = time.monotonic()
        status = 500
        try:
            if method == "GET" and path == "/health":
                status, body = self.worker.health()
                self._json(status, body)
            elif method == "GET" and path == "/v1/received":
                received = self.worker.provider.received()
                if received is None:
                    raise HttpError(404, f"provider {self.worker.provider.name} does not record its calls")
                status = 200
                self._json(200, {"received": received})
            elif method == "POST" and path in ("/v1/images/generations", "/v1/image-to-3d"):
                body = self._read_json()
                token = CancelToken()
                job_id = self._job(body, token)
                try:
                    if path == "/v1/images/generations":
                        payload, content_type = json.dumps(self.worker.images_generations(body, token)).encode("utf-8"), "application/json"
                    else:
                        payload, content_type = self.worker.image_to_3d(body, token)
                finally:
                    token.cancel("finished")  # stops the connection watcher
                    self.worker.forget(job_id, token)
                status = 200
                self._send(200, payload, content_type)
            elif method == "DELETE" and path.startswith("/v1/jobs/"):
                status = 200
                self._json(200, self.worker.cancel(path[len("/v1/jobs/"):]))
            else:
                raise HttpError(404, f"no route for {method} {path}")
        except Exception as err:  # every failure becomes a JSON error; the process stays up
            status, message, headers = _classify(err, self.worker.retry_after_s)
            if isinstance(err, Cancelled):
                log.info("%s %s: %s", method, path, err)
            elif status >= 500 and not isinstance(err, (NotReady, OutOfMemory)):
                log.exception("request %s %s failed", method, path)
            self._json(status, {"error": message}, headers)
        finally:
            if path != "/health":
                log.info("%s %s %d %.0f ms", method, path, status, (time.monotonic() - started) * 1000)

    def _read_json(self) -> Any:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise HttpError(411, "Content-Length is required")
        try:
            length = int(length_header)
        except ValueError:
            raise HttpError(400, "Content-Length is not a number") from None
        if length > self.worker.limits.max_body_bytes:
            # The body is not read: close the connection rather than parse what follows as a request.
            self.close_connection = True
            raise HttpError(413, f"request body is larger than {self.worker.limits.max_body_bytes} bytes")
        raw = self.rfile.read(length)
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BadInput(f"request body is not valid JSON: {err}") from None

    def _json(self, status: int, body: Any, headers: Optional[dict] = None) -> None:
        self._send(status, json.dumps(body).encode("utf-8"), "application/json", headers)

    def _send(self, status: int, payload: bytes, content_type: str, headers: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header(PROTOCOL_HEADER, str(PROTOCOL_VERSION))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (signature from http.server)
        log.debug("%s - %s", self.address_string(), format % args)


def _classify(err: Exception, retry_after_s: int) -> tuple[int, str, dict]:
    if isinstance(err, HttpError):
        return err.status, str(err), err.headers
    if isinstance(err, BadInput):
        return 400, str(err), {}
    if isinstance(err, NotReady):
        return 503, str(err), {"Retry-After": str(retry_after_s)}
    if isinstance(err, OutOfMemory):
        return 503, str(err), {"Retry-After": "1"}
    if isinstance(err, Cancelled):
        return CANCELLED_STATUS, str(err), {}
    return 500, f"internal error: {type(err).__name__}: {err}", {}


def make_server(worker: Worker, host: str = "127.0.0.1", port: int = 9100) -> ThreadingHTTPServer:
    handler = type("Handler", (_Handler,), {"worker": worker})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def _watch_disconnect(connection: Any, token: CancelToken) -> None:
    """Cancels `token` when the client closes the connection before the answer (the service gave up at its deadline).
    A thread polls the socket until the token is set: readable with nothing to read means the peer has gone."""
    import select
    import socket

    def watch() -> None:
        while not token.cancelled:
            try:
                readable, _, _ = select.select([connection], [], [], 0.2)
                if readable and not connection.recv(1, socket.MSG_PEEK):
                    token.cancel("the client disconnected")
                    return
                if readable:  # the next pipelined request: not a hang-up
                    time.sleep(0.2)
            except (OSError, ValueError):  # closed under us: the request is over
                return

    threading.Thread(target=watch, name="disconnect-watch", daemon=True).start()
