"""One Forge server over its REST API: read its inventory, send one image, watch it run, tell a dead server from a
refused job.

Facts from Forge (lllyasviel/stable-diffusion-webui-forge, snapshot dfdcbab6), cited as file:line:
- txt2img registers `force_task_id` as the task (modules/api/api.py:446, 478), waits for the FIFO `queue_lock`
  behind any other generation (api.py:480; the UI's Generate button takes the same lock), and only then starts the
  task (api.py:488-489). A request can therefore wait a long time before its own work begins.
- `GET /sdapi/v1/progress` does NOT say which task runs: api.py:643 passes `current_task`, but the response model
  has no such field (modules/api/models.py:187-192), so the key never reaches the JSON (and api.py:34 imported the
  value None anyway). Which task runs is told by `POST /internal/progress {"id_task": …}` → {active, queued,
  completed, progress, eta, …} (modules/progress.py:66-99), a route Forge adds only when its web UI runs
  (webui.py:131), without --api-auth. With `--nowebui` we fall back to `/sdapi/v1/progress`' state: a new
  `job_timestamp` (set by state.begin, modules/shared_state.py:124) or an idle server (job_count 0,
  api.py:620-621) after we sent means the jobs ahead of ours have ended.
- Errors: an exception during processing (CUDA OOM, a bad hires sampler, …) answers
  500 {"error": <exception class>, "detail": "", "body": "", "message": str(e)} (webui.py:30-38); an HTTPException
  answers FastAPI's {"detail": …} with its own status (422 for a script not found, api.py:40). An unknown sampler is
  no error at all: Forge falls back to its first sampler (modules/sd_samplers.py:113-134).
- `--api-auth user:pass` protects every /sdapi/v1 route of api.py with HTTP Basic (api.py:277-286): 401
  {"detail": "Not authenticated"} without credentials, {"detail": "Incorrect username or password"} with wrong ones.
  `/sdapi/v1/loras` and `/internal/*` are never protected (sd_forge_lora/scripts/lora_script.py:51-58).
- `POST /sdapi/v1/interrupt` answers {} (api.py:664-667); Forge then returns the partial image with status 200.
"""
from __future__ import annotations

import base64
import json
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from ..batches.model import BatchImage, Settings
from ..errors import OrchestratorError
from .inventory import SCRIPT_TITLE, Inventory, inventory_from_api


class _ForgeError(OrchestratorError):
    def __str__(self) -> str:  # the message and what to do, without the CLI's "error: " (callers prefix their own)
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ServerDown(_ForgeError):
    """The server failed, not the job: unreachable, refused, reset, timed out, 502/503/504, hung, or it refuses our
    credentials. The job goes back to the queue; the server is probed until it answers."""


class JobRejected(_ForgeError):
    """Forge answered with its own error for this job (500 with an exception such as CUDA OOM, a 4xx for a bad
    request): the job fails, the server stays up."""

    def __init__(self, message: str, status: int = 0, error: str = "", forge_message: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.error = error  # Forge's exception class name, e.g. "OutOfMemoryError"
        self.forge_message = forge_message


@dataclass(frozen=True)
class Generated:
    image: bytes  # the first image of the answer, as Forge encoded it (PNG with a `parameters` chunk by default)
    infotext: str  # its infotexts[0]
    seconds: float  # from when Forge started our task (as far as polling can tell) to the answer


def split_credentials(url: str) -> Tuple[str, Optional[Tuple[str, str]]]:
    """("http://host:7860", ("user", "pass")) from "http://user:pass@host:7860/": the password never stays in the
    URL we print or store."""
    raw = url.strip()
    if "://" not in raw:
        raw = "http://" + raw
    parts = urlsplit(raw)
    auth = None
    if parts.username is not None:
        auth = (unquote(parts.username), unquote(parts.password or ""))
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", "")), auth


def payload(image: BatchImage, settings: Settings, checkpoint_title: Optional[str], orchestrator_off: bool) -> dict:
    """The txt2img request for one batch image: exactly the batch's prompt, seed and settings, nothing Forge would
    have to guess, nothing saved on the server."""
    body: Dict[str, Any] = {
        "prompt": image.prompt,
        "negative_prompt": image.negative_prompt,
        "seed": image.seed,
        "subseed": -1,
        "batch_size": 1,
        "n_iter": 1,
        **settings.forge_fields(),
        # keep the checkpoint loaded after the job (Forge restores the old one otherwise, and the next job reloads:
        # research forge-api.md §4.4); the server's exact title, since Forge drops an unknown one silently
        "override_settings": {"sd_model_checkpoint": checkpoint_title} if checkpoint_title else {},
        "override_settings_restore_afterwards": False,
        "save_images": False,  # the image lives only in the answer: we write it, once (models.py:106)
        "send_images": True,
    }
    if orchestrator_off:
        # the prompt already holds the batch's LoRAs: our AlwaysOn script must not compose again (its first arg is
        # `enabled`; Forge's default for it may have been changed in ui-config.json)
        body["alwayson_scripts"] = {SCRIPT_TITLE: {"args": [False]}}
    return body


def _forge_error(response: requests.Response) -> Tuple[str, str, str]:
    """(exception class, message, detail) from a Forge error body; what text there is otherwise."""
    try:
        data = response.json()
    except ValueError:
        return "", "", (response.text or "").strip()[:500]
    if not isinstance(data, dict):
        return "", "", str(data)[:500]
    detail = data.get("detail", "")
    if not isinstance(detail, str):
        detail = json.dumps(detail)[:500]  # FastAPI's 422: a list of field errors
    return str(data.get("error") or ""), str(data.get("message") or ""), detail


_TRANSPORT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError,
              requests.exceptions.ContentDecodingError)


