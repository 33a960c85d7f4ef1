"""The documentation stays true: every command block marked `<!-- runnable -->` in README.md and docs/*.md runs on
the tiny synthetic dataset and exits 0, every command the pages name answers `--help`, every relative link and
picture path exists (with its #anchor), and the pages give one tflite-micro install command, the code's.

A runnable block is run as a user types it, from a folder laid out like the repository root (the scripts and the
package linked in, `data/synthetic/` the session's tiny dataset, `DCASE24_Task1/` the session's trained run,
`exports/RUN_ID_int8/` its int8 bundle); the placeholder RUN_ID is the environment variable $RUN_ID."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from asc_tf.export import tflm

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
MARKER = "<!-- runnable -->"
# what a checkout's root holds that a block may run or read (linked into the block's folder)
CHECKOUT = ("asc_tf", "bench", "tools", "firmware", "train.py", "predict.py", "export_tflite.py", "pyproject.toml",
            "requirements.txt", "constraints.txt")
BLOCK_TIMEOUT = 600  # seconds: a safety net for a hung command, not a speed target (those live in bench/)


def _fenced_blocks(text: str) -> list[tuple[int, str, str]]:
    """(line number, info string, body) of each fenced code block, in order."""
    blocks, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        if lines[i].startswith("```"):
            info, start, body = lines[i][3:].strip(), i + 1, []
            i += 1
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            blocks.append((start, info, "\n".join(body)))
        i += 1
    return blocks


def runnable_blocks() -> list[tuple[str, str]]:
    """(page:line, body) of every bash block whose fence follows the marker line (blank lines allowed between)."""
    found = []
    for page in PAGES:
        lines = page.read_text(encoding="utf-8").splitlines()
        for start, info, body in _fenced_blocks("\n".join(lines)):
            before = [line for line in lines[:start - 1] if line.strip()]
            if before and before[-1].strip() == MARKER:
                assert info == "bash", f"{page.name}:{start}: a runnable block must be a bash block, not {info!r}"
                found.append((f"{page.relative_to(REPO)}:{start}", body))
    return found


def _prose(text: str) -> str:
    """The text outside fenced code blocks and inline code spans (where links live)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but - and _ dropped, spaces to -."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(encoding="utf-8"), flags=re.M | re.S)
    return {_slug(line.lstrip("#")) for line in text.splitlines() if re.match(r"^#{1,6} ", line)}


def commands() -> list[str]:
    """Every project command the pages name (`python -m asc_tf...`, `python <script>.py`), once each."""
    found: dict[str, None] = {}
    for page in PAGES:
        for module, script in re.findall(r"(?:^|[\s`(/])python (?:-m (asc_tf(?:\.\w+)*)|([\w/]+\.py))(?=[\s`)]|$)",
                                         page.read_text(encoding="utf-8"), flags=re.M):
            found[f"-m {module}" if module else script] = None
    return list(found)


def test_pages_have_runnable_blocks():
    blocks = runnable_blocks()
    assert len(blocks) >= 5, blocks  # data, training, export, edge, predict: the marker is found where it is
    assert not any(MARKER in body for _, body in blocks)


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A folder laid out as the repository root, with the project's scripts and package linked in."""
    for name in CHECKOUT:
        (tmp_path / name).symlink_to(REPO / name)
    return tmp_path


@pytest.mark.parametrize("where, body", runnable_blocks(), ids=[w for w, _ in runnable_blocks()])
def test_runnable_block_exits_0(where, body, checkout, request):
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(REPO)}
    if re.search(r"data/synthetic\b", body):
        (checkout / "data").mkdir(exist_ok=True)
        (checkout / "data" / "synthetic").symlink_to(request.getfixturevalue("synthetic_root"))
    if "RUN_ID" in body:
        trained = request.getfixturevalue("trained_run")
        env["RUN_ID"] = trained.run.run_id
        (checkout / trained.run.path.parent.name).symlink_to(trained.run.path.parent)
        if "exports/RUN_ID_int8" in body:
            (checkout / "exports").mkdir()
            (checkout / "exports" / f"{env['RUN_ID']}_int8").symlink_to(request.getfixturevalue("int8_export").path)
    env["ASC_TF_DATASET_DIR"] = str(request.getfixturevalue("dataset_dir"))
    script = re.sub(r"(?<![A-Za-z0-9_])RUN_ID(?![A-Z0-9])", "${RUN_ID}", body)  # also RUN_ID_int8
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=checkout, env=env, capture_output=True,
                          text=True, timeout=BLOCK_TIMEOUT)
    assert done.returncode == 0, f"{where} exited {done.returncode}:\n{body}\n--- stdout\n{done.stdout[-3000:]}" \
                                 f"\n--- stderr\n{done.stderr[-3000:]}"
    assert done.stdout.strip(), f"{where} printed nothing"


@pytest.mark.parametrize("command", commands())
def test_every_command_named_answers_help(command):
    argv = command.split() if command.startswith("-m ") else [command]
    if not command.startswith("-m "):
        assert (REPO / command).is_file(), f"the docs name {command}, which is not in the repository"
    done = subprocess.run([sys.executable, *argv, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout, f"python {command} --help:\n{done.stdout}{done.stderr}"


def test_readme_is_a_landing_page():
    """The README stays short (what it is, the two commands, the main commands, headline figures, links)."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move the details into docs/"


def test_commands_found():
    named = commands()
    for expected in ("train.py", "predict.py", "export_tflite.py", "-m asc_tf.edge", "-m asc_tf.protocol",
                     "-m asc_tf.experiments", "bench/demo.py"):
        assert expected in named


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_links_and_pictures_exist(page):
    text = _prose(page.read_text(encoding="utf-8"))
    targets = re.findall(r"!?\[[^\]]*\]\(([^)\s]+)\)", text)
    assert targets, f"{page.name}: no link found (every page links back to the README)"
    missing = []
    for target in targets:
        if re.match(r"[a-z]+:", target):  # http(s), mailto: not checked here
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            missing.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in _anchors(file):
            missing.append(f"{target}: no heading with anchor #{anchor}")
    assert not missing, f"{page.relative_to(REPO)}: {missing}"


def test_one_tflite_micro_install_command():
    """requirements.txt, the pages and the export's warning give the same install command for tflite-micro."""
    sources = {path.relative_to(REPO): path.read_text(encoding="utf-8") for path in [*PAGES, REPO / "requirements.txt"]}
    given = {(str(name), command) for name, text in sources.items()
             for command in re.findall(r"pip install [^`\n;]*tflite-micro[^\s`,;)]*", text)}
    assert {command for _, command in given} == {tflm.INSTALL_COMMAND}, given
    assert {"requirements.txt", "docs/export.md"} <= {name for name, _ in given}
    assert tflm.INSTALL_COMMAND in tflm.unavailable_reason()
