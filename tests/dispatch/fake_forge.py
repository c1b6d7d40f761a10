"""A stand-in Forge server for the dispatcher's tests: real HTTP on 127.0.0.1, Forge's REST shapes, and faults on
demand (slow, refusing, hanging, frozen, dying mid-request, stopped and started again on the same port).

Written from Forge's own code (lllyasviel/stable-diffusion-webui-forge, snapshot dfdcbab6; facts only, cited
file:line) and ../shared/research/forge-api.md. Standard library only, and nothing from lib_orchestrator: it models
the host, not our idea of it.

    fake = FakeForge(checkpoints=["sd_xl_base_1.0.safetensors [31e35c80fc]"], loras=["detail", ("x_v2", "x")])
    fake.start(); ...; fake.stop()       # or: with FakeForge(...) as fake:
    python tests/dispatch/fake_forge.py --port P [--seconds-per-image S] [--switch-s S] [--checkpoint T]... \
        [--lora NAME[=ALIAS]]... [--loaded T] [--auth USER:PASS] [--nowebui] [--no-orchestrator] [--no-api]
    (prints "listening URL" then "ready" once it accepts connections; serves until killed)

What it does like Forge:
- txt2img/img2img run one at a time under a FIFO lock (modules/api/api.py:480, modules/fifo_lock.py); a waiting
  request holds its connection open without an answer.
- progress: `GET /sdapi/v1/progress` answers {progress, eta_relative, state{…}, current_image, textinfo} and NOT
  which task runs (models.py:187-192); `POST /internal/progress {"id_task"}` answers {active, queued, completed,
  progress, eta, live_preview, id_live_preview, textinfo} (modules/progress.py:66-99), only in web-UI mode
  (webui.py:131; `nowebui=True` drops /internal/*).
- checkpoints load lazily: `POST /options` records the choice, the next generation pays `switch_s` (research §0.6);
  `override_settings.sd_model_checkpoint` must be an exact alias (sd_models.py:104-106) or it is dropped silently
  (processing.py:825-826); with override_settings_restore_afterwards (default true) the old choice comes back after
  the job, and the job after pays a load again.
- errors: an exception answers 500 {"error", "detail": "", "body": "", "message"} (webui.py:30-38); an unknown
  sampler falls back to "DPM++ 2M" silently (sd_samplers.py:113-134); an unknown hires sampler fails with
  500 AssertionError "bad sampler name: X" (sd_samplers.py:37); an unknown always-on script is 422
  {"detail": "Script 'X' not found"} (api.py:36-40); an unknown LoRA is no error, and then no LoRA applies.
- `auth=("u", "p")` (--api-auth): 401 {"detail": "Not authenticated"} without credentials, {"detail": "Incorrect
  username or password"} with wrong ones, on api.py's routes only; /sdapi/v1/loras and /internal/* stay open
  (api.py:277-286, lora_script.py:51-58).
- images: base64 PNGs (tiny, deterministic from prompt, negative, seed, checkpoint, steps and size) with the
  infotext in a `parameters` tEXt chunk (iTXt when not Latin-1, as PIL does); `info` is a JSON string.
"""
from __future__ import annotations

import argparse
import base64
import collections
import hashlib
import json
import random
import socket
import struct
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union
from urllib.parse import parse_qs, urlsplit

VERSION = "f2.0.1v1.10.1-previous-669-gdfdcbab6"
MODELS_DIR = "/forge/models/Stable-diffusion"
LORA_DIR = "/forge/models/Lora"
# Forge's sampler names in list order; the first is the fallback (research forge-api.md §1.7, sd_samplers.py:114)
SAMPLERS = ("DPM++ 2M", "DPM++ SDE", "DPM++ 2M SDE", "DPM++ 2M SDE Heun", "DPM++ 2S a", "DPM++ 3M SDE", "Euler a",
            "Euler", "LMS", "Heun", "DPM2", "DPM2 a", "DPM fast", "DPM adaptive", "Restart", "HeunPP2", "IPNDM",
            "IPNDM_V", "DEIS", "DDIM", "DDIM CFG++", "PLMS", "UniPC", "LCM", "DDPM")
# a few of their aliases, as /sdapi/v1/samplers lists them (sd_samplers_kdiffusion.py:15-28); the API never looks a
# sampler up by alias (sd_samplers.py:128 reads all_samplers_map, keyed by name)
SAMPLER_ALIASES = {"DPM++ 2M": ["k_dpmpp_2m"], "DPM++ SDE": ["k_dpmpp_sde"],
                   "Euler a": ["k_euler_a", "k_euler_ancestral"], "Euler": ["k_euler"],
                   "LMS": ["k_lms"], "Heun": ["k_heun"], "DDIM": ["ddim"], "UniPC": ["unipc"]}