class ForgeClient:
    def __init__(self, url: str, auth: Optional[Tuple[str, str]] = None, poll_s: float = 1.0,
                 connect_timeout_s: float = 5.0, poll_timeout_s: Optional[float] = None, max_failed_polls: int = 3,
                 queue_wait_s: float = 3600.0, read_timeout_s: float = 60.0) -> None:
        """`url` may carry user:pass@ (Forge's --api-auth); `auth` wins over it. A server whose progress does not
        answer `max_failed_polls` times in a row (each within `poll_timeout_s`, default `connect_timeout_s`) is down;
        a request may wait up to `queue_wait_s` behind other work in Forge's queue before its own timeout starts."""
        self.url, url_auth = split_credentials(url)
        self.auth = auth or url_auth
        self.poll_s = poll_s
        self.connect_timeout_s = connect_timeout_s
        self.poll_timeout_s = poll_timeout_s if poll_timeout_s is not None else connect_timeout_s
        self.max_failed_polls = max(1, max_failed_polls)
        self.queue_wait_s = queue_wait_s
        self.read_timeout_s = read_timeout_s
        self._internal_progress: Optional[bool] = None  # has /internal/progress (Forge with its web UI)
        self._lock = threading.Lock()
        self._session = self._new_session()

    def __repr__(self) -> str:
        return f"ForgeClient({self.url!r})"

    # ---- transport ------------------------------------------------------------------------------------------------

    def _new_session(self) -> requests.Session:
        session = requests.Session()
        # one pooled connection for the request and one for the polls run side by side; no retries: a POST must not
        # be sent twice, and a failed poll is counted, not hidden
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=4, max_retries=0)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.auth = self.auth
        return session

    def _reset(self) -> None:
        """A fresh pool after a failure: connections to a server that went away are not reused."""
        with self._lock:
            old, self._session = self._session, self._new_session()
        old.close()

    def _call(self, method: str, path: str, timeout: Tuple[float, float], **kwargs: Any) -> requests.Response:
        """One request; transport failures and the server-side statuses become ServerDown."""
        try:
            response = self._session.request(method, self.url + path, timeout=timeout, **kwargs)
        except _TRANSPORT as e:
            raise ServerDown(f"Forge at {self.url} did not answer {path}: {_reason(e)}") from e
        self._check_server(response, path)
        return response

    def _check_server(self, response: requests.Response, path: str) -> None:
        status = response.status_code
        if status == 401:
            if self.auth:
                raise ServerDown(f"Forge at {self.url} refused the credentials for user '{self.auth[0]}' (401)",
                                 hint="give the user:password of its --api-auth, as http://USER:PASS@HOST:PORT")
            raise ServerDown(f"Forge at {self.url} asks for credentials (401: started with --api-auth)",
                             hint="give them in the URL, as http://USER:PASS@HOST:PORT")
        if status == 404 and path.startswith("/sdapi/") and _forge_error(response)[2] == "Not Found":
            raise ServerDown(f"Forge at {self.url} has no API route {path} (404)",
                             hint="start Forge with --api (or --nowebui)")
        if status in (502, 503, 504):
            raise ServerDown(f"Forge at {self.url} is unavailable ({status} on {path})")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._call(method, path, (self.connect_timeout_s, self.read_timeout_s), **kwargs)
        if response.status_code != 200:
            error, message, detail = _forge_error(response)
            raise ServerDown(f"Forge at {self.url} answered {response.status_code} on {path}: "
                             f"{': '.join(x for x in (error, message or detail) if x)}")
        try:
            return response.json()
        except ValueError as e:
            raise ServerDown(f"{self.url}{path} answered something that is not JSON: is this a Forge server?") from e

    # ---- inventory and health --------------------------------------------------------------------------------------

    def inventory(self) -> Inventory:
        """Checkpoints, LoRAs, the selected checkpoint, our script. Raises ServerDown."""
        try:
            sd_models = self._json("GET", "/sdapi/v1/sd-models")
            loras = self._json("GET", "/sdapi/v1/loras")
            options = self._json("GET", "/sdapi/v1/options")
            scripts = self._json("GET", "/sdapi/v1/script-info")
            self._internal_progress = self._has_internal_progress()
        except ServerDown:
            self._reset()
            raise
        return inventory_from_api(self.url, sd_models, loras, options, scripts)

    def probe(self) -> bool:
        """True when the server answers GET /sdapi/v1/options (short timeout, credentials accepted)."""
        try:
            response = self._call("GET", "/sdapi/v1/options", (self.connect_timeout_s, self.connect_timeout_s))
        except ServerDown:
            self._reset()
            return False
        return response.status_code == 200

    def interrupt(self) -> None:
        """Ask Forge to stop the generation running now (whoever's it is). Best effort: never raises."""
        try:
            self._call("POST", "/sdapi/v1/interrupt", (self.connect_timeout_s, self.connect_timeout_s))
        except ServerDown:
            pass

    def _has_internal_progress(self) -> bool:
        response = self._call("POST", "/internal/progress", (self.connect_timeout_s, self.read_timeout_s),
                              json={"id_task": "orchestrator-probe", "id_live_preview": -1, "live_preview": False})
        return response.status_code == 200

    # ---- one image ---------------------------------------------------------------------------------------------------

    def _poll(self, task_id: str) -> Dict[str, Any]:
        """One progress answer. Raises ServerDown when the server does not answer."""
        timeout = (self.connect_timeout_s, self.poll_timeout_s)
        if self._internal_progress:
            response = self._call("POST", "/internal/progress", timeout,
                                  json={"id_task": task_id, "id_live_preview": -1, "live_preview": False})
        else:
            response = self._call("GET", "/sdapi/v1/progress", timeout, params={"skip_current_image": "true"})
        if response.status_code != 200:
            raise ServerDown(f"Forge at {self.url} answered {response.status_code} to a progress poll")
        try:
            data = response.json()
        except ValueError as e:
            raise ServerDown(f"Forge at {self.url} answered a progress poll with something that is not JSON") from e
        if not isinstance(data, dict):
            raise ServerDown(f"Forge at {self.url} answered a progress poll with {type(data).__name__}")
        return data

    def txt2img(self, payload: dict, task_id: str, timeout_s: float,
                on_poll: Callable[[float], None] = lambda progress: None) -> Generated:
        """Send one image and wait for it. `timeout_s` counts from when Forge starts OUR task, not from sending:
        before that the request waits behind other work in Forge's queue (up to `queue_wait_s`). On timeout the
        generation is interrupted and ServerDown raised; a server whose progress stops answering is ServerDown after
        `max_failed_polls` polls; Forge's own error for the job is JobRejected."""
        if self._internal_progress is None:
            try:
                self._internal_progress = self._has_internal_progress()
            except ServerDown:
                self._reset()
                raise
        watch = _StartWatch(None)
        if not self._internal_progress:
            try:
                watch = _StartWatch(self._poll(task_id))  # what runs before ours is sent
            except ServerDown:
                pass  # unknown: ours counts as started; the polls below count the failures
        try:
            return self._send(dict(payload, force_task_id=task_id), task_id, timeout_s, on_poll, watch)
        except ServerDown:
            self._reset()
            raise

    def _send(self, body: dict, task_id: str, timeout_s: float, on_poll: Callable[[float], None],
              watch: "_StartWatch") -> Generated:
        sent = time.monotonic()
        done = threading.Event()
        box: Dict[str, Any] = {}
        session = self._session
        read_timeout = self.queue_wait_s + timeout_s + 60.0  # the thread always ends, even on a silent server

        def post() -> None:
            try:
                box["response"] = session.post(self.url + "/sdapi/v1/txt2img", json=body,
                                               timeout=(self.connect_timeout_s, read_timeout))
            except BaseException as e:  # noqa: BLE001 - handed to the waiting thread, which classifies it
                box["error"] = e
            finally:
                done.set()

        threading.Thread(target=post, name=f"forge-txt2img {self.url}", daemon=True).start()
        not_ours_at = sent  # the last moment we knew our task had not started
        ours_since: Optional[float] = None
        failures = 0
        running = False  # our task is the one running now (what an interrupt would stop)
        while not done.wait(self.poll_s):
            now = time.monotonic()
            try:
                answer = self._poll(task_id)
            except ServerDown as e:
                failures += 1
                if failures >= self.max_failed_polls:
                    raise ServerDown(f"Forge at {self.url} stopped answering: {failures} progress polls in a row "
                                     f"failed ({e.message})") from e
                continue
            failures = 0
            if self._internal_progress:
                running = bool(answer.get("active"))
                started = running or bool(answer.get("completed"))
                progress = answer.get("progress") if running else 0.0
            else:
                started = running = watch.see(answer)
                progress = answer.get("progress") if running else 0.0
            if started and ours_since is None:
                ours_since = not_ours_at
            elif not started:
                not_ours_at = now
            on_poll(float(progress) if isinstance(progress, (int, float)) else 0.0)
            if ours_since is not None and now - ours_since > timeout_s:
                if running:
                    self.interrupt()
                raise ServerDown(f"Forge at {self.url} made no image after {timeout_s:.0f} s"
                                 f"{' (interrupted)' if running else ''}")
            if ours_since is None and now - sent > self.queue_wait_s:
                raise ServerDown(f"Forge at {self.url} did not start the image after {self.queue_wait_s:.0f} s "
                                 "waiting behind other work in its queue")
        seconds = time.monotonic() - (ours_since if ours_since is not None else sent)
        if "error" in box:
            error = box["error"]
            if isinstance(error, _TRANSPORT):
                raise ServerDown(f"Forge at {self.url} failed during the image: {_reason(error)}") from error
            raise error
        return self._result(box["response"], seconds)

    def _result(self, response: requests.Response, seconds: float) -> Generated:
        self._check_server(response, "/sdapi/v1/txt2img")
        status = response.status_code
        if status != 200:
            error, message, detail = _forge_error(response)
            said = ": ".join(x for x in (error, message or detail) if x) or f"status {status}"
            raise JobRejected(f"Forge refused the image ({status}): {said}", status, error, message or detail)
        try:
            data = response.json()
            info = json.loads(data.get("info") or "{}")
            images = data.get("images") or []
            first = int(info.get("index_of_first_image") or 0)  # 1 when Forge put a grid first (save_images)
            image = base64.b64decode(images[first])
            infotexts = info.get("infotexts") or []
            infotext = infotexts[0] if infotexts else ""
        except (ValueError, TypeError, AttributeError, IndexError, KeyError) as e:
            raise JobRejected(f"Forge answered without a readable image: {e}", status) from e
        return Generated(image, infotext if isinstance(infotext, str) else "", seconds)


