"""modules.progress stand-in: task bookkeeping and the answer of POST /internal/progress (no live preview)."""
import random
import string
import time
from collections import OrderedDict

from modules import shared

current_task = None
pending_tasks = OrderedDict()  # id -> time.time() when queued (orders the queue)
finished_tasks = []
recorded_results = []
recorded_results_limit = 2


def start_task(id_task):
    global current_task
    current_task = id_task
    pending_tasks.pop(id_task, None)


def finish_task(id_task):
    global current_task
    if current_task == id_task:
        current_task = None
    finished_tasks.append(id_task)
    if len(finished_tasks) > 16:
        finished_tasks.pop(0)


def create_task_id(task_type):
    n = "".join(random.choices(string.ascii_uppercase + string.digits, k=7))
    return f"task({task_type}-{n})"


def record_results(id_task, res):
    recorded_results.append((id_task, res))
    if len(recorded_results) > recorded_results_limit:
        recorded_results.pop(0)


def add_task_to_queue(id_job):
    pending_tasks[id_job] = time.time()


def get_pending_tasks():
    """GET /internal/pending-tasks as a dict: {"size": n, "tasks": [ids]}."""
    return {"size": len(pending_tasks), "tasks": list(pending_tasks)}


def progressapi(id_task, id_live_preview=-1, live_preview=True):
    """What POST /internal/progress answers for `id_task` (the request model's fields as arguments; the
    response model as a dict). Not the current task: {active: False, queued, completed, textinfo "Waiting..."
    or "In queue: k/n"} – the page's progress bar drops a "Waiting..." id after 40 s but keeps a queued one
    forever. The current task: progress from job_no/job_count and the sampling steps, eta, state.textinfo.
    No live preview image is made."""
    active = id_task == current_task
    queued = id_task in pending_tasks
    completed = id_task in finished_tasks

    if not active:
        textinfo = "Waiting..."
        if queued:
            order = sorted(pending_tasks, key=lambda k: pending_tasks[k])
            textinfo = f"In queue: {order.index(id_task) + 1}/{len(order)}"
        return {"active": active, "queued": queued, "completed": completed, "progress": None, "eta": None,
                "live_preview": None, "id_live_preview": -1, "textinfo": textinfo}

    state = shared.state
    progress = 0.0
    if state.job_count > 0:
        progress += state.job_no / state.job_count
        if state.sampling_steps > 0:
            progress += state.sampling_step / state.sampling_steps / state.job_count
    progress = min(progress, 1)
    elapsed = time.time() - (state.time_start or time.time())
    eta = (elapsed / progress - elapsed) if progress > 0 else None
    return {"active": active, "queued": queued, "completed": completed, "progress": progress, "eta": eta,
            "live_preview": None, "id_live_preview": id_live_preview, "textinfo": state.textinfo}


def reset():
    """Stub-only: no task current, queued or finished."""
    global current_task
    current_task = None
    pending_tasks.clear()
    finished_tasks.clear()
    recorded_results.clear()
