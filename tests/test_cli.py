"""The command line: score gives the official script's scores; info gives the challenge figures."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from official_reference import OfficialSwinB, official_score, spread_outputs

from fiqa_edge.cli import main


def _rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_help_lists_the_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "convert", "bench", "score", "info", "models"):
        assert f"  {command} " in result.output


def test_models_names_the_official_checkpoints():
    result = CliRunner().invoke(main, ["models"])
    assert result.exit_code == 0
    assert "official checkpoint: FIQA_EdgeNeXt_XXS" in result.output and "official checkpoint: FIQA_Swin_B" in result.output


def test_convert_help_lists_every_target_and_its_state():
    from fiqa_edge.converters.targets import TARGETS

    result = CliRunner().invoke(main, ["convert", "--help"])
    assert result.exit_code == 0
    for key in TARGETS:
        assert f"  {key}: fp32" in result.output
    assert "tensorrt" in result.output and "not yet run on a GPU" in result.output


def test_score_matches_official_script_for_student(official_student, faces, tmp_path):
    model, path = official_student
    out = tmp_path / "scores.csv"
    result = CliRunner().invoke(main, ["score", str(faces[0].parent.parent), "--model", str(path), "--csv", str(out), "-q"])
    assert result.exit_code == 0, result.output
    rows = _rows(out.read_text())
    assert [r["path"] for r in rows] == [str(p) for p in faces]
    ours = [float(r["score"]) for r in rows]
    official = [official_score(model, str(p), 352) for p in faces]
    assert max(abs(a - b) for a, b in zip(ours, official)) <= 1e-5
    assert max(official) - min(official) > 0.05  # the scores differ between faces: the check has teeth


def test_score_matches_official_script_for_teacher(faces, tmp_path):
    torch.manual_seed(0)
    model = spread_outputs(OfficialSwinB(), seed=2)
    path = tmp_path / "FIQA_Swin_B.pt"
    torch.save(model.state_dict(), path)
    picks = [faces[0], faces[21]]
    result = CliRunner().invoke(main, ["score", *map(str, picks), "--model", str(path), "-q"])
    assert result.exit_code == 0, result.output
    ours = [float(r["score"]) for r in _rows(result.stdout)]
    official = [official_score(model, str(p), 448) for p in picks]
    assert max(abs(a - b) for a, b in zip(ours, official)) <= 1e-5
    assert abs(official[0] - official[1]) > 1e-3


def test_score_reports_bad_files_and_keeps_going(official_student, faces, bad_files):
    _, path = official_student
    inputs = [faces[0], bad_files["truncated"], bad_files["missing"], faces[1]]
    result = CliRunner().invoke(main, ["score", *map(str, inputs), "--model", str(path), "-q", "--batch-size", "3"])
    assert result.exit_code == 1
    rows = _rows(result.stdout)
    assert [r["path"] for r in rows] == [str(p) for p in inputs]
    assert rows[0]["score"] and rows[3]["score"] and not rows[0]["error"]
    assert rows[1]["score"] == "" and "truncated" in rows[1]["error"]
    assert rows[2]["score"] == "" and "no such file" in rows[2]["error"]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 2 and str(bad_files["missing"]) in errors[1]


def test_score_without_model_or_with_bad_model_says_what_to_do(faces, tmp_path):
    bad = tmp_path / "model.pt"
    bad.write_text("junk")
    result = CliRunner().invoke(main, ["score", str(faces[0]), "--model", str(bad)])
    assert result.exit_code == 1
    assert f"Error: {bad}: not a readable checkpoint" in result.output


def test_info_reproduces_the_challenge_figures():
    result = CliRunner().invoke(main, ["info", "--model", "fiqa_edgenext_xxs", "--input-size", "288", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["params"] == 1_179_641
    assert round(report["gflops"], 4) == 0.3313
    assert round(report["gflops_torch"], 3) == 0.652
    table = CliRunner().invoke(main, ["info", "-m", "fiqa_edgenext_xxs"])
    assert "1.1796 M" in table.output and "0.4949" in table.output


def test_old_spellings_still_work_with_one_deprecation_line_and_are_hidden_from_help():
    old = CliRunner().invoke(main, ["info", "fiqa_edgenext_xxs", "--json"])  # positional model, --json as a flag
    assert old.exit_code == 0, old.output
    assert json.loads(old.stdout)["params"] == 1_179_641
    assert "MODEL as a positional argument is deprecated" in old.stderr and "use --model fiqa_edgenext_xxs" in old.stderr
    renamed = CliRunner().invoke(main, ["convert", "--ov-max-drop", "0.01", "--dynamic-hw", "--to", "nothing"])
    assert renamed.exit_code == 2 and "unknown target(s) nothing" in renamed.output  # both old flags parsed
    assert "--ov-max-drop is deprecated" in renamed.stderr and "use --openvino-max-drop" in renamed.stderr
    assert "use --onnx-dynamic-hw" in renamed.stderr
    stage = CliRunner().invoke(main, ["train", "fit", "--model", "coach", "--config", "x", "--out", "y"])
    assert stage.exit_code == 2 and "'--stage'" in stage.output and "use --stage" in stage.stderr
    for command in (["convert"], ["info"], ["bench", "run"], ["train", "average"], ["train", "report"]):
        shown = CliRunner().invoke(main, [*command, "--help"]).output
        assert "--ov-max-drop" not in shown and "--dynamic-hw " not in shown and "TARGETS" not in shown
        assert shown.splitlines()[0].endswith("[OPTIONS]"), shown.splitlines()[0]  # no positional model


def test_list_options_take_repeats_and_commas_alike():
    by_commas = CliRunner().invoke(main, ["convert", "--to", "onxx,foo", "--precision", "fp32"])
    repeated = CliRunner().invoke(main, ["convert", "--to", "onxx", "--to", "foo", "--precision", "fp32"])
    assert by_commas.exit_code == repeated.exit_code == 2
    assert "unknown target(s) onxx, foo;" in by_commas.output and by_commas.output == repeated.output
    bad = CliRunner().invoke(main, ["bench", "--batch-sizes", "1,eight"])
    assert bad.exit_code == 2 and "'--batch-sizes': 'eight' is not a whole number" in bad.output


def test_info_on_a_checkpoint(official_student):
    _, path = official_student
    report = json.loads(CliRunner().invoke(main, ["info", "--model", str(path), "--json"]).stdout)
    assert report["arch"] == "fiqa_edgenext_xxs" and len(report["sha256"]) == 64


def test_console_script_and_module_entry_points():
    script = Path(sys.executable).parent / "fiqa-edge"
    installed = subprocess.run([str(script), "models"], capture_output=True, text=True)
    assert installed.returncode == 0 and "fiqa_edgenext_xxs" in installed.stdout
    module = subprocess.run([sys.executable, "-m", "fiqa_edge", "--version"], capture_output=True, text=True)
    assert module.returncode == 0 and "fiqa-edge" in module.stdout


@pytest.mark.parametrize("module", ["fiqa_edge", "fiqa_edge.cli", "fiqa_edge.scorer", "fiqa_edge.metrics", "fiqa_edge.manifest",
                                    "fiqa_edge.zoo", "fiqa_edge.converters.targets"])
def test_light_imports_load_no_heavy_package(module):
    code = (
        f"import sys, {module}; "
        "heavy = [m for m in ('torch', 'timm', 'torchvision', 'openvino', 'coremltools', 'tensorrt', 'onnxruntime', 'onnx', 'nncf')"
        " if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_captured_progress_bars_keep_their_last_frame():
    from fiqa_edge._output import _last_frames

    bar = "pass 1:   0%|  | 0/3\rpass 1:  33%|# | 1/3\rpass 1: 100%|##| 3/3\n\x1b[1mdone\x1b[0m\n"
    assert _last_frames(bar) == "pass 1: 100%|##| 3/3\ndone"