# (name, label, aliases) in Forge's order; the first is the fallback (sd_schedulers.py:211-228)
SCHEDULERS = (("automatic", "Automatic", None), ("uniform", "Uniform", None), ("karras", "Karras", None),
              ("exponential", "Exponential", None), ("polyexponential", "Polyexponential", None),
              ("sgm_uniform", "SGM Uniform", ["SGMUniform"]), ("kl_optimal", "KL Optimal", None),
              ("align_your_steps", "Align Your Steps", None), ("simple", "Simple", None), ("normal", "Normal", None),
              ("ddim", "DDIM", None), ("beta", "Beta", None), ("turbo", "Turbo", None))
UPSCALERS = ("None", "Lanczos", "Nearest", "ESRGAN_4x", "R-ESRGAN 4x+", "R-ESRGAN 4x+ Anime6B", "SwinIR_4x")
LATENT_UPSCALE_MODES = ("Latent", "Latent (antialiased)", "Latent (bicubic)", "Latent (bicubic antialiased)",
                        "Latent (nearest)", "Latent (nearest-exact)")  # modules/shared.py:56-63
OPTION_DEFAULTS: Dict[str, Any] = {  # a few of Forge's options (modules/shared_options.py), enough for clients
    "sd_model_checkpoint": None, "sd_checkpoint_hash": "", "CLIP_stop_at_last_layers": 1, "samples_format": "png",
    "sd_vae": "Automatic", "forge_additional_modules": [], "forge_preset": "sd", "sd_lora": "None",
    "lora_preferred_name": "Alias from file", "live_previews_enable": True, "show_progress_every_n_steps": 10,
    "enable_pnginfo": True, "add_model_hash_to_info": True, "add_model_name_to_info": True,
}

# Forge's 500 body for a CUDA out-of-memory during sampling (webui.py:30-38 around torch's message)
OOM = (500, {"error": "OutOfMemoryError", "detail": "", "body": "",
             "message": "CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0 has a total capacity of 23.99 GiB of "
                        "which 1.12 GiB is free. Of the allocated memory 20.61 GiB is allocated by PyTorch, and "
                        "1.54 GiB is reserved by PyTorch but unallocated."})
# what A1111 (and Forge's unreachable branch, api.py:43-46) answers for a sampler it does not know
SAMPLER_NOT_FOUND = (404, {"detail": "Sampler not found"})


def infotext_quote(text: Any) -> Any:
    """Forge's infotext_utils.quote (infotext_utils.py:58-62)."""
    if "," not in str(text) and "\n" not in str(text) and ":" not in str(text):
        return text
    return json.dumps(text, ensure_ascii=False)


def png_bytes(key: str, infotext: str, size: int = 8) -> bytes:
    """A tiny RGB PNG whose pixels follow from `key`, carrying `infotext` as Forge's `parameters` chunk."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    seed = hashlib.sha256(key.encode("utf-8")).digest()
    pixels = (seed * (size * size * 3 // len(seed) + 1))[: size * size * 3]
    raw = b"".join(b"\x00" + pixels[y * size * 3:(y + 1) * size * 3] for y in range(size))
    try:
        text = chunk(b"tEXt", b"parameters\x00" + infotext.encode("latin-1"))
    except UnicodeEncodeError:  # PIL writes iTXt (utf-8) when the text is not Latin-1 (research §3.1)
        text = chunk(b"iTXt", b"parameters\x00\x00\x00\x00\x00" + infotext.encode("utf-8"))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)) + text
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class FakeCheckpoint:
    """One checkpoint file as Forge's CheckpointInfo describes it (sd_models.py:62-106), from its title."""

    def __init__(self, title: str) -> None:
        name, _, rest = title.partition(" [")
        self.name = name
        self.shorthash = rest.rstrip("]") if rest else None
        self.sha256 = (self.shorthash + hashlib.sha256(name.encode()).hexdigest()[10:]) if self.shorthash else None
        self.title = title if self.shorthash else name
        self.filename = f"{MODELS_DIR}/{name}"
        self.model_name = name.replace("/", "_").replace("\\", "_").rsplit(".", 1)[0]
        self.stem = name.replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]  # name_for_extra
        self.legacy_hash = hashlib.sha256(("legacy" + name).encode()).hexdigest()[:8]
        self.ids = [self.legacy_hash, self.model_name, self.title, name, self.stem, f"{name} [{self.legacy_hash}]"]
        if self.shorthash:
            self.ids += [self.shorthash, self.sha256, f"{name} [{self.shorthash}]", f"{self.stem} [{self.shorthash}]"]

    def api(self) -> Dict[str, Any]:  # api.py:729
        return {"title": self.title, "model_name": self.model_name, "hash": self.shorthash, "sha256": self.sha256,
                "filename": self.filename, "config": None}


