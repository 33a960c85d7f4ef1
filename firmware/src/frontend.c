/* Streamed log-mel front end (see frontend.h); the FFT and power are in fft.c. */
#include "frontend.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "fft.h"
#include "platform.h"
#ifdef ASC_FRONTEND_CMSIS_DSP /* FRONTEND=cmsis_dsp: the window and mel on CMSIS-DSP's vector functions */
#include "arm_math.h"
#endif

#define HALF (ASC_N_FFT / 2)
#define N ASC_CLIP_SAMPLES
#define W ASC_WINDOW_LENGTH

static float *fft_scratch;

int asc_frontend_init(void) { return asc_fft_init(); }

/* First signal sample of frame t (may be negative: reflect padding). */
static int32_t frame_start(int32_t t) { return ASC_WINDOW_OFFSET + ASC_HOP_LENGTH * t - HALF; }

static int32_t reflect(int32_t i) {
  if (i < 0) return -i;
  if (i >= N) return 2 * (N - 1) - i;
  return i;
}

/* Samples [low, high) of the clip that frame t reads. */
static void frame_span(int32_t t, int32_t *low, int32_t *high) {
  int32_t s = frame_start(t), e = s + W - 1;
  int32_t hi = e < N ? e : N - 1, lo = s > 0 ? s : 0;
  if (s < 0 && -s > hi) hi = -s;
  if (e >= N && reflect(e) < lo) lo = reflect(e);
  *low = lo;
  *high = hi + 1;
}

void asc_frontend_begin(asc_frontend_t *fe, int8_t *input, float *log_mel, void *scratch) {
  fe->base = fe->count = fe->frame = 0;
  memset(fe->stage_ticks, 0, sizeof(fe->stage_ticks));
  fe->input = input;
  fe->log_mel = log_mel;
  fe->history = (int16_t *)scratch;
  fe->work = (float *)((char *)scratch + ASC_FE_HISTORY_BYTES);
  fft_scratch = (float *)((char *)scratch + ASC_FE_HISTORY_BYTES + ASC_FE_WORK_BYTES);
}

static void compute_frame(asc_frontend_t *fe) {
  const int32_t t = fe->frame, s = frame_start(t);
  float *work = fe->work;
  uint64_t t0 = asc_ticks(), t1;
  if (s >= 0 && s + W <= N) { /* inner frame: no reflection */
    const int16_t *h = fe->history + (s - fe->base);
#ifdef ASC_FRONTEND_CMSIS_DSP /* the same products: q15 -> float (h / 32768, exact), times the window */
    arm_q15_to_float(h, work, W);
    arm_mult_f32(work, asc_window, work, W);
#else
    for (int32_t j = 0; j < W; ++j) work[j] = ((float)h[j] * (1.0f / 32768.0f)) * asc_window[j];
#endif
  } else {
    for (int32_t j = 0; j < W; ++j) {
      const float x = (float)fe->history[reflect(s + j) - fe->base] * (1.0f / 32768.0f);
      work[j] = x * asc_window[j];
    }
  }
  memset(work + W, 0, sizeof(float) * (ASC_N_FFT - W)); /* zero-padded at the end, as numpy's rfft(n=) */
  t1 = asc_ticks();
  fe->stage_ticks[0] += t1 - t0;
  float *mel; /* the buffer the FFT leaves free */
  const float *power = asc_power_spectrum(work, fft_scratch, &mel);
  t0 = asc_ticks();
  fe->stage_ticks[1] += t0 - t1;
  for (int32_t m = 0; m < ASC_N_MELS; ++m) {
    const float *p = power + asc_mel_first_bin[m];
    const float *w = asc_mel_weights + asc_mel_offset[m];
#ifdef ASC_FRONTEND_CMSIS_DSP /* Helium: 4 lanes summed at the end (another order of the same sum) */
    arm_dot_prod_f32(p, w, asc_mel_n_bins[m], &mel[m]);
#else
    float acc = 0.0f;
    for (int32_t k = 0; k < asc_mel_n_bins[m]; ++k) acc += p[k] * w[k];
    mel[m] = acc;
#endif
  }
  t1 = asc_ticks();
  fe->stage_ticks[2] += t1 - t0;
  for (int32_t m = 0; m < ASC_N_MELS; ++m) {
    const float v = logf(mel[m] + ASC_LOG_OFFSET);
    const int32_t at = m * ASC_N_FRAMES + t;
    if (fe->log_mel) fe->log_mel[at] = v;
    float q = roundf(v / ASC_INPUT_SCALE) + (float)ASC_INPUT_ZERO_POINT;
    q = q < -128.0f ? -128.0f : (q > 127.0f ? 127.0f : q);
    fe->input[at] = (int8_t)q;
  }
  fe->stage_ticks[3] += asc_ticks() - t1;
}

static int frame_ready(const asc_frontend_t *fe) {
  int32_t low, high;
  if (fe->frame >= ASC_N_FRAMES) return 0;
  frame_span(fe->frame, &low, &high);
  return fe->base + fe->count >= high;
}

/* Drop the samples no later frame reads. */
static void compact(asc_frontend_t *fe) {
  int32_t low = fe->base + fe->count, high;
  if (fe->frame < ASC_N_FRAMES) frame_span(fe->frame, &low, &high);
  const int32_t drop = low - fe->base;
  if (drop <= 0) return;
  memmove(fe->history, fe->history + drop, sizeof(int16_t) * (size_t)(fe->count - drop));
  fe->base += drop;
  fe->count -= drop;
}

void asc_frontend_push(asc_frontend_t *fe, const int16_t *pcm, int32_t n) {
  if (n > N - (fe->base + fe->count)) n = N - (fe->base + fe->count); /* a clip is N samples */
  while (n > 0) {
    if (fe->count == ASC_FE_HISTORY) compact(fe);
    int32_t take = ASC_FE_HISTORY - fe->count;
    if (take > n) take = n;
    memcpy(fe->history + fe->count, pcm, sizeof(int16_t) * (size_t)take);
    fe->count += take;
    pcm += take;
    n -= take;
    while (frame_ready(fe)) {
      compute_frame(fe);
      fe->frame++;
    }
  }
}

int asc_frontend_done(const asc_frontend_t *fe) { return fe->frame == ASC_N_FRAMES; }
