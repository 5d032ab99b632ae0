"""The ``dsic`` command line: train, eval, predict, visualize, export, plot, data synth, profile, demo.

Every sub-command imports its machinery lazily, so ``dsic --help`` is instant. Config overrides
are dotted ``key=value`` words anywhere on the line (values parsed as YAML), e.g.
``train.epochs=2 model.neck=fpn``, the same for every sub-command that reads a config; options
(``--resume``, ``--device``, ``--out`` ...) may come before, between or after them.

Errors in what a user gives (configs, data, missing files, unreadable checkpoints, bad options)
print one line ``dsic: error: ...`` and exit with code 2; ``--debug`` shows the traceback instead.
dsic's own warnings (:class:`dsic.DsicWarning`: dropped boxes, slow settings) print one line
``[dsic] warning: ...``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from pathlib import Path

from .config import DEVICE_NAMES, is_device_name

SYNTH_PRESETS = ["default", "hard", "scenes"]  # dsic.data.synth.PRESETS, named here so the parser imports no numpy

PRECISIONS = ("fp32", "bf16", "fp16")  # dsic.engine.precision.PRECISIONS (not imported: --help stays instant)
CONFIG_SUFFIXES = (".yaml", ".yml")
#: what a user's input can get wrong: a ConfigError / DatasetError (ValueErrors), a missing or
#: unreadable file (OSError), a run that diverged (FloatingPointError: non-finite loss or weights)
USER_ERRORS = (ValueError, OSError, FloatingPointError)  # FloatingPointError: training diverged (NaN/inf)


class UsageError(ValueError):
    """The words of the command line do not make a valid call."""


def split_words(words: list[str], config: str | None = None) -> tuple[str | None, list[str], list[str]]:
    """``(config, paths, overrides)``: ``key=value`` words that are not existing files are overrides;
    a first word ending in .yaml/.yml is the config (unless ``--config`` gave one)."""
    paths, overrides = [], []
    for word in words:
        if "=" in word and not word.startswith("=") and not Path(word).exists():
            overrides.append(word)
        else:
            paths.append(word)
    if config is None and paths and paths[0].lower().endswith(CONFIG_SUFFIXES):
        config, paths = paths[0], paths[1:]
    return config, paths, overrides


def _overrides(args, overrides: list[str]) -> list[str]:
    extra = list(getattr(args, "set", None) or [])
    if getattr(args, "device", None):
        extra.append(f"device={args.device}")
    return overrides + extra


def _train(args) -> int:
    from .engine.train import main_train

    config, rest, overrides = split_words(args.words, args.config)
    if rest:
        raise UsageError(f"dsic train takes a config file and key=value overrides; not an override: {rest[0]}")
    if config is None and not overrides:
        raise UsageError("dsic train needs a config: dsic train CONFIG.yaml [key=value ...] (examples in configs/; "
                         "README.md, 'Your own data')")
    result = main_train(config, _overrides(args, overrides), resume=args.resume)
    print(f"[dsic] outputs in {result['output_dir']} (final weights: {result['final']})", flush=True)
    return 0


def _eval(args) -> int:
    from .engine.evaluate import main_eval

    config, rest, overrides = split_words(args.words, args.config)
    if len(rest) != 1:
        raise UsageError(f"dsic eval takes [CONFIG] CHECKPOINT and key=value overrides, got {args.words}")
    metrics = main_eval(config, rest[0], _overrides(args, overrides), evaluator=args.evaluator,
                        precision=args.precision)
    if metrics is not None:
        print(json.dumps(metrics, indent=2))
    return 0


def _predict(args, with_states: bool = False) -> int:
    from .inference import predict_images

    config, rest, overrides = split_words(args.words, args.config)
    if len(rest) < 2:
        raise UsageError(f"dsic {args.command} takes [CONFIG] CHECKPOINT IMAGES..., got {args.words}")
    report = predict_images(rest[0], rest[1:], args.out, args.score_thresh, config, overrides + args.set,
                            args.device, getattr(args, "per_image_json", False), with_states=with_states,
                            precision=getattr(args, "precision", "fp32"))
    for path in report["written"]:
        print(path)
    if report["results"] is not None:
        print(report["results"])
    return 0


def _visualize(args) -> int:
    return _predict(args, with_states=True)


def _export(args) -> int:
    from .export import export

    config, rest, overrides = split_words(args.words, args.config)
    if len(rest) != 1:
        raise UsageError(f"dsic export takes [CONFIG] CHECKPOINT and key=value overrides, got {args.words}")
    path = export(rest[0], args.out, args.format, config, overrides + args.set, size=tuple(args.size))
    print(path)
    return 0


def _plot(args) -> int:
    from .visualize import plot_run

    for path in plot_run(args.run_dir, args.out):
        print(path)
    return 0


def _synth(args) -> int:
    from .data.synth import generate, generate_probe, written_by_synth

    out = Path(args.out)
    if out.is_dir() and any(out.iterdir()) and not written_by_synth(out):  # a dataset of one's own, say: not written over
        raise UsageError(f"{out}: the folder holds files that dsic data synth did not write (an earlier synthetic "
                         f"set has its README.txt); give a new or empty --out")
    given = {"num_train": args.num_train, "num_val": args.num_val, "image_size": args.size}
    given = {k: v for k, v in given.items() if v is not None}
    stats = generate(args.out, seed=args.seed, preset=args.preset, **given)
    if args.probe:
        stats["probe"] = generate_probe(args.out, args.probe, given.get("image_size", 320), args.seed, args.preset)
    print(json.dumps(stats, indent=2, default=str))
    return 0


def _output_file(option: str, value: str, what: str, example: str) -> Path:
    """``value`` of ``option`` as a file that can be written (missing folders are made then), checked
    before the work that ends in writing it: a UsageError naming the option otherwise."""
    path = Path(value)
    if path.is_dir():
        raise UsageError(f"{option} {value!r}: is a folder; expected {what} to write, e.g. {str(path / example)!r}")
    folder = next(p for p in path.absolute().parents if p.exists())  # the nearest existing one
    if not folder.is_dir():
        raise UsageError(f"{option} {value!r}: {folder} is a file, not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {value!r}: cannot write in {folder} (permission denied)")
    return path


def _input_path(option: str, value: str, what: str) -> None:
    """A UsageError naming ``option`` when ``value`` is not an existing ``what`` ("file" or "folder")."""
    path = Path(value)
    if not (path.is_dir() if what == "folder" else path.is_file()):
        where = "" if path.is_absolute() else f" (relative to the current folder {Path.cwd()})"
        raise UsageError(f"{option} {value!r}: no such {what}{where}")


def _pretrain(args) -> int:
    from .engine.pretrain import pretrain_backbone

    _input_path("--images", args.images, "folder")
    _input_path("--annotations", args.annotations, "file")
    _output_file("--out", args.out, "the weights file", f"{args.backbone}_{args.norm}.pth")
    pretrain_backbone(args.images, args.annotations, args.out, backbone=args.backbone, norm=args.norm,
                      steps=args.steps, batch_size=args.batch, lr=args.lr, size=args.size, seed=args.seed,
                      threads=args.threads)
    return 0


def _profile(args) -> int:
    from .profiling import format_table, profile, run_conditions

    if args.out:  # checked before the minutes of profiling
        _output_file("--out", args.out, "the JSON file", "profile.json")
    model_cfg = None
    if args.config:  # the config's model settings (proposal counts, widths, ...); flags given win
        from .config import load_config
        from .data.classes import resolve_classes

        cfg = load_config(args.config)
        if cfg["model"]["num_classes"] is None:  # null: the training JSON's categories, as training takes them
            cfg = resolve_classes(cfg, "train")
        model_cfg = cfg["model"]
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


def _config_command(sub, name: str, func, help_: str, words: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_, description=help_)
    p.add_argument("words", nargs="*", metavar=words, help="key=value words are config overrides")
    p.add_argument("--config", default=None, help="the config file (also: a first word ending in .yaml)")
    p.add_argument("--set", nargs="+", action="extend", default=[], help=argparse.SUPPRESS)  # older spelling
    p.add_argument("--debug", action="store_true", help="show the traceback of an error")
    p.set_defaults(func=func)
    return p


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="dsic", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dsic {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)

    p = _config_command(sub, "train", _train, "train a detector from a YAML config (works under torchrun)",
                        "[CONFIG] [key=value ...]")
    p.add_argument("--resume", action="store_true", help="continue from output_dir/last.pth (or interrupted.pth)")
    p.add_argument("--device", type=_device, default=None, help="auto, cpu, cuda or cuda:N (the config's 'device')")

    p = _config_command(sub, "eval", _eval, "COCO evaluation of a checkpoint (works under torchrun)",
                        "[CONFIG] CHECKPOINT [key=value ...]")
    p.add_argument("--evaluator", choices=["faster_coco_eval", "pycocotools"], default=None)
    p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="autocast precision (fp16: CUDA only)")
    p.add_argument("--device", type=_device, default=None, help="auto, cpu, cuda or cuda:N")

    for name, func, help_ in (("predict", _predict, "detections on images: drawn PNGs and COCO results JSON"),
                              ("visualize", _visualize, "detections + CSG state matrix + ISG gates (Fig. 3)")):
        p = _config_command(sub, name, func, help_, "[CONFIG] CHECKPOINT IMAGE|FOLDER|GLOB ... [key=value ...]")
        p.add_argument("--out", required=True, help="output folder")
        p.add_argument("--score-thresh", type=_score, default=0.5, help="draw and write detections scoring at "
                       "least this, in [0, 1] (default: 0.5)")
        p.add_argument("--device", type=_device, default=None, help="auto, cpu, cuda or cuda:N (default: the config's device)")
        if name == "predict":
            p.add_argument("--precision", choices=PRECISIONS, default="fp32", help="autocast precision (fp16: CUDA only)")
            p.add_argument("--per-image-json", action="store_true", help="also write <image>.json per image")

    p = _config_command(sub, "export", _export, "ONNX or TorchScript file of a checkpoint (see docs/export.md)",
                        "[CONFIG] CHECKPOINT [key=value ...]")
    p.add_argument("--out", required=True, help="the file to write (.onnx or .pt)")
    p.add_argument("--format", choices=["onnx", "torchscript"], default=None,
                   help="default: the one --out's suffix names (.onnx: onnx; .pt, .pth, .ts: torchscript)")
    p.add_argument("--size", type=int, nargs=2, default=[800, 800], metavar=("H", "W"),
                   help="example input size for ONNX (any size works at run time)")

    p = sub.add_parser("plot", help="loss and AP curves of a training run")
    p.add_argument("run_dir")
    p.add_argument("--out", default=None, help="output folder (default: RUN_DIR/plots)")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_plot)

    data = sub.add_parser("data", help="datasets").add_subparsers(dest="data_command", required=True)
    p = data.add_parser("synth", help="generate the embedded multi-scale COCO-format dataset")
    p.add_argument("--out", required=True, help="dataset folder to write (train/, val/, annotations/)")
    p.add_argument("--num-train", type=_at_least(0), default=None, help="training images (default: the preset's)")
    p.add_argument("--num-val", type=_at_least(0), default=None, help="validation images (default: the preset's)")
    p.add_argument("--size", type=_at_least(32), default=None, help="image side in pixels (default: the preset's)")
    p.add_argument("--seed", type=_at_least(0), default=0, help="the same seed writes the same dataset")
    p.add_argument("--preset", choices=SYNTH_PRESETS, default="default",
                   help="hard: the benchmark-v2 set (half small objects, 4-250 px, cluttered backgrounds); "
                        "scenes: hard whose images are small-object, large-object or mixed scenes (v4)")
    p.add_argument("--probe", type=_at_least(0), default=0, metavar="N",
                   help="also write N images each of the all-small / all-large / mixed probe groups")
    p.set_defaults(func=_synth)

    p = data.add_parser("pretrain", help="pre-train a backbone on the object crops of a COCO-format set "
                        "(dsic.engine.pretrain; protocol v3's resnet_tiny)")
    p.add_argument("--images", required=True, help="the images folder")
    p.add_argument("--annotations", required=True, help="its COCO JSON")
    p.add_argument("--out", required=True, help="weights file to write (+ OUT.json with the metrics)")
    p.add_argument("--backbone", default="resnet_tiny", help="backbone name (dsic.backbones)")
    p.add_argument("--norm", default="gn", choices=["bn", "gn"], help="normalisation layers")
    p.add_argument("--steps", type=_at_least(1), default=1200, help="SGD steps")
    p.add_argument("--batch", type=_at_least(1), default=64, help="crops per step")
    p.add_argument("--lr", type=float, default=0.1, help="peak learning rate")
    p.add_argument("--size", type=_at_least(8), default=64, help="crop side in pixels")
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--threads", type=_at_least(1), default=None, help="torch threads (default: torch's)")
    p.add_argument("--debug", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("profile", help="params, GFLOPs and median latency per neck")
    p.add_argument("--config", default=None, help="take the detector's settings from this config's model section")
    p.add_argument("--arch", default=None, help="default: the config's, else faster_rcnn")
    p.add_argument("--backbone", default=None, help="default: the config's, else resnet50")
    p.add_argument("--necks", default="fpn,isg,csg,dsic", help="comma-separated neck names")
    p.add_argument("--size", type=_at_least(32), default=512, help="square input side in pixels")
    p.add_argument("--warmup", type=_at_least(0), default=2, help="untimed passes first")
    p.add_argument("--repeats", type=_at_least(1), default=10, help="timed passes (the median is reported)")
    p.add_argument("--device", type=_device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--reference", default="fpn", help="neck the ratios are relative to")
    p.add_argument("--precision", type=_precision_list, default="fp32",
                   help="comma-separated precisions to profile, e.g. fp32,bf16 (fp16: CUDA only)")
    p.add_argument("--batch", type=_at_least(0), default=2, help="images per pass for throughput and memory (0: skip)")
    p.add_argument("--threads", type=_at_least(1), default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-train", action="store_true", help="skip the training-step figures")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory figures")
    p.add_argument("--cpu-time", action="store_true",
                   help="time with the thread's CPU time instead of wall time (one thread, loaded machine)")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    p.set_defaults(func=_profile)

    p = sub.add_parser("demo", help="synth data, train FPN and DSIC Faster R-CNN on CPU, compare")
    p.add_argument("--out", default="runs/demo", help="output folder")
    p.add_argument("--necks", default="fpn,dsic", help="comma-separated neck names")
    p.add_argument("--seeds", type=int, default=1, help="seeds per neck")
    p.add_argument("--quick", action="store_true", help="a 1-minute smoke run instead of the full demo")
    p.set_defaults(func=_demo)
    _show_defaults(parser)
    return parser


class _DefaultsHelp(argparse.HelpFormatter):
    """Appends '(default: X)' to an option's help unless the default is None or the help names it."""

    def _get_help_string(self, action):
        text = action.help or ""
        unset = action.default is None or action.default is False or action.default == argparse.SUPPRESS
        if action.option_strings and not unset and "default" not in text:
            text += " (default: %(default)s)"
        return text


