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
- `POST /sdapi/v1/interrupt` answers {} (api.py:664-667); Forge then returns the partial image with status 200, and
  so it does after Skip (api.py:679-680) or the Interrupt/Skip buttons of its own UI. Nothing in the answer says so:
  only `state.interrupted` / `state.skipped` in `/sdapi/v1/progress` (shared_state.py:83-89, 103-107), which stay
  set after the job ends (state.end leaves them, shared_state.py:137-141) until the next job's state.begin clears
  them (shared_state.py:129-131). The answer's info carries the job's `job_timestamp` (processing.py:548, 604).
"""
from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, replace
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
    # someone pressed Interrupt or Skip (in Forge's UI, or ours): the image is a partial one, not the batch's image.
    # Last, with a default, so Generated(image, infotext, seconds) still works.
    interrupted: bool = False


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

    def _call(self, method: str, path: str, timeout: Tuple[float, float], allow_missing: bool = False,
              **kwargs: Any) -> requests.Response:
        """One request; transport failures and the server-side statuses become ServerDown."""
        try:
            response = self._session.request(method, self.url + path, timeout=timeout, **kwargs)
        except _TRANSPORT as e:
            raise ServerDown(f"Forge at {self.url} did not answer {path}: {_reason(e)}") from e
        if not (allow_missing and response.status_code == 404):
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
            said = "" if _json_of(response) is not _NOT_JSON else f": {_what_answered(response)}"
            raise ServerDown(f"Forge at {self.url} is unavailable ({status} on {path}{said})")
        if status in (408, 429):  # a proxy's timeout or a rate limit: the way to the server, not the job
            raise ServerDown(f"Forge at {self.url} answered {status} on {path} "
                             f"({'request timeout' if status == 408 else 'too many requests'})")
        if (status == 200 or status >= 500) and _json_of(response) is _NOT_JSON:
            # Forge answers JSON, even for its errors (webui.py:30-38): this is something else (a proxy's page)
            raise ServerDown(f"Forge at {self.url} answered {status} on {path} with something that is not JSON: "
                             f"{_what_answered(response)}", hint="is this address a Forge server (or a proxy to one)?")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._call(method, path, (self.connect_timeout_s, self.read_timeout_s), **kwargs)
        if response.status_code != 200:
            error, message, detail = _forge_error(response)
            raise ServerDown(f"Forge at {self.url} answered {response.status_code} on {path}: "
                             f"{': '.join(x for x in (error, message or detail) if x)}")
        return _json_of(response)

    def _optional_json(self, path: str) -> Any:
        """A route older servers lack (/sdapi/v1/schedulers came with A1111 1.9): None when it is not there."""
        response = self._call("GET", path, (self.connect_timeout_s, self.read_timeout_s), allow_missing=True)
        if response.status_code != 200:
            return None
        return _json_of(response)

    # ---- inventory and health --------------------------------------------------------------------------------------

    def inventory(self) -> Inventory:
        """Checkpoints, LoRAs, the selected checkpoint, our script. Raises ServerDown."""
        try:
            sd_models = self._json("GET", "/sdapi/v1/sd-models")
            loras = self._json("GET", "/sdapi/v1/loras")
            options = self._json("GET", "/sdapi/v1/options")
            scripts = self._json("GET", "/sdapi/v1/script-info")
            samplers = self._json("GET", "/sdapi/v1/samplers")
            schedulers = self._optional_json("/sdapi/v1/schedulers")
            upscalers = self._json("GET", "/sdapi/v1/upscalers")
            latent_modes = self._json("GET", "/sdapi/v1/latent-upscale-modes")
            self._internal_progress = self._has_internal_progress()
        except ServerDown:
            self._reset()
            raise
        return inventory_from_api(self.url, sd_models, loras, options, scripts, samplers, schedulers, upscalers,
                                  latent_modes)

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
        return self._progress_answer(response)

    def _state_poll(self) -> Dict[str, Any]:
        """`/sdapi/v1/progress`, whose `state` holds the interrupted/skipped flags. Raises ServerDown."""
        response = self._call("GET", "/sdapi/v1/progress", (self.connect_timeout_s, self.poll_timeout_s),
                              params={"skip_current_image": "true"})
        return self._progress_answer(response)

    def _progress_answer(self, response: requests.Response) -> Dict[str, Any]:
        if response.status_code != 200:
            raise ServerDown(f"Forge at {self.url} answered {response.status_code} to a progress poll")
        data = _json_of(response)
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
        flagged: set = set()  # job_timestamps of the jobs seen interrupted or skipped while ours ran
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
                if running:  # /internal/progress has no flags: one more (small) poll while ours runs
                    try:
                        _note_flags(self._state_poll(), flagged)
                    except ServerDown:
                        pass  # the flags are read once more after the answer; a dead server shows in the polls
            else:
                started = running = watch.see(answer)
                progress = answer.get("progress") if running else 0.0
                if running:
                    _note_flags(answer, flagged)
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
        generated = self._result(box["response"], seconds)
        return replace(generated, interrupted=self._was_interrupted(box["response"], flagged))

    def _was_interrupted(self, response: requests.Response, flagged: set) -> bool:
        """Whether our job was interrupted or skipped: seen while it ran, or in the flags it left behind (read once
        after the answer; they hold until another job begins, so they count only while the server is idle since
        ours and its job_timestamp is ours). An image whose job is unknown counts as whole."""
        info = _json_of(response).get("info")
        try:
            stamp = json.loads(info).get("job_timestamp") if isinstance(info, str) else None
        except (ValueError, AttributeError):
            stamp = None
        if flagged and (stamp is None or stamp in flagged):
            return True
        try:
            after = self._state_poll()
        except ServerDown:
            return False  # the image came; the server's health shows at its next request
        state = _state(after)
        if state.get("job_count", 0) != 0 or (stamp is not None and state.get("job_timestamp") != stamp):
            return False  # another job has begun since ours (state.begin cleared the flags)
        return bool(state.get("interrupted") or state.get("skipped"))

    def _result(self, response: requests.Response, seconds: float) -> Generated:
        self._check_server(response, "/sdapi/v1/txt2img")
        status = response.status_code
        if status != 200:
            error, message, detail = _forge_error(response)
            said = ": ".join(x for x in (error, message or detail) if x) or f"status {status}"
            raise JobRejected(f"Forge refused the image ({status}): {said}", status, error, message or detail)
        try:
            data = _json_of(response)
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


_NOT_JSON = object()


def _json_of(response: requests.Response) -> Any:
    """The answer's JSON, parsed once (an image answer is megabytes of base64), or _NOT_JSON."""
    cached = getattr(response, "_orchestrator_json", None)
    if cached is None:
        try:
            cached = response.json()
        except ValueError:
            cached = _NOT_JSON
        if cached is None:
            return None  # Forge's `null` (POST /sdapi/v1/skip): not cached, parsing it again is free
        response._orchestrator_json = cached  # type: ignore[attr-defined]
    return cached


def _what_answered(response: requests.Response) -> str:
    """A short description of a non-JSON answer: its type and the start of its text ("<title>502 Bad Gateway")."""
    kind = response.headers.get("Content-Type", "no content type").split(";")[0]
    text = " ".join((response.text or "").split())
    title = re.search(r"<title>(.*?)</title>", text, re.IGNORECASE)
    return f"{kind}, {(title.group(1) if title else text)[:120]!r}" if text else f"{kind}, empty"


def _note_flags(answer: Dict[str, Any], flagged: set) -> None:
    """Remember the job of a /sdapi/v1/progress answer that shows it interrupted or skipped."""
    state = _state(answer)
    if state.get("interrupted") or state.get("skipped"):
        flagged.add(state.get("job_timestamp"))


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
