"""``python -m bench.agents ENTITY/PROJECT/SWEEP_ID``: one W&B sweep agent per GPU.

Each agent is ``wandb agent`` with ``CUDA_VISIBLE_DEVICES`` set to one GPU, so each run it
starts sees one device; the runs share ``results_dir``, where each point is claimed once.
The GPUs are ``--gpus`` (e.g. ``0,1,3``), else ``CUDA_VISIBLE_DEVICES``, else those
``nvidia-smi -L`` lists. SIGTERM or SIGINT is passed on to every agent, and the command
waits for all of them; its exit code is the first non-zero one of theirs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys

from bench.core.console import say


def gpus(requested: str | None, environ: dict | None = None) -> list[str]:
    """The GPU ids to start agents on (see the module doc); empty when there are none."""
    environ = os.environ if environ is None else environ
    chosen = requested or environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is not None:
        return [g.strip() for g in chosen.split(",") if g.strip() not in ("", "-1")]
    if shutil.which("nvidia-smi") is None:
        return []
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def parser() -> argparse.ArgumentParser:
    """``python -m bench.agents``'s options (the documentation is built from them)."""
    found = argparse.ArgumentParser(prog="python -m bench.agents", description=__doc__)
    found.add_argument("sweep", help="ENTITY/PROJECT/SWEEP_ID, as `wandb sweep` printed it")
    found.add_argument("--gpus", help="comma-separated GPU ids (default: every GPU)")
    found.add_argument("--count", type=int, help="runs per agent (wandb agent --count)")
    return found


def main(argv: list[str] | None = None) -> int:
    """Starts the agents and waits for them."""
    args = parser().parse_args(argv)
    devices = gpus(args.gpus)
    if not devices:
        say("no GPU found (--gpus, CUDA_VISIBLE_DEVICES, nvidia-smi); start one agent with "
            f"`wandb agent {args.sweep}`", error=True)  # fmt: skip
        return 2
    command = ["wandb", "agent", *(["--count", str(args.count)] if args.count else []), args.sweep]
    agents = [
        subprocess.Popen(command, env={**os.environ, "CUDA_VISIBLE_DEVICES": gpu})
        for gpu in devices
    ]
    say(f"started {len(agents)} agents on GPUs {','.join(devices)} for sweep {args.sweep}")

    def forward(signum, frame) -> None:
        for agent in agents:
            if agent.poll() is None:
                agent.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    codes = [agent.wait() for agent in agents]
    return next((code for code in codes if code), 0)


if __name__ == "__main__":
    sys.exit(main())