def _show_defaults(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                sub.formatter_class = _DefaultsHelp
                _show_defaults(sub)


def _precision_list(text: str) -> str:
    bad = [p for p in text.split(",") if p not in PRECISIONS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown precision {bad[0]!r}; expected one of {', '.join(PRECISIONS)}")
    return text


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``; a config command's options and words may come in any order."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    first = next((i for i, word in enumerate(argv) if not word.startswith("-")), None)
    command = argv[first] if first is not None else None
    if command in ("train", "eval", "predict", "visualize", "export", "plot"):
        head = [w for w in argv[:first] if w != "--debug"]
        if head:  # --version / --help / a typo before the command
            return parser.parse_args(argv)
        args = sub.choices[command].parse_intermixed_args(argv[first + 1:])
        args.command = command
        args.debug = args.debug or "--debug" in argv[:first]
        return args
    return parser.parse_args(argv)


def _describe(err: Exception) -> str:
    """The error's message; an error the OS raised on a path reads as 'path: what is wrong'."""
    if not isinstance(err, OSError) or not err.strerror:
        return str(err)
    if err.filename is None:  # OSError(errno, text), e.g. CheckpointWriteError: the text, no '[Errno N]'
        return err.strerror
    if isinstance(err, FileExistsError):  # mkdir(exist_ok=True) on a file
        return f"{err.filename}: exists and is not a folder (a folder is written there)"
    if isinstance(err, NotADirectoryError):
        return f"{err.filename}: part of this path is a file, not a folder"
    return f"{err.filename}: {err.strerror}"


def _device(text: str) -> str:
    """argparse type of --device: auto, cpu, cuda or cuda:N (whether CUDA is there is checked on use)."""
    if not is_device_name(text):
        raise argparse.ArgumentTypeError(f"expected {DEVICE_NAMES}, got {text!r}")
    return text


def _score(text: str) -> float:
    """argparse type of a score threshold: a number in [0, 1] (detector scores are probabilities)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a score: detector scores lie in [0, 1]")
    return value


def _at_least(minimum: int):
    """argparse type of a count or size: an integer >= ``minimum``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _one_line_warnings(default):
    """A ``warnings.showwarning`` that prints dsic's own warnings (DsicWarning) as one line
    ``[dsic] warning: ...``, without the source line, on a line of its own also while a progress
    bar is drawn (``tqdm.write``); ``default`` shows the others."""
    from . import DsicWarning

    def show(message, category, filename, lineno, file=None, line=None):
        if not issubclass(category, DsicWarning):
            return default(message, category, filename, lineno, file, line)
        from tqdm import tqdm

        tqdm.write(f"[dsic] warning: {' '.join(str(message).split())}", file=file or sys.stderr)
        (file or sys.stderr).flush()

    return show


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            return args.func(args)
    except USER_ERRORS as err:
        if getattr(args, "debug", False):
            raise
        message = " ".join(_describe(err).split()) or type(err).__name__
        print(f"dsic: error: {message} (--debug shows the traceback)", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt as err:  # Ctrl-C / SIGTERM; training has already said where its state went
        if getattr(args, "debug", False):
            raise
        print(f"dsic: {err or 'interrupted'}", file=sys.stderr, flush=True)
        return 128 + getattr(err, "signum", 2)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM


if __name__ == "__main__":
    sys.exit(main())
