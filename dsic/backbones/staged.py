"""A backbone whose stages are sequences of blocks, exposing every block's output.

ISG needs the output of *every* block B_i1..B_in of a stage, not only the stage output, so the
backbone runs an explicit *plan*: an ordered list of sub-module paths of the wrapped network, each
marked as a plain layer (stem, downsampling layer) or as a stage (an iterable of blocks).

Sub-modules keep their original names (``conv1``, ``layer1.0.conv1`` ...) so state dicts of the
wrapped classification network, and of torchvision's ``BackboneWithFPN.body``, load unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class BackboneSpec:
    """Shapes of what a :class:`StagedBackbone` returns (only the returned stages).

    Attributes:
        stage_channels: channels of each returned stage's output (= its last block).
        block_channels: channels of every block of each returned stage.
        strides: total stride of each returned stage.
        stage_ids: 1-based indices of the returned stages among all stages of the plan.
    """

    stage_channels: tuple[int, ...]
    block_channels: tuple[tuple[int, ...], ...]
    strides: tuple[int, ...]
    stage_ids: tuple[int, ...]

    @property
    def num_blocks(self) -> tuple[int, ...]:
        return tuple(len(b) for b in self.block_channels)


class StagedBackbone(nn.Module):
    """Runs ``plan`` over ``network`` and returns the block outputs of the returned stages.

    Args:
        network: the classification network (its unused children, e.g. ``fc``, are dropped).
        plan: ``[(path, is_stage), ...]`` in execution order. ``path`` is a dotted sub-module path.
        return_stages: 1-based stage indices to return (default: all).
        trainable_stages: how many units are trainable counted from the last stage backwards, the
            stem (everything before the first stage) counting as one unit, like torchvision's
            ``trainable_layers`` (0..num_stages+1). ``None`` leaves ``requires_grad`` untouched.

    ``forward`` returns ``list[list[Tensor]]``: for each returned stage, the outputs of its blocks
    in order (only the last one when :attr:`keep_blocks` is False, to save memory).
    """

    def __init__(
        self,
        network: nn.Module,
        plan: list[tuple[str, bool]],
        return_stages: list[int] | None = None,
        trainable_stages: int | None = None,
    ):
        super().__init__()
        stage_paths = [p for p, is_stage in plan if is_stage]
        if not stage_paths:
            raise ValueError("a StagedBackbone plan needs at least one stage")
        n = len(stage_paths)
        return_stages = list(range(1, n + 1)) if return_stages is None else list(return_stages)
        if not return_stages or sorted(set(return_stages)) != return_stages or not (
            1 <= return_stages[0] and return_stages[-1] <= n
        ):
            raise ValueError(f"return_stages must be increasing stage indices in 1..{n}, got {return_stages}")
        # Execute only up to the last returned stage.
        last = plan.index((stage_paths[return_stages[-1] - 1], True))
        self.plan = [(p, s) for p, s in plan[: last + 1]]
        self.return_stages = return_stages
        keep = {p.split(".")[0] for p, _ in self.plan}
        for name, child in network.named_children():
            if name in keep:
                self.add_module(name, child)
        self.keep_blocks = True
        if trainable_stages is not None:
            self._freeze(trainable_stages, n)
        self.spec = self._probe()

    def _freeze(self, trainable: int, num_stages: int) -> None:
        if not 0 <= trainable <= num_stages + 1:
            raise ValueError(f"trainable_layers must be in 0..{num_stages + 1}, got {trainable}")
        # Units in order: stem (all plain layers before stage 1) and then each stage together with
        # the plain layers that precede it (e.g. ConvNeXt's downsampling layers).
        unit_of, stage = {}, 0
        for path, is_stage in self.plan:
            stage += int(is_stage)
            unit_of[path] = stage if is_stage or stage == 0 else stage + 1
        first_trainable = num_stages + 1 - trainable  # units numbered 0 (stem) .. num_stages
        for path, _ in self.plan:
            self.get_submodule(path).requires_grad_(unit_of[path] >= first_trainable)

    @torch.no_grad()
    def _probe(self) -> BackboneSpec:
        was_training = self.training
        self.eval()
        outs = self.forward(torch.zeros(1, 3, 128, 128))
        self.train(was_training)
        return BackboneSpec(
            stage_channels=tuple(s[-1].shape[1] for s in outs),
            block_channels=tuple(tuple(b.shape[1] for b in s) for s in outs),
            strides=tuple(128 // s[-1].shape[-1] for s in outs),
            stage_ids=tuple(self.return_stages),
        )

    def __prepare_scriptable__(self) -> nn.Module:
        """``torch.jit.script`` compiles :class:`ScriptableStaged` in place of this module (the plan's
        dotted paths cannot be resolved in TorchScript); it shares every sub-module and weight."""
        return ScriptableStaged(self)

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        outs: list[list[Tensor]] = []
        stage = 0
        for path, is_stage in self.plan:
            module = self.get_submodule(path)
            if not is_stage:
                x = module(x)
                continue
            stage += 1
            blocks = []
            for block in module:
                x = block(x)
                blocks.append(x)
            if stage in self.return_stages:
                outs.append(blocks if self.keep_blocks else blocks[-1:])
        return outs


class _Layer(nn.Module):
    """A plain plan step as a step returning a one-element list."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> list[Tensor]:
        return [self.module(x)]


class _Stage(nn.Module):
    """A stage plan step: runs its blocks, returns every block's output."""

    def __init__(self, blocks: nn.Module):
        super().__init__()
        self.blocks = blocks if isinstance(blocks, (nn.Sequential, nn.ModuleList)) else nn.ModuleList(blocks)

    def forward(self, x: Tensor) -> list[Tensor]:
        outs: list[Tensor] = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs


class ScriptableStaged(nn.Module):
    """The TorchScript form of a :class:`StagedBackbone`: the plan as a ``ModuleList`` of steps.

    Built by ``torch.jit.script`` (through ``__prepare_scriptable__``); the steps share the original
    modules, so the outputs are the same. Its state-dict keys differ (``steps.i.module...``): save
    and load weights through the eager model.
    """

    def __init__(self, staged: StagedBackbone):
        super().__init__()
        self.steps = nn.ModuleList(
            _Stage(staged.get_submodule(p)) if s else _Layer(staged.get_submodule(p)) for p, s in staged.plan)
        stage, returned = 0, []
        for _, is_stage in staged.plan:
            stage += int(is_stage)
            returned.append(bool(is_stage) and stage in staged.return_stages)
        self.returned: list[bool] = returned
        self.keep_blocks: bool = staged.keep_blocks
        self.spec = staged.spec

    def forward(self, x: Tensor) -> list[list[Tensor]]:
        outs: list[list[Tensor]] = []
        for i, step in enumerate(self.steps):
            ys = step(x)
            x = ys[-1]
            if self.returned[i]:
                outs.append(ys if self.keep_blocks else ys[-1:])
        return outs
