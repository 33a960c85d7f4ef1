"""Figures of the firmware (firmware/) measured by the firmware itself: flash and RAM per target from the linker
map, the smallest tensor arena that runs, and instructions per clip under QEMU -icount (front end, network,
each op; CMSIS-NN against TFLite Micro's reference kernels), with what a 168 / 480 MHz part would need.

    python bench/firmware.py --bundle exports/<id>_int8 --audio DIR [--clips 8] [--targets cortex-m4,...]
                             [--kernels cmsis_nn,reference] [--frontends default|own,cmsis_dsp]
                             [--reference_clips 2] [--compare_host]
                             [--json out.json] [--update_manifest]

Clips: the first --clips audio files of --audio (any rate: resampled to 32 kHz as the edge runtime does, stored
as 16-bit WAV). Instructions are QEMU's instruction count (-icount shift=0), not cycles: the cycle estimates
assume one instruction per cycle.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from bench.pipeline import machine  # noqa: E402


def load_waveforms(audio: Path, clips: int) -> list:
    from asc_tf.edge.audio import read_clips

    files = sorted(p for p in audio.rglob("*") if p.suffix.lower() in (".wav", ".flac"))[:clips]
    if not files:
        raise SystemExit(f"error: {audio}: no .wav/.flac files")
    return [read_clips(f, 32000, 32000)[0] for f in files]


def format_report(figures: list[dict]) -> str:
    """Markdown: memory and instructions per target/kernels, then the per-op table of the first Cortex-M run."""
    lines = ["| target (QEMU machine) | kernels | front-end code | flash B | RAM B | arena B (smallest) | stack B | "
             "front end | network | front end / network | 168 MHz ms | 480 MHz ms |", "|" + "---|" * 12]
    for f in figures:
        mem = f.get("memory", {})
        est = f.get("estimate_ms_per_clip", {})
        lines.append(f"| {f['target']} ({f['machine']}) | {f['kernels']} | {f.get('frontend_code', 'own')} | "
                     f"{mem.get('flash', '-'):,} | "
                     f"{mem.get('ram', '-'):,} | {f['arena']['arena']:,} | {f['arena'].get('stack_used', 0):,} | "
                     f"{f['frontend']:,} {f['unit']} | {f['network']:,} | {f['frontend_share_of_network']:.1%} | "
                     f"{est.get('168MHz', '-')} | {est.get('480MHz', '-')} |")
    by_key = {}
    for f in figures:  # one row per (target, kernels): the first front end measured
        by_key.setdefault((f["target"], f["kernels"]), f)
    for (target, kernels), f in by_key.items():
        if kernels == "reference" and (target, "cmsis_nn") in by_key:
            ratio = f["network"] / by_key[(target, "cmsis_nn")]["network"]
            lines.append(f"\n{target}: the reference kernels take {ratio:.2f}x the instructions of CMSIS-NN")
    first = next((f for f in figures if f["target"] != "host"), figures[0])
    other = by_key.get((first["target"], "reference" if first["kernels"] == "cmsis_nn" else "cmsis_nn"))
    lines += ["", f"Per op on {first['target']} ({first['kernels']}" + (f"; {other['kernels']} beside it)" if other
                                                                        else ")"),
              "", "| # | op | shapes (inputs -> output) | MACs | instructions | instr/MAC |"
              + (f" {other['kernels']} instructions | instr/MAC |" if other else ""),
              "|---|---|---|---|---|---|" + ("---|---|" if other else "")]
    for i, row in enumerate(first["ops"]):
        cells = f"| {i} | {row['op']} | {row['shapes']} | {row['macs']:,} | {row['instructions']:,} | " \
                f"{row['instructions_per_mac'] if row['instructions_per_mac'] is not None else '-'} |"
        if other:
            o = other["ops"][i]
            cells += f" {o['instructions']:,} | {o['instructions_per_mac'] if o['instructions_per_mac'] else '-'} |"
        lines.append(cells)
    return "\n".join(lines)


def compare_with_host(model_dir: Path, clips: list, runs: dict, work: Path) -> dict:
    """Run the host build (reference kernels, the same front-end code) on `clips` and compare every Cortex-M run's
    int8 logits with it."""
    from asc_tf.export import firmware_build as fw

    hosts: dict[str, dict] = {}
    out = {}
    for (target, kernels, frontend), run in runs.items():
        if target == "host":
            continue
        if frontend not in hosts:
            host = fw.run(fw.build(model_dir, "host", build_dir=work / frontend, frontend=frontend), "host", clips)
            if host.returncode != 0 or len(host.clips) != len(clips):
                raise fw.FirmwareError(f"the host firmware failed on the clips: {host.errors[:3]}")
            hosts[frontend] = {Path(c.path).name: c.logits for c in host.clips}
        by_name = hosts[frontend]
        differ = [Path(c.path).name for c in run.clips if not np.array_equal(c.logits, by_name[Path(c.path).name])]
        worst = max((int(np.max(np.abs(c.logits.astype(int) - by_name[Path(c.path).name].astype(int))))
                     for c in run.clips), default=0)
        out[f"{target} {kernels} {frontend}"] = {"clips": len(run.clips), "equal": len(run.clips) - len(differ),
                                      "differ": differ, "max_abs_difference": worst}
    return out


def format_stages(figures: list[dict]) -> str:
    """The front end's instructions per clip by stage (the rest of the front end is buffering the samples)."""
    rows = [f for f in figures if f.get("frontend_stages")]
    if not rows:
        return ""
    names = list(rows[0]["frontend_stages"])
    lines = ["| target | kernels | front-end code | " + " | ".join(names) + " | other | front end |",
             "|---" * (len(names) + 5) + "|"]
    for f in rows:
        stages = f["frontend_stages"]
        lines.append(f"| {f['target']} | {f['kernels']} | {f.get('frontend_code', 'own')} | " +
                     " | ".join(f"{stages[n]:,}" for n in names) +
                     f" | {f['frontend'] - sum(stages.values()):,} | {f['frontend']:,} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, required=True, help="an int8 export bundle (export_tflite.py --int8)")
    parser.add_argument("--audio", type=Path, required=True, help="folder of audio clips to run")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--targets", default="cortex-m4,cortex-m7,cortex-m55")
    parser.add_argument("--kernels", default="cmsis_nn,reference")
    parser.add_argument("--frontends", default="default",
                        help="front-end code to measure: own, cmsis_dsp, or default (the Makefile's choice per target)")
    parser.add_argument("--reference_clips", type=int, default=2,
                        help="clips run with the reference kernels (several times slower under QEMU)")
    parser.add_argument("--compare_host", action="store_true",
                        help="also run the host build on the clips and count the clips whose int8 logits equal it")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--update_manifest", action="store_true", help="record the figures in the bundle's manifest")
    args = parser.parse_args()

    from asc_tf.export import firmware_build as fw

    manifest = json.loads((args.bundle / "manifest.json").read_text())
    network = (args.bundle / manifest["files"]["network"]["path"]).read_bytes()
    waves = load_waveforms(args.audio, args.clips)
    figures, runs, versus_host = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="asc_fw_bench_") as tmp:
        clips = fw.write_clips(waves, Path(tmp) / "clips")
        for target in args.targets.split(","):
            reason = fw.missing_tools(target)
            if reason:
                print(f"skipped {target}: {reason}", file=sys.stderr)
                continue
            frontends = [fw.default_frontend(target) if f == "default" else f for f in args.frontends.split(",")]
            for kernels in args.kernels.split(","):
                if target == "host" and kernels == "cmsis_nn":
                    continue
                for frontend in frontends:
                    try:
                        some = clips[:args.reference_clips] if kernels == "reference" else clips
                        figures.append(fw.measure(args.bundle / "firmware", some, network, target, kernels,
                                                  Path(tmp) / "build", runs=runs, frontend=frontend))
                    except fw.FirmwareError as error:
                        print(f"error: {target} {kernels} {frontend}: {error}", file=sys.stderr)
                        return 1
        if args.compare_host and runs:
            try:
                versus_host = compare_with_host(args.bundle / "firmware", clips, runs, Path(tmp) / "host")
            except fw.FirmwareError as error:
                print(f"error: host: {error}", file=sys.stderr)
                return 1
    qemu = subprocess.run(["qemu-system-arm", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    record = {"measured": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "how": "python bench/firmware.py (QEMU -icount shift=0: instructions, not cycles)",
              "machine": machine(), "qemu": qemu, "clips": len(waves), "figures": figures}
    if versus_host:
        record["logits_vs_host"] = versus_host
    print(f"machine: {record['machine']}; {qemu}; {len(waves)} clips\n")
    print(format_report(figures))
    print("\nFront end by stage (" + (figures[0]["unit"] if figures else "") + " per clip)\n")
    print(format_stages(figures))
    for key, same in versus_host.items():
        print(f"\n{key}: int8 logits equal to the host build's on {same['equal']} / {same['clips']} clips"
              + (f"; differ on {same['differ'][:5]} (max abs {same['max_abs_difference']})" if same["differ"] else ""))
    if args.json:
        from asc_tf.io import atomic_write_json

        atomic_write_json(args.json, record)
    if args.update_manifest:
        fw.record_in_manifest(args.bundle, record)
        print(f"\nrecorded in {args.bundle / 'manifest.json'} (key 'firmware')")
    return 0


if __name__ == "__main__":
    sys.exit(main())