class FakeLora:
    def __init__(self, spec: Union[str, Tuple[str, str]]) -> None:
        name, alias = (spec, spec) if isinstance(spec, str) else spec
        self.name, self.alias = name, alias or name
        self.path = f"{LORA_DIR}/{name}.safetensors"
        self.shorthash = hashlib.sha256(("lora" + name).encode()).hexdigest()[:12]

    def api(self) -> Dict[str, Any]:  # lora_script.py:42-48
        meta = {"ss_output_name": self.alias} if self.alias != self.name else {}
        return {"name": self.name, "alias": self.alias, "path": self.path, "metadata": meta}


class _FifoLock:
    """First come, first served, like Forge's queue_lock (modules/fifo_lock.py); a waiter gives up on `abort`."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._next = 0
        self._serving = 0

    def acquire(self, abort: Callable[[], bool]) -> bool:
        with self._cond:
            ticket = self._next
            self._next += 1
            while self._serving != ticket:
                if abort():
                    # leave the line without blocking those behind: hand our turn on when it comes
                    threading.Thread(target=self._skip, args=(ticket,), daemon=True).start()
                    return False
                self._cond.wait(0.05)
            return True

    def _skip(self, ticket: int) -> None:
        with self._cond:
            while self._serving != ticket:
                self._cond.wait(0.05)
            self._serving += 1
            self._cond.notify_all()

    def release(self) -> None:
        with self._cond:
            self._serving += 1
            self._cond.notify_all()


class _Dropped(Exception):
    """The connection is closed without an answer (die_mid_request, freeze or stop)."""


class _HttpError(Exception):
    def __init__(self, status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: "FakeForge"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.fake._cond:
            self.fake._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.fake._cond:
            self.fake._connections.discard(request)
        super().shutdown_request(request)


class FakeForge:
    """Behaviours are plain attributes, changeable while it runs (set them under `fake.changing()` or directly)."""

    def __init__(self, checkpoints: Sequence[str] = ("sd_xl_base_1.0.safetensors [31e35c80fc]",),
                 loras: Sequence[Union[str, Tuple[str, str]]] = (), loaded: Optional[str] = None,
                 seconds_per_image: float = 0.0, switch_s: float = 0.0, auth: Optional[Tuple[str, str]] = None,
                 nowebui: bool = False, has_orchestrator: bool = True, api: bool = True, port: int = 0,
                 host: str = "127.0.0.1", samplers: Sequence[str] = SAMPLERS,
                 schedulers: Optional[Sequence[Tuple[str, str, Optional[List[str]]]]] = SCHEDULERS,
                 upscalers: Sequence[str] = UPSCALERS, latent_upscale_modes: Sequence[str] = LATENT_UPSCALE_MODES
                 ) -> None:
        self.host, self.port = host, port
        self.api = api  # False: Forge started without --api, only the LoRA extension's routes are there
        self.checkpoints = [FakeCheckpoint(t) for t in checkpoints]
        self.loras = [FakeLora(s) for s in loras]
        self.seconds_per_image = seconds_per_image
        self.switch_s = switch_s
        self.auth = auth
        self.nowebui = nowebui
        self.has_orchestrator = has_orchestrator
        self.samplers = list(samplers)  # names in Forge's order; the first is the fallback for an unknown one
        self.schedulers = None if schedulers is None else list(schedulers)  # None: no /schedulers (before A1111 1.9)
        self.upscalers = list(upscalers)
        self.latent_upscale_modes = list(latent_upscale_modes)
        # faults
        self.reject_with: Optional[Tuple[int, Dict[str, Any]]] = None  # e.g. OOM: every generation fails with it
        self.hang = False  # txt2img starts (progress shows it) and never answers; progress keeps answering
        self.freeze = False  # no route answers; connections stay open
        self.die_mid_request: Union[bool, int] = False  # True: every txt2img; n: the next n; socket closed unanswered
        # counters
        self.requests = 0
        self.txt2img_requests = 0
        self.images = 0
        self.switches = 0
        self.loads: Dict[str, int] = collections.Counter()
        self.interrupts = 0
        self.concurrent = 0  # txt2img requests inside the server now (waiting or running)
        self.concurrent_max = 0
        self.received: List[Dict[str, Any]] = []  # txt2img bodies, in arrival order
        self.options: Dict[str, Any] = dict(OPTION_DEFAULTS)
        first = self._checkpoint(loaded) if loaded else (self.checkpoints[0] if self.checkpoints else None)
        self.options["sd_model_checkpoint"] = first.title if first else None
        self.loaded: Optional[str] = first.title if first else None  # the model in memory (a title)
        # Forge's task bookkeeping (modules/progress.py:17-54) and shared.state (modules/shared_state.py)
        self.current_task: Optional[str] = None
        self.pending_tasks: "collections.OrderedDict[str, float]" = collections.OrderedDict()
        self.finished_tasks: List[str] = []
        self.state: Dict[str, Any] = {"skipped": False, "interrupted": False, "stopping_generation": False, "job": "",
                                      "job_count": 0, "job_timestamp": "0", "job_no": 0, "sampling_step": 0,
                                      "sampling_steps": 0}
        self._time_start = 0.0
        self._work_s = 0.0
        self._cond = threading.Condition()
        self._queue_lock = _FifoLock()
        self._connections: set = set()
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = False
        self._generation = 0  # bumps at each stop(): requests of an older life drop their connection

    # ---- life -------------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "FakeForge":
        """Listen (again, on the same port after stop()): a restarted Forge, no task in memory, no model loaded."""
        with self._cond:
            self._stopping = False
            self.current_task = None
            self.pending_tasks.clear()
            self.finished_tasks.clear()
            self.state.update(job="", job_count=0)
        server = _Server((self.host, self.port), _Handler)
        server.fake = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"fake-forge:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Down at once: the port refuses connections, open ones are closed unanswered, running work is dropped."""
        server = self._server
        if server is None:
            return
        with self._cond:
            self._stopping = True
            self._generation += 1
            connections = list(self._connections)
            self._cond.notify_all()
        server.shutdown()
        server.server_close()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server = None
        with self._cond:
            self.loaded = None  # a new process loads lazily: its first job pays the load

    def __enter__(self) -> "FakeForge":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def changed(self) -> None:
        """Wake handlers waiting on a behaviour (call after changing hang/freeze from a test)."""
        with self._cond:
            self._cond.notify_all()

    def __setattr__(self, key: str, value: Any) -> None:
        object.__setattr__(self, key, value)
        if key in ("hang", "freeze") and "_cond" in self.__dict__:
            self.changed()

    def wait_until(self, predicate: Callable[["FakeForge"], bool], timeout: float = 30.0) -> bool:
        """Block until `predicate(fake)` holds (checked at every state change), or `timeout` passes."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
            return True

    # ---- lookups ----------------------------------------------------------------------------------------------------

    def _checkpoint(self, alias: Optional[str]) -> Optional[FakeCheckpoint]:
        for c in self.checkpoints:  # later registrations win in Forge's dict; exact ids only (sd_models.py:110-111)
            if alias in c.ids:
                found = c
                break
        else:
            return None
        return found

    def _lora(self, name: str) -> Optional[FakeLora]:
        """Forge's lookup of a `<lora:NAME>` (sd_forge_lora/networks.py:79-90, 145-151, 163)."""
        aliases: Dict[str, FakeLora] = {}
        by_name: Dict[str, FakeLora] = {}
        forbidden = {"none", "Addams"}
        for lora in self.loras:
            if lora.alias in aliases:
                forbidden.add(lora.alias.lower())
            by_name[lora.name] = lora
            aliases[lora.name] = lora
            aliases[lora.alias] = lora
        return by_name.get(name) if name.lower() in forbidden else aliases.get(name)

    # ---- routes -----------------------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: Dict[str, List[str]], body: Any, authorization: str) -> Any:
        with self._cond:
            self.requests += 1
        routes: Dict[Tuple[str, str], Callable[[], Any]] = {
            ("GET", "/sdapi/v1/sd-models"): lambda: [c.api() for c in self.checkpoints],
            ("GET", "/sdapi/v1/loras"): lambda: [lo.api() for lo in self.loras],
            ("POST", "/sdapi/v1/refresh-loras"): lambda: None,
            ("GET", "/sdapi/v1/options"): lambda: dict(self.options),
            ("POST", "/sdapi/v1/options"): lambda: self._set_options(body),
            ("GET", "/sdapi/v1/progress"): self._progress,
            ("GET", "/sdapi/v1/script-info"): self._script_info,
            ("GET", "/sdapi/v1/samplers"): lambda: [{"name": s, "aliases": SAMPLER_ALIASES.get(s, []), "options": {}}
                                                    for s in self.samplers],  # api.py:693-694
            ("GET", "/sdapi/v1/upscalers"): lambda: [  # api.py:707-717
                {"name": u, "model_name": None if u in ("None", "Lanczos", "Nearest") else u,
                 "model_path": None, "model_url": None, "scale": 4} for u in self.upscalers],
            ("GET", "/sdapi/v1/latent-upscale-modes"): lambda: [{"name": m} for m in self.latent_upscale_modes],
            ("POST", "/sdapi/v1/interrupt"): self._interrupt,
            ("POST", "/sdapi/v1/skip"): lambda: self.interrupt_running(skip=True, count=False),  # api.py:679-680
            ("POST", "/sdapi/v1/txt2img"): lambda: self._txt2img(body),
        }
        if self.schedulers is not None:
            routes[("GET", "/sdapi/v1/schedulers")] = lambda: [  # api.py:696-705
                {"name": n, "label": label, "aliases": aliases, "default_rho": -1, "need_inner_model": False}
                for n, label, aliases in self.schedulers or ()]
        if not self.nowebui:
            routes.update({
                ("GET", "/internal/ping"): lambda: {},
                ("POST", "/internal/progress"): lambda: self._internal_progress(body),
                ("GET", "/internal/pending-tasks"): lambda: {"size": len(self.pending_tasks),
                                                             "tasks": list(self.pending_tasks)},
            })
        if not self.api:  # webui.py:133-135 adds api.py's routes only with --api
            routes = {k: v for k, v in routes.items() if not k[1].startswith("/sdapi/") or "loras" in k[1]}
        route = routes.get((method, path))
        if route is None:
            known = any(p == path for _, p in routes)
            if known:
                raise _HttpError(405, {"detail": "Method Not Allowed"})
            raise _HttpError(404, {"detail": "Not Found"})
        open_route = path in ("/sdapi/v1/loras", "/sdapi/v1/refresh-loras") or path.startswith("/internal/")
        if self.auth and not open_route:
            self._check_auth(authorization)
        return route()

    def _check_auth(self, authorization: str) -> None:
        challenge = {"WWW-Authenticate": "Basic"}
        if not authorization.startswith("Basic "):
            raise _HttpError(401, {"detail": "Not authenticated"}, challenge)  # FastAPI's HTTPBasic
        try:
            user, _, password = base64.b64decode(authorization[6:]).decode("utf-8").partition(":")
        except ValueError:
            raise _HttpError(401, {"detail": "Invalid authentication credentials"}, challenge) from None
        if (user, password) != tuple(self.auth or ()):
            raise _HttpError(401, {"detail": "Incorrect username or password"}, challenge)  # api.py:286

    def _set_options(self, body: Any) -> None:
        if not isinstance(body, dict):
            raise _HttpError(422, {"detail": [{"type": "dict_type", "loc": ["body"], "msg": "Input should be a valid "
                                               "dictionary", "input": body}]})
        for key, value in body.items():
            if key == "sd_model_checkpoint":
                if self._checkpoint(value) is None:  # research §1.4: RuntimeError, 500
                    raise _HttpError(500, {"error": "RuntimeError", "detail": "", "body": "",
                                           "message": f"model {value!r} not found"})
            elif key not in self.options:
                raise _HttpError(500, {"error": "KeyError", "detail": "", "body": "", "message": repr(key)})
        with self._cond:
            self.options.update(body)  # Forge keeps the string as given; the model loads at the next job
        return None

    def _script_info(self) -> List[Dict[str, Any]]:
        out = []
        for is_img2img in (False, True):
            out.append({"name": "seed", "is_alwayson": True, "is_img2img": is_img2img, "args": []})
            if self.has_orchestrator:  # Forge lists titles lowercased (scripts.py:663)
                out.append({"name": "orchestrator", "is_alwayson": True, "is_img2img": is_img2img,
                            "args": [{"label": "Orchestrator", "value": False, "minimum": None, "maximum": None,
                                      "step": None, "choices": None}]})
        return out

    def _progress_value(self) -> Tuple[float, float]:
        if self.state["job_count"] == 0:
            return 0.0, 0.0
        elapsed = time.time() - self._time_start
        progress = 0.01
        if self._work_s > 0 and self.state["sampling_steps"]:
            progress += min(1.0, max(0.0, elapsed / self._work_s))
        eta = elapsed / progress - elapsed
        return min(progress, 1.0), eta

    def _progress(self) -> Dict[str, Any]:
        with self._cond:  # api.py:617-643; no current_task: ProgressResponse has no such field (models.py:187-192)
            progress, eta = self._progress_value()
            return {"progress": progress, "eta_relative": eta, "state": dict(self.state), "current_image": None,
                    "textinfo": None}

    def _internal_progress(self, body: Any) -> Dict[str, Any]:
        task = body.get("id_task") if isinstance(body, dict) else None
        with self._cond:  # modules/progress.py:88-142
            active = task is not None and task == self.current_task
            queued = task in self.pending_tasks
            completed = task in self.finished_tasks
            if not active:
                text = "Waiting..."
                if queued:
                    order = list(self.pending_tasks)
                    text = f"In queue: {order.index(task) + 1}/{len(order)}"
                return {"active": False, "queued": queued, "completed": completed, "progress": None, "eta": None,
                        "live_preview": None, "id_live_preview": -1, "textinfo": text}
            progress, eta = self._progress_value()
            return {"active": True, "queued": queued, "completed": completed, "progress": progress, "eta": eta,
                    "live_preview": None, "id_live_preview": 0, "textinfo": None}

    def _interrupt(self) -> Dict[str, Any]:
        self.interrupt_running(count=True)
        return {}

    def interrupt_running(self, skip: bool = False, count: bool = False) -> None:
        """Someone pressed Interrupt (or Skip) in this Forge's UI: the running generation stops and answers 200 with
        its partial image; `state.interrupted` (`skipped`) stays set in /sdapi/v1/progress until the next job begins
        (shared_state.py:83-89, 129-131). `count`: counted in `interrupts` (the API's /interrupt)."""
        with self._cond:
            if count:
                self.interrupts += 1
            self.state["skipped" if skip else "interrupted"] = True
            self._cond.notify_all()

    # ---- generation -------------------------------------------------------------------------------------------------

    def _wait(self, seconds: float, generation: int, interruptible: bool = True,
              until: Callable[[], bool] = lambda: False) -> bool:
        """Simulated work: True when it ran its time (or `until()` holds), False when interrupted. Raises _Dropped
        when the server stops."""
        deadline = time.monotonic() + seconds
        with self._cond:
            while True:
                if self._stopping or generation != self._generation:
                    raise _Dropped()
                if interruptible and (self.state["interrupted"] or self.state["skipped"]):
                    return False
                if until():
                    return True
                left = deadline - time.monotonic()
                if left <= 0:
                    return True
                self._cond.wait(left)

    def _txt2img(self, body: Any) -> Dict[str, Any]:
        if not isinstance(body, dict):
            raise _HttpError(422, {"detail": [{"type": "model_attributes_type", "loc": ["body"],
                                               "msg": "Input should be a valid dictionary or object", "input": body}]})
        with self._cond:
            generation = self._generation
            self.txt2img_requests += 1
            self.received.append(body)
            die = self.die_mid_request
            if die is not True and die:
                self.die_mid_request = die - 1
        if die:
            raise _Dropped()
        scripts = {"orchestrator"} if self.has_orchestrator else set()
        for title in body.get("alwayson_scripts") or {}:
            if title.lower() not in scripts and title.lower() != "seed":
                raise _HttpError(422, {"detail": f"Script '{title}' not found"})  # api.py:36-40
        task = body.get("force_task_id") or f"task(txt2img-{random.randrange(10**7):07d})"
        sampler, scheduler = self._sampler_and_scheduler(body.get("sampler_name") or body.get("sampler_index"),
                                                         body.get("scheduler"))
        with self._cond:
            self.pending_tasks[task] = time.time()  # add_task_to_queue before the lock (api.py:478)
            self.concurrent += 1
            self.concurrent_max = max(self.concurrent_max, self.concurrent)
            self._cond.notify_all()
        try:
            if not self._queue_lock.acquire(lambda: self._stopping or generation != self._generation):
                raise _Dropped()
            try:
                return self._generate(body, task, sampler, scheduler, generation)
            finally:
                self._queue_lock.release()
        finally:
            with self._cond:
                self.concurrent -= 1
                self.pending_tasks.pop(task, None)
                self._cond.notify_all()

    def _sampler_and_scheduler(self, sampler: Optional[str], scheduler: Optional[str]) -> Tuple[str, str]:
        """Forge's get_sampler_and_scheduler (sd_samplers.py:113-134) without its 'Automatic' folding: a trailing
        " <scheduler>" is cut off the sampler; an unknown sampler is the first one, an unknown scheduler the first
        one ("Automatic"), both silently."""
        table = self.schedulers or [("automatic", "Automatic", None)]
        found = next((label for n, label, _ in table if scheduler in (n, label)), table[0][1])
        name = sampler or (self.samplers[0] if self.samplers else "Euler")
        for n, label, aliases in table:
            for option in (label, n, *(aliases or [])):
                if name.endswith(" " + option):
                    found, name = label, name[: -len(option) - 1]
                    break
        return (name if name in self.samplers else (self.samplers or ["DPM++ 2M"])[0]), found

    def _generate(self, body: Dict[str, Any], task: str, sampler: str, scheduler: str, generation: int
                  ) -> Dict[str, Any]:
        steps = int(body.get("steps") or 50)
        with self._cond:  # state.begin + start_task (api.py:488-489, shared_state.py:118-133)
            if self._stopping or generation != self._generation:
                raise _Dropped()
            self.state.update(skipped=False, interrupted=False, stopping_generation=False, job="scripts_txt2img",
                              job_count=-1, job_no=0, sampling_step=0, sampling_steps=0,
                              job_timestamp=time.strftime("%Y%m%d%H%M%S"))
            self._time_start = time.time()
            self._work_s = 0.0
            self.current_task = task
            self.pending_tasks.pop(task, None)
            self._cond.notify_all()
        try:
            overrides = body.get("override_settings") or {}
            previous = self.options.get("sd_model_checkpoint")
            wanted = self._checkpoint(overrides.get("sd_model_checkpoint"))  # None: dropped (processing.py:825)
            selected = wanted or self._checkpoint(previous)
            if selected is None:
                raise _HttpError(500, {"error": "ValueError", "detail": "", "body": "",
                                       "message": "You do not have any model! Please download at least one model."})
            if wanted is not None:
                self.options["sd_model_checkpoint"] = wanted.title
            if self.loaded != selected.title:  # lazy load inside the job (research §0.6)
                self._wait(self.switch_s, generation, interruptible=False)
                with self._cond:
                    self.switches += 1
                    self.loads[selected.title] += 1
                    self.loaded = selected.title
                    self.options["sd_checkpoint_hash"] = selected.sha256 or ""
            while self.hang:  # a hung Forge ignores interrupts too
                self._wait(3600.0, generation, interruptible=False, until=lambda: not self.hang)
            if self.reject_with is not None:
                status, error = self.reject_with
                raise _HttpError(status, error)
            count = max(1, int(body.get("batch_size") or 1)) * max(1, int(body.get("n_iter") or 1))
            with self._cond:
                self.state.update(job_count=max(1, int(body.get("n_iter") or 1)), sampling_steps=steps)
                self._work_s = self.seconds_per_image * count
            finished = self._wait(self._work_s, generation)
            hr_sampler = body.get("hr_sampler_name")
            same = hr_sampler in (None, "", "Use same sampler")
            if body.get("enable_hr") and not same and hr_sampler not in self.samplers:
                raise _HttpError(500, {"error": "AssertionError", "detail": "", "body": "",
                                       "message": f"bad sampler name: {hr_sampler}"})
            upscaler = body.get("hr_upscaler")
            if body.get("enable_hr") and upscaler is not None and upscaler not in self.latent_upscale_modes \
                    and upscaler not in self.upscalers:  # processing.py:1318-1321
                raise _HttpError(500, {"error": "Exception", "detail": "", "body": "",
                                       "message": f"could not find upscaler named {upscaler}"})
            answer = self._answer(body, selected, sampler, scheduler, count, interrupted=not finished)
            with self._cond:
                self.images += count
                self.finished_tasks.append(task)  # finish_task keeps the last 16 (progress.py:31-39)
                del self.finished_tasks[:-16]
            return answer
        finally:
            with self._cond:  # state.end (shared_state.py:137-141) and, with restore (the default), the old choice back
                if self.current_task == task:
                    self.current_task = None
                self.state.update(job="", job_count=0)
                if body.get("override_settings_restore_afterwards", True):
                    self.options["sd_model_checkpoint"] = previous
                self._cond.notify_all()

    def _answer(self, body: Dict[str, Any], ckpt: FakeCheckpoint, sampler: str, scheduler: str, count: int,
                interrupted: bool) -> Dict[str, Any]:
        prompt = str(body.get("prompt") or "")
        negative = str(body.get("negative_prompt") or "")
        seed = int(body.get("seed", -1) if body.get("seed") is not None else -1)
        if seed == -1:
            seed = random.randrange(4294967294)
        subseed = int(body.get("subseed") if body.get("subseed") is not None else -1)
        if subseed == -1:
            subseed = random.randrange(4294967294)
        steps = int(body.get("steps") or 50)
        width, height = int(body.get("width") or 512), int(body.get("height") or 512)
        cfg = body.get("cfg_scale") if body.get("cfg_scale") is not None else 7.0
        lora_hashes = self._lora_hashes(prompt)
        extra: Dict[str, Any] = {"Schedule type": scheduler}
        if body.get("enable_hr"):
            extra.update({"Denoising strength": body.get("denoising_strength", 0.75),
                          "Hires CFG Scale": body.get("hr_cfg", 1.0), "Hires upscale": body.get("hr_scale", 2.0),
                          "Hires upscaler": body.get("hr_upscaler") or "Latent"})
        if lora_hashes:
            extra["Lora hashes"] = lora_hashes
        images, infotexts = [], []
        for k in range(count):
            params = {"Steps": steps, "Sampler": sampler, "Schedule type": scheduler, "CFG scale": cfg,
                      "Seed": seed + k, "Size": f"{width}x{height}", "Model hash": ckpt.shorthash,
                      "Model": ckpt.stem, **{k2: v for k2, v in extra.items() if k2 != "Schedule type"},
                      "Version": VERSION}
            line = ", ".join(f"{key}: {infotext_quote(v)}" for key, v in params.items() if v is not None)
            infotext = f"{prompt}{chr(10) + 'Negative prompt: ' + negative if negative else ''}\n{line}".strip()
            key = json.dumps([prompt, negative, seed + k, ckpt.title, steps, width, height,
                              "interrupted" if interrupted else ""])
            images.append(base64.b64encode(png_bytes(key, infotext)).decode("ascii"))
            infotexts.append(infotext)
        info = {"prompt": prompt, "all_prompts": [prompt] * count, "negative_prompt": negative,
                "all_negative_prompts": [negative] * count, "seed": seed, "all_seeds": [seed + k for k in range(count)],
                "subseed": subseed, "all_subseeds": [subseed + k for k in range(count)], "subseed_strength": 0,
                "width": width, "height": height, "sampler_name": sampler, "cfg_scale": cfg, "steps": steps,
                "batch_size": int(body.get("batch_size") or 1), "restore_faces": False,
                "face_restoration_model": None, "sd_model_name": ckpt.stem, "sd_model_hash": ckpt.shorthash,
                "sd_vae_name": None, "sd_vae_hash": None, "seed_resize_from_w": -1, "seed_resize_from_h": -1,
                "denoising_strength": body.get("denoising_strength", 0.75), "extra_generation_params": extra,
                "index_of_first_image": 0, "infotexts": infotexts, "styles": [],
                "job_timestamp": self.state["job_timestamp"], "clip_skip": 1,
                "is_using_inpainting_conditioning": False, "version": VERSION}
        return {"images": images if body.get("send_images", True) else [], "parameters": body, "info": json.dumps(info)}

    def _lora_hashes(self, prompt: str) -> str:
        """Forge's `Lora hashes` value, or "" when a tag names an unknown LoRA (then none applies: research §6)."""
        import re

        hashes = {}
        for m in re.finditer(r"<(\w+):([^>]+)>", prompt):  # modules/extra_networks.py:175
            if m.group(1) != "lora":  # Forge registers no "lyco" alias: such tags are skipped (extra_networks.py:117)
                continue
            name = m.group(2).split(":")[0]
            lora = self._lora(name)
            if lora is None:
                return ""
            hashes[name.replace(":", "").replace(",", "")] = lora.shorthash
        return ", ".join(f"{k}: {v}" for k, v in hashes.items())


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn: clients reuse their connection
    # one send per answer (headers and body buffered, flushed after the method) and no Nagle: else a keep-alive
    # client waits ~40 ms for the delayed ACK on every request
    wbufsize = 1 << 16
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        with fake._cond:
            generation = fake._generation
            while fake.freeze and not fake._stopping and generation == fake._generation:
                fake._cond.wait()
            if fake._stopping or generation != fake._generation:
                self.close_connection = True
                return
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(422, {"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error",
                                         "input": {}, "ctx": {"error": "Expecting value"}}]})
            return
        try:
            answer = fake.handle(method, parts.path, parse_qs(parts.query), body,
                                 self.headers.get("Authorization") or "")
        except _Dropped:
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        except _HttpError as e:
            self._send(e.status, e.body, e.headers)
            return
        except Exception as e:  # noqa: BLE001 - Forge's handler for any exception (webui.py:30-38)
            self._send(500, {"error": type(e).__name__, "detail": "", "body": "", "message": str(e)})
            return
        self._send(200, answer)

    def _send(self, status: int, body: Any, headers: Optional[Dict[str, str]] = None) -> None:
        data = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def do_GET(self) -> None:  # noqa: N802
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")


