"""The ``dsic`` command line with the routing study's neck registered, its runs trained by the study's
model factory (:func:`routing.models.build_model`: scale supervision for ``scale`` path gates).

    python projects/routing/train.py train CONFIG [key=value ...] [--resume]
    python projects/routing/train.py predict ...   # any other dsic command, dsic_routing known

benchmarks/run.py trains the study's rows with it (``COMMAND`` of projects/routing/rows.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

from dsic import cli
from dsic.config import load_config
from dsic.engine.train import train
from routing.models import build_model


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] != ["train"]:
        return cli.main(argv)
    words = [w for w in argv[1:] if w != "--resume"]
    if not words or "=" in words[0]:
        raise SystemExit("usage: projects/routing/train.py train CONFIG [key=value ...] [--resume]")
    result = train(load_config(words[0], words[1:]), model_factory=build_model, resume="--resume" in argv)
    print(f"[dsic] outputs in {result['output_dir']} (final weights: {result['final']})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
