/* Real FFT of ASC_N_FFT points and its power, for the front end (see fft.h).
 *
 * Written here (not kissfft's generic mixed-radix recursion) because the front end computes one 4,096-point FFT
 * every 500 samples: a fixed radix-2/4 Stockham pass over the export's twiddles, with the power fused into the
 * real-FFT split, takes 1.5x fewer instructions per frame on a Cortex-M4 (docs/firmware.md). Same tables and same
 * split as kissfft's kiss_fftr; an ASC_N_FFT that is not a power of two falls back to kissfft. */
#include "fft.h"

#include <stdint.h>

#define HALF (ASC_N_FFT / 2)

typedef struct {
  float r, i;
} cpx;

int asc_fft_init(void) { return asc_fft_state.nfft == HALF && asc_fft_state.inverse == 0 ? 0 : -1; }

#if (HALF & (HALF - 1)) == 0 && !defined(ASC_FFT_KISSFFT) /* -DASC_FFT_KISSFFT: kissfft, for comparison */

/* log2(HALF) is odd: one radix-2 pass first (its twiddles are all 1), then radix-4 passes. */
#define LOG2_HALF_ODD ((HALF & 0xAAAAAAAAu) != 0)

static inline cpx cmul(cpx a, cpx b) {
  cpx m = {a.r * b.r - a.i * b.i, a.r * b.i + a.i * b.r};
  return m;
}

/* Column k of a radix-4 Stockham pass (sub-transforms of `ns` points become 4 ns): reads in[g ns + m HALF/4],
 * writes out[g 4 ns + m ns], m = 0..3, for every group g; the twiddles are w^k, w^2k, w^3k (1 when k = 0). */
static inline void radix4_column(const cpx *in, cpx *out, int32_t ns, int32_t groups, cpx w1, cpx w2, cpx w3,
                                 int twiddled) {
  const int32_t q = HALF / 4;
  for (int32_t g = 0; g < groups; ++g, in += ns, out += 4 * ns) {
    const cpx x0 = in[0];
    const cpx x1 = twiddled ? cmul(in[q], w1) : in[q];
    const cpx x2 = twiddled ? cmul(in[2 * q], w2) : in[2 * q];
    const cpx x3 = twiddled ? cmul(in[3 * q], w3) : in[3 * q];
    const float s02r = x0.r + x2.r, s02i = x0.i + x2.i, d02r = x0.r - x2.r, d02i = x0.i - x2.i;
    const float s13r = x1.r + x3.r, s13i = x1.i + x3.i, d13r = x1.r - x3.r, d13i = x1.i - x3.i;
    out[0].r = s02r + s13r;
    out[0].i = s02i + s13i;
    out[ns].r = d02r + d13i; /* d02 - i d13 */
    out[ns].i = d02i - d13r;
    out[2 * ns].r = s02r - s13r;
    out[2 * ns].i = s02i - s13i;
    out[3 * ns].r = d02r - d13i; /* d02 + i d13 */
    out[3 * ns].i = d02i + d13r;
  }
}

/* Forward complex FFT of HALF points (Stockham autosort: no bit reversal); returns the buffer holding it. */
static cpx *complex_fft(cpx *a, cpx *b) {
  const cpx *tw = (const cpx *)(const void *)asc_fft_state.twiddles; /* exp(-2 pi i m / HALF) */
  int32_t ns = 1;
  if (LOG2_HALF_ODD) {
    for (int32_t j = 0; j < HALF / 2; ++j) {
      const cpx x0 = a[j], x1 = a[j + HALF / 2];
      b[2 * j].r = x0.r + x1.r;
      b[2 * j].i = x0.i + x1.i;
      b[2 * j + 1].r = x0.r - x1.r;
      b[2 * j + 1].i = x0.i - x1.i;
    }
    cpx *swap = a;
    a = b;
    b = swap;
    ns = 2;
  }
  for (; ns < HALF; ns *= 4) {
    const int32_t step = HALF / (4 * ns); /* also the number of groups */
    const cpx one = {1.0f, 0.0f};
    radix4_column(a, b, ns, step, one, one, one, 0);
    for (int32_t k = 1; k < ns; ++k)
      radix4_column(a + k, b + k, ns, step, tw[k * step], tw[2 * k * step], tw[3 * k * step], 1);
    cpx *swap = a;
    a = b;
    b = swap;
  }
  return a;
}

float *asc_power_spectrum(float *x, float *scratch, float **spare) {
  cpx *z = complex_fft((cpx *)(void *)x, (cpx *)(void *)scratch); /* z[n] = x[2n] + i x[2n+1] */
  float *power = (float *)(void *)z == x ? scratch : x;
  const cpx *st = (const cpx *)(const void *)asc_fft_super_twiddles;
  const float dc = z[0].r + z[0].i, nyquist = z[0].r - z[0].i;
  power[0] = dc * dc;
  power[HALF] = nyquist * nyquist;
  for (int32_t k = 1; k <= HALF / 2; ++k) { /* kiss_fftr's split of the packed spectrum, then |.|^2 */
    const cpx p = z[k];
    const float nr = z[HALF - k].r, ni = -z[HALF - k].i;
    const cpx f2 = {p.r - nr, p.i - ni};
    const float f1r = p.r + nr, f1i = p.i + ni;
    const cpx t = cmul(f2, st[k - 1]);
    const float ar = (f1r + t.r) * 0.5f, ai = (f1i + t.i) * 0.5f;
    const float br = (f1r - t.r) * 0.5f, bi = (t.i - f1i) * 0.5f;
    power[k] = ar * ar + ai * ai;
    power[HALF - k] = br * br + bi * bi;
  }
  *spare = (float *)(void *)z;
  return power;
}

#else /* not a power of two (or ASC_FFT_KISSFFT): kissfft's real FFT, then the power */

#include <stddef.h>

#include "_kiss_fft_guts.h"
#include "kiss_fft.h"
#include "tools/kiss_fftr.h"

_Static_assert(sizeof(kiss_fft_cpx) == 2 * sizeof(float), "float kissfft expected");
_Static_assert(offsetof(struct kiss_fft_state, twiddles) == offsetof(asc_kiss_state_t, twiddles),
               "asc_kiss_state_t must have kissfft's struct kiss_fft_state layout");

float *asc_power_spectrum(float *x, float *scratch, float **spare) {
  struct { /* kiss_fftr's state (its layout in kiss_fftr.c) over the constant tables */
    kiss_fft_cfg substate;
    kiss_fft_cpx *tmpbuf;
    kiss_fft_cpx *super_twiddles;
  } real_fft = {(kiss_fft_cfg)(void *)&asc_fft_state, (kiss_fft_cpx *)(void *)scratch,
                (kiss_fft_cpx *)(void *)asc_fft_super_twiddles};
  kiss_fft_cpx *spectrum = (kiss_fft_cpx *)(void *)x; /* in place: kiss_fftr first reads x into tmpbuf */
  kiss_fftr((kiss_fftr_cfg)(void *)&real_fft, x, spectrum);
  for (int32_t k = 0; k <= HALF; ++k) x[k] = spectrum[k].r * spectrum[k].r + spectrum[k].i * spectrum[k].i;
  *spare = scratch;
  return x;
}

#endif
