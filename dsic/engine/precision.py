"""Numeric precision of a forward pass: ``fp32``, ``bf16`` or ``fp16`` autocast, per device.

One place decides which precision names are valid on which device and gives the autocast context
for them; training (``train.amp``), ``dsic eval``, ``dsic predict`` and ``dsic profile`` all go
through it.

* ``fp32``: no autocast.
* ``bf16``: ``torch.autocast(device, dtype=torch.bfloat16)``, on the CPU and on CUDA (if the GPU
  supports bf16). bf16 has fp32's exponent range, so training needs no GradScaler. On a CPU
  without native bf16 instructions (AVX512-BF16 / AMX; ``torch.ops.mkldnn._is_mkldnn_bf16_supported()``
  False) oneDNN falls back to slow kernels: measured on a 2-core AVX2 EPYC, a 256->256 3x3 conv
  at 64x64 took 98 ms in fp32 and 23 s in bf16. :func:`check_precision` warns in that case.
* ``fp16``: ``torch.autocast("cuda", dtype=torch.float16)``, CUDA only (training adds a GradScaler:
  fp16's range needs loss scaling). Rejected on the CPU.

Under bf16 / fp16 a detector keeps its coordinates and scores in fp32 (:func:`fp32_outputs`, entered
by :func:`autocast` when it is given the model): the anchors are made in fp32 (torchvision makes
them in the feature maps' dtype) and the heads' predictions (box deltas, class logits, centerness,
mask logits) are cast to fp32, so anchors, box decoding, proposals, RoIAlign's sampling
coordinates, scores, NMS and mask pasting run in fp32; the backbone, the neck and the heads' convs
and linears stay in the low precision. In bf16 (8 mantissa bits) a coordinate near 400 px is a
multiple of 2 px; docs/precision.md gives the AP this costs and which part matters.

``train.amp`` keeps its historical values: ``false`` (fp32), ``true`` (fp16 on CUDA, fp32 on any
other device, as before), ``bf16`` and ``fp16`` (as named, checked for the device).
"""

from __future__ import annotations

import contextlib
import warnings

import torch

from .. import DsicWarning
from ..host import cpu_model, machine, native_bf16_cpu  # noqa: F401 - the names precision callers use

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
AMP_VALUES = (False, True, "bf16", "fp16")  # accepted values of train.amp


class PrecisionError(ValueError):
    """A precision name that is unknown or not available on the device."""


class SlowPrecisionWarning(DsicWarning, RuntimeWarning):
    """bf16 on a CPU without native bf16 kernels: valid, but slow."""


def check_precision(precision: str, device: str | torch.device = "cpu", warn: bool = True) -> str:
    """``precision`` if it is valid on ``device``, else :class:`PrecisionError` (one line naming the
    problem). Warns when bf16 runs on a CPU without native bf16 kernels (valid, but slow)."""
    if precision not in PRECISIONS:
        raise PrecisionError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    dev = torch.device(device)
    if precision == "fp16" and dev.type != "cuda":
        raise PrecisionError(f"precision fp16 needs a CUDA device, got {dev.type}; use bf16 or fp32 on the CPU")
    if precision == "bf16" and dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PrecisionError(f"precision bf16 is not supported by {torch.cuda.get_device_name(dev)}; use fp16")
    if precision == "bf16" and dev.type == "cpu" and warn and not native_bf16_cpu():
        warnings.warn("bf16 on a CPU without native bf16 kernels (AVX512-BF16 / AMX): expect it to be "
                      "much slower than fp32", SlowPrecisionWarning, stacklevel=2)
    return precision


# Where a torchvision detector's coordinates and scores start (module paths; those a model lacks are
# skipped). Outputs cast to fp32: the RPN's and the dense heads' predictions, the box and mask predictors'.
FP32_OUTPUTS = ("rpn.head", "roi_heads.box_predictor", "roi_heads.mask_predictor", "head")
# Anchor generators, given fp32 stand-ins of the feature maps (they read only shape, dtype, device).
FP32_ANCHORS = ("rpn.anchor_generator", "anchor_generator")


