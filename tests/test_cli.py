"""The command lines: --help and the commands that need no TensorFlow never import it, TensorFlow's own lines are
hidden unless --verbose, upstream's flags do what they say or are refused in one line, and imports point one way."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asc_tf.config import Config, ConfigError

REPO = Path(__file__).resolve().parents[1]
TF_LINES = ("I0000", "E0000", "W0000", "oneDNN", "cudart", "cuInit", "absl::InitializeLog", "TensorSpec",
            "XNNPACK")


def run_light(argv: list[str], script: str | None = None, module: str | None = None, cwd: Path = REPO) -> dict:
    """Run a command line in a fresh interpreter; returns its exit code, output and whether TensorFlow or Keras
    was imported (sys.modules after the command: an import, not a timing)."""
    target = f"runpy.run_path({str(REPO / script)!r}, run_name='__main__')" if script else \
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)"
    code = textwrap.dedent(f"""
        import contextlib, io, json, runpy, sys
        sys.path.insert(0, {str(REPO)!r})
        sys.argv = ["cmd", *{argv!r}]
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                {target}
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        heavy = sorted(m for m in ("tensorflow", "keras", "tf_keras", "matplotlib") if m in sys.modules)
        print(json.dumps({{"code": code, "out": out.getvalue(), "err": err.getvalue(), "heavy": heavy}}))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("script, module", [
    ("train.py", None), ("predict.py", None), ("export_tflite.py", None), (None, "asc_tf.complexity"),
    (None, "asc_tf.report"), (None, "asc_tf.qat"), (None, "asc_tf.budget"), (None, "asc_tf.data.convert"),
    (None, "asc_tf.edge"),
])
def test_help_never_imports_tensorflow(script, module):
    result = run_light(["--help"], script=script, module=module)
    assert result["code"] == 0 and "usage:" in result["out"]
    assert "tensorflow" not in result["heavy"] and "keras" not in result["heavy"], result["heavy"]


def test_errors_module_is_light():
    """asc_tf.errors gathers every user error type; importing it must not load TensorFlow or Keras (it is what lets
    a command refuse bad input before they load)."""
    result = run_light(["x"], module="asc_tf.errors")
    assert result["heavy"] == [], result["heavy"]


def test_refusals_come_before_tensorflow(tmp_path):
    """Every refusal bench/refusals.py times (unknown run, missing checkpoint or model, existing bundle or --out):
    one line naming what to fix, exit code 2, and TensorFlow never imported (an import check, not a timing)."""
    from bench.refusals import make_project, refusal_cases

    make_project(tmp_path)
    for name, argv, expected in refusal_cases(tmp_path):
        module, script, rest = (argv[1], None, argv[2:]) if argv[0] == "-m" else (None, argv[0], argv[1:])
        result = run_light(rest, script=script, module=module, cwd=tmp_path)
        assert result["code"] == 2 and result["out"] == "", (name, result)
        assert len(result["err"].splitlines()) == 1 and expected in result["err"], (name, result["err"])
        assert "tensorflow" not in result["heavy"] and "keras" not in result["heavy"], (name, result["heavy"])
    assert not (tmp_path / "project" / "predictions").exists()  # a refusal leaves no folder behind


def test_predict_tflite_never_imports_tensorflow(int8_export, synthetic_root, tmp_path):
    """predict.py --tflite runs an export bundle under LiteRT: the whole prediction, not only its refusals, without
    TensorFlow or Keras."""
    from asc_tf.data.synthetic import EVAL_DIR_NAME

    result = run_light(["--tflite", str(int8_export.path), "--eval_dir", str(synthetic_root / EVAL_DIR_NAME),
                        "--project_dir", str(tmp_path)], script="predict.py", cwd=tmp_path)
    assert result["code"] == 0 and result["out"].startswith("predictions: "), result
    assert "tensorflow" not in result["heavy"] and "keras" not in result["heavy"], result["heavy"]


def test_tflite_audit_and_report_never_import_tensorflow(int8_export, tmp_path):
    network = int8_export.path / int8_export.manifest["files"]["network"]["path"]
    audit = run_light([str(network)], module="asc_tf.complexity")
    assert audit["code"] == 0 and audit["out"].rstrip().splitlines()[-1].startswith("PASS")
    assert audit["heavy"] == [] and audit["err"] == ""

    from asc_tf.training.metrics import METRIC_NAMES
    from asc_tf.training.report import write_info_json

    metrics = {name: 0.5 for name in METRIC_NAMES}
    for run in ("run1", "run2"):
        write_info_json(tmp_path / run / "info.json", metrics, macs=1, params=2)
    report = run_light([str(tmp_path / "run1"), str(tmp_path / "run2")], module="asc_tf.report")
    assert report["code"] == 0 and "50.00 ± 0.00" in report["out"]
    assert report["heavy"] == []


