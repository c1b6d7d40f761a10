"""A dispatcher as its own process, for the tests that kill it or run several at once:

    python tests/dispatch/run_dispatch.py BATCH.json --queue URL --out DIR --forge URL [--forge URL …]
        [--lease S] [--probe S] [--timeout-floor S] [--no-affinity] [--poll S]

Prints "started" once the run begins and the final snapshot's line at the end; exit 0 when every image is done,
1 when some failed. (The product's command, `python -m lib_orchestrator batch dispatch`, does the same for users;
this one exposes the timings the tests shorten.)"""
from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from lib_orchestrator.batches import load_batch  # noqa: E402
from lib_orchestrator.dispatch.dispatcher import Dispatcher, Options  # noqa: E402
from lib_orchestrator.dispatch.forge_client import ForgeClient  # noqa: E402
from lib_orchestrator.dispatch.jobs import batch_id  # noqa: E402
from lib_orchestrator.dispatch.queue import JobQueue  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("batch")
    parser.add_argument("--queue", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--forge", action="append", required=True)
    parser.add_argument("--lease", type=float, default=60.0)
    parser.add_argument("--probe", type=float, default=5.0)
    parser.add_argument("--timeout-floor", type=float, default=60.0)
    parser.add_argument("--poll", type=float, default=1.0)
    parser.add_argument("--no-affinity", action="store_true")
    args = parser.parse_args(argv)
    batch = load_batch(args.batch)
    queue = JobQueue(args.queue)
    options = Options(lease_s=args.lease, probe_s=args.probe, timeout_floor_s=args.timeout_floor,
                      affinity=not args.no_affinity, idle_s=0.2, snapshot_s=0.2)
    clients = [ForgeClient(url, poll_s=args.poll, connect_timeout_s=2.0) for url in args.forge]
    dispatcher = Dispatcher(queue, batch, batch_id(batch), clients, args.out, options)
    print("started", flush=True)
    try:
        result = dispatcher.run()
    finally:
        queue.close()
    print(result.text(), flush=True)
    for problem in result.problems:
        print(problem, flush=True)
    return 0 if result.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