def to_fp32(value):
    """``value`` with every bf16 / fp16 tensor in it (nested in lists, tuples and dicts) cast to fp32."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.dtype in (torch.bfloat16, torch.float16) else value
    if isinstance(value, dict):
        return type(value)((k, to_fp32(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(to_fp32(v) for v in value)
    return value


def _cast_output(module, inputs, output):
    return to_fp32(output)


def _fp32_feature_shapes(module, inputs):
    image_list, feature_maps = inputs
    return image_list, [torch.empty((), dtype=torch.float32, device=f.device).expand(f.shape)
                        if f.dtype != torch.float32 else f
                        for f in feature_maps]  # no copy: a broadcast fp32 scalar of the map's shape


def _modules(model: torch.nn.Module, names: tuple[str, ...]):
    for name in names:
        module = model
        for attr in name.split("."):
            module = getattr(module, attr, None)
        if isinstance(module, torch.nn.Module):
            yield module


@contextlib.contextmanager
def fp32_outputs(model: torch.nn.Module, outputs: tuple[str, ...] | None = None,
                 anchors: tuple[str, ...] | None = None):
    """While open (forward hooks, removed on exit), the outputs of ``model``'s ``outputs`` modules
    (default :data:`FP32_OUTPUTS`) are cast to fp32 and its ``anchors`` generators (default
    :data:`FP32_ANCHORS`) make fp32 anchors."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    handles = []
    try:
        for module in _modules(model, FP32_OUTPUTS if outputs is None else outputs):
            handles.append(module.register_forward_hook(_cast_output))
        for module in _modules(model, FP32_ANCHORS if anchors is None else anchors):
            handles.append(module.register_forward_pre_hook(_fp32_feature_shapes))
        yield
    finally:
        for handle in handles:
            handle.remove()


def autocast(device: str | torch.device, precision: str = "fp32", warn: bool = True,
             model: torch.nn.Module | None = None):
    """The autocast context of ``precision`` on ``device`` (a null context for fp32). Given the
    detector ``model``, its coordinates and scores stay in fp32 (:func:`fp32_outputs`)."""
    check_precision(precision, device, warn)
    if precision == "fp32":
        return contextlib.nullcontext()
    return _Autocast(torch.device(device).type, DTYPES[precision], model)


class _Autocast:
    """torch.autocast plus the model's fp32 outputs; can be entered again after it is left."""

    def __init__(self, device_type: str, dtype: torch.dtype, model: torch.nn.Module | None):
        self.device_type, self.dtype, self.model = device_type, dtype, model
        self.stack = None

    def __enter__(self):
        stack = contextlib.ExitStack()
        if self.model is not None:
            stack.enter_context(fp32_outputs(self.model))
        stack.enter_context(torch.autocast(self.device_type, dtype=self.dtype))
        self.stack = stack
        return self

    def __exit__(self, *exc):
        stack, self.stack = self.stack, None
        return stack.__exit__(*exc)


def amp_precision(amp, device: str | torch.device) -> str:
    """The precision named by a ``train.amp`` value on ``device`` (see the module doc)."""
    if amp not in AMP_VALUES or (amp in (0, 1) and not isinstance(amp, bool)):
        raise PrecisionError(f"train.amp must be one of false, true, bf16, fp16, got {amp!r}")
    dev = torch.device(device)
    if amp is False:
        return "fp32"
    if amp is True:
        return "fp16" if dev.type == "cuda" else "fp32"
    try:
        return check_precision(amp, dev)
    except PrecisionError as err:
        raise PrecisionError(f"train.amp: {err}") from None


def needs_grad_scaler(precision: str, device: str | torch.device) -> bool:
    """fp16 on CUDA trains with loss scaling; bf16 and fp32 do not."""
    return precision == "fp16" and torch.device(device).type == "cuda"


# torch functions autocast runs in bf16 on the CPU that a detector calls (convolutions, matrix products)
_LOWERED = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "linear")
_LOWERED_TORCH = ("matmul", "mm", "bmm", "addmm", "baddbmm", "addbmm")


def _bf16_rounded(value):
    if isinstance(value, torch.Tensor) and value.dtype in (torch.float32, torch.bfloat16):
        return value.to(torch.bfloat16).float()
    if isinstance(value, (list, tuple)):
        return type(value)(_bf16_rounded(v) for v in value)
    return value


class EmulatedBf16(torch.overrides.TorchFunctionMode):
    """bf16 numerics at fp32 speed on a CPU without native bf16 kernels, for accuracy checks only.

    Inside CPU bf16 autocast, each convolution and matrix product takes its inputs, weights and bias
    rounded to bf16, computes in fp32 and rounds its output to bf16: what oneDNN's bf16 kernels do
    (bf16 operands, fp32 accumulation, bf16 result) up to the order of the sums. Every other op runs
    as under autocast. Without it such a CPU runs bf16 through reference kernels (100x slower)."""

    functions = ({getattr(torch.nn.functional, n) for n in _LOWERED}
                 | {getattr(torch, n) for n in _LOWERED_TORCH + _LOWERED[:6]})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.functions and torch.is_autocast_enabled("cpu") \
                and torch.get_autocast_dtype("cpu") == torch.bfloat16:
            with torch.autocast("cpu", enabled=False):
                out = func(*_bf16_rounded(args), **{k: _bf16_rounded(v) for k, v in kwargs.items()})
            return out.to(torch.bfloat16)
        return func(*args, **kwargs)