def test_tensorflow_lines_only_with_verbose(tmp_path):
    """Building a network imports TensorFlow: its start-up lines reach stderr only with --verbose."""
    command = [sys.executable, "-m", "asc_tf.complexity", "--json"]
    quiet = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert quiet.returncode == 0 and json.loads(quiet.stdout)["parameters"] == 61148
    assert quiet.stderr == ""
    loud = subprocess.run([*command, "--verbose"], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert loud.returncode == 0 and any(marker in loud.stderr for marker in TF_LINES), loud.stderr[-500:]


@pytest.mark.parametrize("flags, message", [
    (["--n_epochs", "0"], "error: --n_epochs must be at least 1, got 0"),
    (["--precision", "16-true"], "error: --precision 16-true: choose one of 32, 32-true, 16-mixed, bf16-mixed"),
    (["--batch_size", "0"], "error: --batch_size must be at least 1, got 0"),
])
def test_unusable_values_are_refused_in_one_line_leaving_nothing(flags, message, tmp_path):
    result = run_light([*flags, "--project_dir", str(tmp_path / "project"), "--wandb", "disabled"],
                       script="train.py", cwd=tmp_path)
    assert result["code"] == 2 and result["out"] == ""
    assert result["err"].strip().splitlines() == [result["err"].strip()] and result["err"].startswith(message)
    assert "tensorflow" not in result["heavy"]
    assert list(tmp_path.iterdir()) == []  # no run folder, no tfrecords


def test_config_check_names_the_flag():
    Config().check()
    for name, value in (("n_epochs", 0), ("num_workers", 0), ("lr", 0.0), ("qat_epochs", -1)):
        with pytest.raises(ConfigError, match=f"--{name} must"):
            Config(**{name: value}).check()


def test_help_texts_say_what_flags_really_do():
    from train import build_parser

    text = " ".join(build_parser().format_help().split())
    assert "processes reading and resampling WAV files during conversion" in text and "one call per core" in text
    assert "16-mixed / bf16-mixed" in text and "mixed_float16" in text


@pytest.mark.parametrize("script", ["train.py", "export_tflite.py", "predict.py"])
def test_help_texts_fit_the_script(script):
    """Each flag's text is about what the flag does in that script, and says its default once at most."""
    done = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "(default: None)" not in text
    assert not re.search(r"\(default: [^)]*\) \(default:", text), re.search(r"\(default: [^)]*\) \(default:[^)]*\)", text)
    wrong = {"predict.py": ["converted shards", "--evaluate loads"], "export_tflite.py": ["--evaluate loads"]}
    for phrase in wrong.get(script, []):
        assert phrase not in text, phrase
    if script == "predict.py":
        assert "replace an existing output.csv" in text
    if script == "export_tflite.py":
        assert "--ckpt_id CKPT_ID the run id (under --project_dir) or .keras file to export" in text


def _import_graph() -> dict[str, set[str]]:
    """asc_tf module -> the asc_tf modules it imports, at module level or inside functions."""
    modules = {}
    for path in (REPO / "asc_tf").rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def _module_source(name: str) -> str:
    path = REPO / Path(*name.split("."))
    return (path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py").read_text()


def unread_flags(script: str) -> list[str]:
    """The flags `script --help` offers that nothing on its import closure reads (`args.X`, `config.X`, `"X"`)."""
    done = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    offered = {m for line in done.stdout.splitlines() for m in re.findall(r"^\s+(?:-\w, )?--([a-z_0-9]+)", line)}
    graph = _import_graph()
    source = (REPO / script).read_text()
    stack = [t for node in ast.walk(ast.parse(source)) if isinstance(node, (ast.Import, ast.ImportFrom))
             for t in ([node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]) if t]
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if name in graph and name not in seen:
            seen.add(name)
            stack += graph[name]
    text = source + "".join(_module_source(name) for name in seen)
    dests = dict(re.findall(r"['\"]--([a-z_0-9]+)['\"][^)]*?dest=['\"]([a-z_0-9]+)['\"]", source))
    return sorted(flag for flag in offered - {"help"}
                  if not re.search(rf"\.{dests.get(flag, flag)}\b|['\"]{dests.get(flag, flag)}['\"]", text))


@pytest.mark.parametrize("script", ["train.py", "export_tflite.py", "predict.py"])
def test_every_offered_flag_is_read_by_the_script(script):
    """A flag a script offers is read on that script's code path (a Config field no module of it reads would be a
    flag that silently does nothing there, as --overwrite and --ckpt_id once said the wrong thing)."""
    assert unread_flags(script) == []


def test_unread_flag_check_can_fail(tmp_path):
    fake = tmp_path / "fake.py"
    fake.write_text("import argparse\np = argparse.ArgumentParser()\np.add_argument('--never_read_anywhere')\n"
                    "p.parse_args()\n")
    assert unread_flags(str(fake)) == ["never_read_anywhere"]


def test_imports_point_one_way():
    """No import circle anywhere in asc_tf (budget <-> complexity and finetune <-> trainer were two)."""
    graph = _import_graph()

    def reaches(start: str, goal: str) -> bool:
        seen, stack = set(), [start]
        while stack:
            node = stack.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                stack.extend(graph[node])
        return False

    circles = sorted((a, b) for a in graph for b in graph[a] if reaches(b, a))
    assert circles == []
    assert "asc_tf.training.seeding" in graph["asc_tf.qat.finetune"]
    assert "asc_tf.export.architecture" in graph["asc_tf.budget"]


def test_network_name_is_the_models():
    from asc_tf import complexity
    from asc_tf.model import cp_mobile

    assert complexity.NETWORK_NAME == cp_mobile.NETWORK_NAME


def test_converter_and_litert_lines_hidden(capfd):
    """The converter's SavedModel dump (a TensorSpec line per variable) and LiteRT's XNNPACK INFO line are
    printed by native code on file descriptors 1 and 2: hidden unless --verbose."""
    from asc_tf.export import tflite
    from asc_tf.export.runtime import TFLiteModel
    from asc_tf.model import build_network

    capfd.readouterr()
    data = tflite.convert_network_fp16(build_network())
    model = TFLiteModel(data)
    assert model.input_shape == (1, 256, 65, 1)
    out, err = capfd.readouterr()
    for marker in TF_LINES:
        assert marker not in out + err, marker


def _another_value(action, default) -> list[str]:
    """Command-line words giving the flag of `action` a value other than `default` (its Config default)."""
    flag = action.option_strings[0]
    if action.nargs == 0:  # store_true
        return [flag]
    if action.choices:
        return [flag, str(next(c for c in action.choices if c != default))]
    if action.nargs == "+":
        return [flag, *(str(v + 1) for v in default)]
    if action.type is int:
        return [flag, str((default or 0) + 1)]
    if action.type is float:
        return [flag, str((default or 0.0) * 0.5 + 0.25)]
    return [flag, "changed"]


@pytest.mark.parametrize("command", ["protocol", "experiments"])
def test_every_recipe_flag_offered_reaches_every_run(command, tmp_path, monkeypatch):
    """A flag that protocol or experiments offers changes the configuration of every run it makes (a flag the
    command sets itself per run, like --subset, must not be offered: it would be silently ignored)."""
    from dataclasses import fields

    from asc_tf.config import from_args

    monkeypatch.chdir(tmp_path)
    if command == "protocol":
        from asc_tf.protocol import build_parser, protocol_specs

        def runs(args):
            return [spec.config for spec in protocol_specs(from_args(args), [100, 50], 2, "g")]
    else:
        from asc_tf.experiments import build_parser
        from asc_tf.training import experiments
        from asc_tf.training.demo import demo_base

        def runs(args):
            return experiments.plan("data_efficiency", from_args(args, base=demo_base()), range(2), [100, 50])
    parser = build_parser()
    defaults = {f.name: f.default for f in fields(Config)}
    offered = [a for a in parser._actions if a.dest in defaults and a.option_strings]
    assert len(offered) >= 10
    paths = ("project_dir", "dataset_dir", "tfrecords_dir", "split_dir")
    for action in offered:
        args = parser.parse_args((["data_efficiency"] if command == "experiments" else [])
                                 + _another_value(action, defaults[action.dest]))
        wanted = getattr(args, action.dest)
        wanted = tuple(wanted) if isinstance(wanted, list) else wanted
        if command == "protocol" and action.dest == "seed":  # the first of --seeds consecutive seeds
            assert {config.seed for config in runs(args)} == {wanted, wanted + 1}
            continue
        for config in runs(args):
            value = getattr(config, action.dest)
            if action.dest in paths:
                value, wanted = Path(value).resolve(), Path(wanted).resolve()
            assert value == wanted, (command, action.dest, value, wanted)
