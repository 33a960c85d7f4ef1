/* Streamed log-mel front end: 16-bit PCM in, int8 network input out, one frame at a time.
 *
 * Computes exactly the recipe of the export's firmware/README.md (reflect padding, periodic Hann, real FFT of
 * ASC_N_FFT, power, banded mel, logf(x + ASC_LOG_OFFSET), int8 quantization) while samples arrive: it keeps a
 * window of at most ASC_FE_HISTORY samples, never the padded clip nor a [frames, n_fft] matrix. */
#ifndef ASC_FW_FRONTEND_H_
#define ASC_FW_FRONTEND_H_

#include <stddef.h>
#include <stdint.h>

#include "asc_frontend.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ASC_FE_HISTORY 4096 /* int16 samples kept: one window (ASC_WINDOW_LENGTH) plus room to push */

/* Bytes of per-clip scratch the caller lends (free arena memory before invoke): the sample history, and the FFT's
 * two buffers (the frame, then its spectrum, power and mel sums; see fft.h). The FFT's twiddles are constants in
 * flash (asc_fft_state). */
#define ASC_FE_HISTORY_BYTES (sizeof(int16_t) * ASC_FE_HISTORY)
#define ASC_FE_WORK_BYTES (sizeof(float) * 2 * (ASC_N_FFT / 2 + 1))
#define ASC_FE_FFT_BYTES (sizeof(float) * ASC_N_FFT)
#define ASC_FE_SCRATCH_BYTES (ASC_FE_HISTORY_BYTES + ASC_FE_WORK_BYTES + ASC_FE_FFT_BYTES)

/* The stages of a frame whose time is kept (asc_ticks() between them; a few instructions per frame). */
#define ASC_FE_N_STAGES 4
#define ASC_FE_STAGE_NAMES {"window", "fft_power", "mel", "log_quantize"}

typedef struct {
  int16_t *history;                /* samples [base, base + count) of the clip, ASC_FE_HISTORY at most */
  int32_t base, count;
  int32_t frame;                   /* next frame to compute */
  int8_t *input;                   /* network input [ASC_N_MELS * ASC_N_FRAMES], mel-major */
  float *log_mel;                  /* optional copy of the float log-mel, same layout (NULL: none) */
  float *work;                     /* ASC_FE_SCRATCH_BYTES: frame, spectrum, power */
  uint64_t stage_ticks[ASC_FE_N_STAGES]; /* time per stage, summed over the frames (platform ticks) */
} asc_frontend_t;

/* Check the FFT tables once. Returns 0, or -1 if they do not describe a real FFT of ASC_N_FFT. */
int asc_frontend_init(void);

/* Start a clip: results go to `input` (and `log_mel` unless NULL); `scratch` holds ASC_FE_SCRATCH_BYTES,
 * 8-byte aligned, and must not overlap `input`. */
void asc_frontend_begin(asc_frontend_t *fe, int8_t *input, float *log_mel, void *scratch);

/* Feed the next `n` samples; computes every frame whose samples have all arrived. */
void asc_frontend_push(asc_frontend_t *fe, const int16_t *pcm, int32_t n);

/* Whether all ASC_N_FRAMES frames are done (the clip had ASC_CLIP_SAMPLES samples). */
int asc_frontend_done(const asc_frontend_t *fe);

#ifdef __cplusplus
}
#endif

#endif /* ASC_FW_FRONTEND_H_ */
