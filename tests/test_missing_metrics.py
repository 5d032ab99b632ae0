"""A metric COCOeval has no value for (-1, e.g. APl / ARl of a split without large objects) reads
as '-' in summaries and is left out of plots, never as -100 %."""

import json

from dsic.engine.reporting import RunReport, percent, summary_text
from dsic.engine.train import JsonLog

METRICS = {"bbox": {"AP": 0.25, "AP50": 0.5, "APl": -1.0, "ARl": -1.0}}


def test_percent_of_a_missing_metric_is_a_dash():
    assert [percent(v) for v in (0.2531, 0.0, -1.0, None, float("nan"))] == ["25.3", "0.0", "-", "-", "-"]


def test_the_summary_shows_a_dash_not_minus_100(tmp_path):
    cfg = {"data": {"val": {}}, "train": {"epochs": 1}}
    result = {"iteration": 3, "epoch": 1, "metrics": METRICS, "final": "f.pth", "checkpoint": "l.pth"}
    text = summary_text(cfg, result, tmp_path)
    assert "| bbox | 25.0 | 50.0 | - | - |" in text and "-100" not in text


def test_the_plain_eval_line_shows_a_dash(tmp_path, capsys):
    cfg = {"output_dir": str(tmp_path), "train": {"epochs": 1}}
    report = RunReport(JsonLog(None), cfg, 3, plain=True)
    report.active = True
    report._eval({"epoch": 1, "iter": 3, "eval": {"bbox": {"AP": -1.0, "AP50": 0.5}}})
    assert capsys.readouterr().out == "[dsic] eval after epoch 1 (iter 3): bbox AP - AP50 50.0\n"


def test_plot_leaves_out_the_points_cocoeval_has_no_value_for(tmp_path, monkeypatch):
    import dsic.visualize as vis

    log = tmp_path / "log.jsonl"
    records = [{"iter": 1, "epoch": 1, "lr": 0.01, "loss": 2.0},
               {"epoch": 1, "iter": 1, "eval": {"bbox": {"AP": 0.1, "APl": -1.0, "APm": -1.0}}},
               {"epoch": 2, "iter": 2, "eval": {"bbox": {"AP": 0.2, "APl": -1.0, "APm": 0.3}}}]
    log.write_text("".join(json.dumps(r) + "\n" for r in records))
    drawn = {}

    def keep(fig, path):
        drawn[path.name] = {line.get_label(): list(zip(*line.get_data())) for line in fig.axes[0].get_lines()}
        return path

    monkeypatch.setattr(vis, "save", keep)
    vis.plot_run(tmp_path)
    assert drawn["ap.png"] == {"AP": [(1, 10.0), (2, 20.0)], "APm": [(2, 30.0)]}
