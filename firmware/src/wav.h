/* The clips the firmware reads: RIFF/WAVE, 16-bit PCM, mono, ASC_SAMPLE_RATE Hz, exactly ASC_CLIP_SAMPLES samples. */
#ifndef ASC_FW_WAV_H_
#define ASC_FW_WAV_H_

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
  FILE *file;
  int32_t samples_left;
} asc_wav_t;

/* Open `path` and check its header; on failure returns -1 with one line saying what to fix in `why`. */
int asc_wav_open(asc_wav_t *wav, const char *path, char *why, int why_size);

/* Read up to `n` samples; returns the count (0 at the end), or -1 if the file ends before its data chunk. */
int32_t asc_wav_read(asc_wav_t *wav, int16_t *pcm, int32_t n);

void asc_wav_close(asc_wav_t *wav);

#ifdef __cplusplus
}
#endif

#endif /* ASC_FW_WAV_H_ */