def _lora_spec(text: str) -> Union[str, Tuple[str, str]]:
    name, sep, alias = text.partition("=")
    return (name, alias) if sep else name


def main(argv: Optional[Iterable[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="A stand-in Forge REST server for the dispatcher's tests.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--seconds-per-image", type=float, default=0.0)
    parser.add_argument("--switch-s", type=float, default=0.0)
    parser.add_argument("--checkpoint", action="append", default=[], help="a title, e.g. 'x.safetensors [0123456789]'")
    parser.add_argument("--loaded", default=None)
    parser.add_argument("--lora", action="append", default=[], help="NAME or NAME=ALIAS")
    parser.add_argument("--auth", default=None, help="USER:PASS, as Forge's --api-auth")
    parser.add_argument("--nowebui", action="store_true", help="no /internal/* routes, as Forge --nowebui")
    parser.add_argument("--no-orchestrator", action="store_true", help="our AlwaysOn script is not installed")
    parser.add_argument("--no-api", action="store_true", help="as Forge without --api: only /sdapi/v1/loras")
    args = parser.parse_args(list(argv) if argv is not None else None)
    auth = tuple(args.auth.split(":", 1)) if args.auth else None
    fake = FakeForge(checkpoints=args.checkpoint or ("sd_xl_base_1.0.safetensors [31e35c80fc]",),
                     loras=[_lora_spec(x) for x in args.lora], loaded=args.loaded,
                     seconds_per_image=args.seconds_per_image, switch_s=args.switch_s, auth=auth,  # type: ignore[arg-type]
                     nowebui=args.nowebui, has_orchestrator=not args.no_orchestrator, api=not args.no_api,
                     port=args.port)
    fake.start()
    print(f"listening {fake.url}", flush=True)
    print("ready", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
