"""`torchrun --nproc_per_node N -m thinkscale.train sft ...` (or `accelerate launch -m ...`):
`thinkscale train sft ...` on every process; the Trainer picks up the distributed setup.

A launched CPU (gloo) process, its work written, sometimes aborts in the interpreter's C++
teardown ("terminate called without an active exception", SIGABRT; about 1 run in 4 here with
torch 2.13), which the launcher reports as a failed run. So a launched process leaves with
os._exit once its output is flushed."""

import os
import sys

from thinkscale.cli import main

if __name__ == "__main__":
    code = main(["train", *sys.argv[1:]])
    if "WORLD_SIZE" not in os.environ:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
