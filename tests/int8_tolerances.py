"""What two correct int8 paths of the same exported network may differ by, on any x86-64 or arm64 CPU. Shared by
the tests that compare the firmware, the edge runtime, LiteRT's kernels and tflite-runtime, so that one figure
means one thing everywhere.

- Inputs: two float32 front ends (the firmware's C with its own FFT; numpy/scipy, whose SIMD paths depend on the
  CPU; the exported TFLite front end) agree to a few float32 ulps, so their int8 quantizations differ only on a
  value that lies within those ulps of a rounding tie: by one step, on very few values (2 of 998,400 seen, AMD
  EPYC; INPUT_TIE_FRACTION is 50x that).
- INPUT_LOGIT_STEPS: how far such one-step ties move the int8 logits under the same kernels. Derived on the
  network itself by `tests/test_firmware.py::test_one_step_input_ties_move_logits_little` (the values nearest a
  tie flipped to the other side, twice the tie fraction: 0 steps on 8 of 60 clips, 1 step on 52, AMD EPYC).
- KERNEL_LOGIT_STEPS: LiteRT's optimized kernels (XNNPACK, float32 requantization) against the reference ones
  (fixed point, TFLite Micro's arithmetic) on the same input. Each of the network's requantizations may round one
  step apart on a tie and later layers carry it on; XNNPACK's int8 kernels compute the same result on every ISA,
  so the bound is the network's, not the CPU's: 3 steps seen on Intel Xeon and AMD EPYC, one more allowed for a
  fixture network trained on another CPU (training is deterministic per CPU only). A wrong kernel or scale moves
  logits by tens of steps.
"""

INPUT_TIE_FRACTION = 1e-4
INPUT_LOGIT_STEPS = 2
KERNEL_LOGIT_STEPS = 4


def tie_margin(input_steps: int, kernel_steps: int) -> int:
    """Largest top-two logit margin a disagreement may have when two logit vectors are `input_steps` +
    `kernel_steps` apart on every class: moving each logit by d moves the difference of two by up to 2d."""
    return 2 * (input_steps + kernel_steps)