class _StartWatch:
    """Tells, from `/sdapi/v1/progress` answers alone (Forge without its web UI), when the job that ran as ours was
    sent has ended, so ours is the one running: the server was idle when we sent; or a poll shows it idle, or a job
    begun later (another `job_timestamp`, which has whole seconds only), or progress gone back (a new job began).
    Jobs queued ahead of ours behind the running one cannot be seen: ours is then thought started early, and its
    (generous) timeout starts early."""

    def __init__(self, before: Optional[Dict[str, Any]]) -> None:
        self.stamp = _state(before).get("job_timestamp")
        self.progress = _progress(before)
        self.started = before is None or not _busy(before)

    def see(self, answer: Dict[str, Any]) -> bool:
        if not self.started:
            progress = _progress(answer)
            if not _busy(answer) or _state(answer).get("job_timestamp") != self.stamp or progress < self.progress:
                self.started = True
            self.progress = progress
        return self.started


def _progress(answer: Optional[Dict[str, Any]]) -> float:
    value = (answer or {}).get("progress")
    return float(value) if isinstance(value, (int, float)) else 0.0


def _state(answer: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    state = (answer or {}).get("state")
    return state if isinstance(state, dict) else {}


def _busy(answer: Dict[str, Any]) -> bool:
    return _state(answer).get("job_count", 0) != 0  # 0 only between jobs (shared_state.py:141; api.py:620)


def _reason(error: BaseException) -> str:
    text = str(error)
    for marker in ("Connection refused", "timed out", "Read timed out", "Remote end closed",
                   "Connection reset", "Connection aborted", "Name or service not known"):
        if marker in text:
            return marker.lower()
    return text[:200] or type(error).__name__
