/* The power spectrum (fft.h) on CMSIS-DSP (CMSIS_DSP_DIR): arm_rfft_fast_f32 of ASC_N_FFT points, then
 * arm_cmplx_mag_squared_f32. Built instead of fft.c when FRONTEND=cmsis_dsp (the Makefile's default on the
 * Cortex-M55, whose Helium code paths need ~4x fewer instructions than fft.c; on the Cortex-M4 fft.c is the
 * cheaper one: README, Firmware). Its twiddles are CMSIS-DSP's own constant tables (flash), not the export's. */
#include "fft.h"

#include "arm_math.h"

#define HALF (ASC_N_FFT / 2)

static arm_rfft_fast_instance_f32 rfft; /* pointers to CMSIS-DSP's constant tables: 40 bytes of RAM */

int asc_fft_init(void) {
  /* the size-specific initialiser keeps only this size's tables in the image (--gc-sections) */
#if ASC_N_FFT == 4096
  return arm_rfft_fast_init_4096_f32(&rfft) == ARM_MATH_SUCCESS ? 0 : -1;
#else
  return arm_rfft_fast_init_f32(&rfft, ASC_N_FFT) == ARM_MATH_SUCCESS ? 0 : -1;
#endif
}

float *asc_power_spectrum(float *x, float *scratch, float **spare) {
  arm_rfft_fast_f32(&rfft, x, scratch, 0); /* x is used as work space; scratch: [dc, nyquist, re1, im1, ...] */
  const float dc = scratch[0], nyquist = scratch[1];
  x[0] = dc * dc;
  x[HALF] = nyquist * nyquist;
  arm_cmplx_mag_squared_f32(scratch + 2, x + 1, HALF - 1);
  *spare = scratch;
  return x;
}
