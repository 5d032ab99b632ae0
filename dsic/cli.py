"""The ``dsic`` command line: train, eval, predict, visualize, data synth, profile, demo.

Every sub-command imports its machinery lazily, so ``dsic --help`` is instant. Config overrides
are dotted ``key=value`` pairs (values parsed as YAML), e.g. ``train.epochs=2 model.neck=fpn``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PRECISIONS = ("fp32", "bf16", "fp16")  # dsic.engine.precision.PRECISIONS (not imported: --help stays instant)


def _train(args) -> int:
    from .engine.train import main_train

    main_train(args.config, args.overrides, resume=args.resume)
    return 0


def _eval(args) -> int:
    from .engine.evaluate import main_eval

    metrics = main_eval(args.config, args.checkpoint, args.overrides, evaluator=args.evaluator,
                        precision=args.precision)
    if metrics is not None:
        print(json.dumps(metrics, indent=2))
    return 0


def _predict(args) -> int:
    from .inference import predict_files

    written = predict_files(args.config, args.checkpoint, args.images, args.out, args.score_thresh, args.overrides,
                            precision=args.precision)
    for path in written:
        print(path)
    return 0


def _visualize(args) -> int:
    from .inference import visualize_files

    written = visualize_files(args.config, args.checkpoint, args.images, args.out, args.score_thresh, args.overrides)
    for path in written:
        print(path)
    return 0


def _synth(args) -> int:
    from .data.synth import generate, generate_probe

    given = {"num_train": args.num_train, "num_val": args.num_val, "image_size": args.size}
    given = {k: v for k, v in given.items() if v is not None}
    stats = generate(args.out, seed=args.seed, preset=args.preset, **given)
    if args.probe:
        stats["probe"] = generate_probe(args.out, args.probe, given.get("image_size", 320), args.seed, args.preset)
    print(json.dumps(stats, indent=2, default=str))
    return 0


def _profile(args) -> int:
    from .profiling import format_table, profile, run_conditions

    model_cfg = None
    if args.config:  # the config's model settings (proposal counts, widths, ...); flags given win
        from .config import load_config

        model_cfg = load_config(args.config)["model"]
    args.arch = args.arch or (model_cfg or {}).get("arch", "faster_rcnn")
    args.backbone = args.backbone or (model_cfg or {}).get("backbone", "resnet50")
    rows = profile(args.arch, args.backbone, args.necks.split(","), args.size, warmup=args.warmup,
                   num_classes=(model_cfg or {}).get("num_classes", 80), model_cfg=model_cfg,
                   neck_cfg=(model_cfg or {}).get("neck_cfg"),
                   repeats=args.repeats, device=args.device, precisions=args.precision.split(","),
                   batch=args.batch or None, train=not args.no_train, memory=not args.no_memory,
                   threads=args.threads, reference=args.reference, cpu_time=args.cpu_time)
    table = format_table(rows, reference=args.reference)
    print(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({**run_conditions(argv=sys.argv), "rows": [r.as_dict() for r in rows]},
                                             indent=2) + "\n")
    return 0


def _demo(args) -> int:
    from .demo import run_demo

    run_demo(args.out, quick=args.quick, seeds=args.seeds, necks=args.necks.split(","))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dsic", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train a detector from a YAML config (works under torchrun)")
    p.add_argument("config")
    p.add_argument("overrides", nargs="*", help="dotted key=value config overrides")
    p.add_argument("--resume", action="store_true", help="resume from output_dir/last.pth")
    p.set_defaults(func=_train)

    p = sub.add_parser("eval", help="COCO evaluation of a checkpoint (works under torchrun)")
    p.add_argument("config")
    p.add_argument("checkpoint")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--evaluator", choices=["faster_coco_eval", "pycocotools"], default=None)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="autocast precision (fp16: CUDA only)")
    p.set_defaults(func=_eval)

    for name, func, help_ in (("predict", _predict, "draw detections on images"),
                              ("visualize", _visualize, "detections + CSG state matrix + ISG gates (Fig. 3)")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("config")
        p.add_argument("checkpoint")
        p.add_argument("images", nargs="+", help="image files or folders")
        p.add_argument("--out", required=True, help="output folder")
        p.add_argument("--score-thresh", type=float, default=0.5)
        p.add_argument("--set", dest="overrides", nargs="*", default=[], help="config overrides key=value")
        if name == "predict":
            p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="autocast precision (fp16: CUDA only)")
        p.set_defaults(func=func)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("synth", help="generate the embedded multi-scale COCO-format dataset")
    p.add_argument("--out", required=True)
    p.add_argument("--num-train", type=int, default=None)
    p.add_argument("--num-val", type=int, default=None)
    p.add_argument("--size", type=int, default=None, help="image side in pixels")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preset", choices=["default", "hard"], default="default",
                   help="hard: the benchmark-v2 set (half small objects, 4-250 px, cluttered backgrounds)")
    p.add_argument("--probe", type=int, default=0, metavar="N",
                   help="also write N images each of the all-small / all-large / mixed probe groups")
    p.set_defaults(func=_synth)

    p = sub.add_parser("profile", help="params, GFLOPs and median latency per neck")
    p.add_argument("--config", default=None, help="take the detector's settings from this config's model section")
    p.add_argument("--arch", default=None, help="default: the config's, else faster_rcnn")
    p.add_argument("--backbone", default=None, help="default: the config's, else resnet50")
    p.add_argument("--necks", default="fpn,isg,csg,dsic", help="comma-separated neck names")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--device", default="cpu")
    p.add_argument("--reference", default="fpn", help="neck the ratios are relative to")
    p.add_argument("--precision", type=_precision_list, default="fp32",
                   help="comma-separated precisions to profile, e.g. fp32,bf16 (fp16: CUDA only)")
    p.add_argument("--batch", type=int, default=2, help="images per pass for throughput and memory (0: skip)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-train", action="store_true", help="skip the training-step figures")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory figures")
    p.add_argument("--cpu-time", action="store_true",
                   help="time with the thread's CPU time instead of wall time (one thread, loaded machine)")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    p.set_defaults(func=_profile)

    p = sub.add_parser("demo", help="synth data, train FPN and DSIC Faster R-CNN on CPU, compare")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--necks", default="fpn,dsic")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="a 1-minute smoke run instead of the full demo")
    p.set_defaults(func=_demo)
    return parser


def _precision_list(text: str) -> str:
    bad = [p for p in text.split(",") if p not in PRECISIONS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown precision {bad[0]!r}; expected one of {', '.join(PRECISIONS)}")
    return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .engine.precision import PrecisionError

    try:
        return args.func(args)
    except PrecisionError as err:  # e.g. fp16 on the CPU: one line, exit status 2
        print(f"dsic {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
