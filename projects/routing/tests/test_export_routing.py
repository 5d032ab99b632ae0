"""The study's neck with path logits exports as the library's necks do (ONNX and TorchScript)."""

import routing  # noqa: F401 - registers dsic_routing for the command line run in this process
from tests.test_export import test_onnx_and_torchscript_match_eager as check_export


def test_path_logits_from_scale_statistics_export_and_match_eager(tmp_path):
    check_export(tmp_path, "dsic_routing", ("model.neck_cfg={csg_path_gate: statistics}",))
