/* WAV header checks and streamed sample reads (a few lines: no library needed for one fixed PCM format). */
#include "wav.h"

#include <string.h>

#include "asc_frontend.h"

#define EXPECTED "expected 16-bit PCM mono %d Hz WAV of %d samples"

static uint32_t u32(const unsigned char *p) {
  return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint16_t u16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static int fail(asc_wav_t *wav, char *why, int size, const char *what, long value) {
  char detail[96];
  snprintf(detail, sizeof(detail), what, value);
  snprintf(why, (size_t)size, "%s; " EXPECTED, detail, ASC_SAMPLE_RATE, ASC_CLIP_SAMPLES);
  if (wav->file) fclose(wav->file);
  wav->file = NULL;
  return -1;
}

int asc_wav_open(asc_wav_t *wav, const char *path, char *why, int why_size) {
  unsigned char head[12], chunk[8], fmt[16];
  int have_fmt = 0;
  wav->file = fopen(path, "rb");
  wav->samples_left = 0;
  if (!wav->file) return fail(wav, why, why_size, "cannot open the file%.0ld", 0);
  if (fread(head, 1, 12, wav->file) != 12 || memcmp(head, "RIFF", 4) || memcmp(head + 8, "WAVE", 4))
    return fail(wav, why, why_size, "not a RIFF/WAVE file%.0ld", 0);
  for (;;) {
    if (fread(chunk, 1, 8, wav->file) != 8) return fail(wav, why, why_size, "no data chunk%.0ld", 0);
    uint32_t length = u32(chunk + 4);
    if (!memcmp(chunk, "fmt ", 4)) {
      if (length < 16 || fread(fmt, 1, 16, wav->file) != 16)
        return fail(wav, why, why_size, "truncated fmt chunk%.0ld", 0);
      uint16_t format = u16(fmt), channels = u16(fmt + 2), bits = u16(fmt + 14);
      uint32_t rate = u32(fmt + 4);
      if (format != 1 && format != 0xFFFE) return fail(wav, why, why_size, "format tag %ld, not PCM", format);
      if (bits != 16) return fail(wav, why, why_size, "%ld-bit samples", bits);
      if (channels != 1) return fail(wav, why, why_size, "%ld channels", channels);
      if (rate != ASC_SAMPLE_RATE) return fail(wav, why, why_size, "sample rate %ld Hz", (long)rate);
      if (fseek(wav->file, (long)(length - 16 + (length & 1)), SEEK_CUR))
        return fail(wav, why, why_size, "truncated fmt chunk%.0ld", 0);
      have_fmt = 1;
    } else if (!memcmp(chunk, "data", 4)) {
      if (!have_fmt) return fail(wav, why, why_size, "data chunk before the fmt chunk%.0ld", 0);
      if (length != 2u * ASC_CLIP_SAMPLES) return fail(wav, why, why_size, "%ld samples", (long)(length / 2));
      wav->samples_left = ASC_CLIP_SAMPLES;
      return 0;
    } else if (fseek(wav->file, (long)(length + (length & 1)), SEEK_CUR)) {
      return fail(wav, why, why_size, "truncated chunk%.0ld", 0);
    }
  }
}

int32_t asc_wav_read(asc_wav_t *wav, int16_t *pcm, int32_t n) {
  if (n > wav->samples_left) n = wav->samples_left;
  if (n <= 0) return 0;
  size_t got = fread(pcm, sizeof(int16_t), (size_t)n, wav->file); /* little-endian host and targets */
  if (got != (size_t)n) return -1;
  wav->samples_left -= n;
  return n;
}

void asc_wav_close(asc_wav_t *wav) {
  if (wav->file) fclose(wav->file);
  wav->file = NULL;
}
