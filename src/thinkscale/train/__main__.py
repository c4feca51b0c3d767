"""`torchrun --nproc_per_node N -m thinkscale.train sft ...` (or `accelerate launch -m ...`):
`thinkscale train sft ...` on every process; the Trainer picks up the distributed setup."""

import sys

from thinkscale.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
