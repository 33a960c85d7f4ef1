/* The power spectrum of one real frame of ASC_N_FFT samples, from the export's FFT tables (kissfft's twiddles). */
#ifndef ASC_FW_FFT_H_
#define ASC_FW_FFT_H_

#include "asc_frontend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Check the tables once. Returns 0, or -1 if they do not describe a real FFT of ASC_N_FFT points. */
int asc_fft_init(void);

/* |X_k|^2 for k = 0..ASC_N_FFT/2 of the real frame `x` (ASC_N_FFT samples; the buffer holds ASC_N_FFT + 2
 * floats). `x` and `scratch` (ASC_N_FFT floats), 8-byte aligned, are both overwritten: the power is in one of
 * them, and *spare is set to the other (free until the next frame). */
float *asc_power_spectrum(float *x, float *scratch, float **spare);

#ifdef __cplusplus
}
#endif

#endif /* ASC_FW_FFT_H_ */
