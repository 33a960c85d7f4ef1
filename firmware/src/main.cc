// asc firmware: 16-bit PCM clips in, the int8 CP-Mobile's logits, class, and time per stage and per op out.
//
//   asc_fw [--list FILE] [--dump-input FILE] [--dump-mel FILE] [--arena-search] [--arena BYTES] CLIP.wav ...
//
// One line per clip: `clip <i> <path> class=<name> logits=<q0,..> frontend=<t> network=<t> ops=<t0,..>`, times in
// the unit of the `timer` line. A bad clip gives one `error:` line on stderr; the exit status is then 2.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frontend.h"
#include "network.h"
#include "platform.h"
#include "wav.h"

#ifndef ASC_TARGET
#define ASC_TARGET "host"
#endif
#ifndef ASC_KERNELS
#define ASC_KERNELS "reference"
#endif
#ifndef ASC_FRONTEND
#define ASC_FRONTEND "own"
#endif

static int g_quiet_tflm = 0;

// TFLite Micro's log sink (the library is built without its own debug_log.cc): muted while searching the arena.
extern "C" void DebugLog(const char* format, va_list args) {
  if (!g_quiet_tflm) vfprintf(stderr, format, args);
}
extern "C" int DebugVsnprintf(char* buffer, size_t buf_size, const char* format, va_list vlist) {
  return vsnprintf(buffer, buf_size, format, vlist);
}

namespace {

OpProfiler g_profiler;
asc_frontend_t g_frontend;
constexpr int kChunk = ASC_HOP_LENGTH;  // samples read at a time, as a microphone's DMA would deliver them

struct Options {
  const char* list = nullptr;
  const char* dump_input = nullptr;
  const char* dump_mel = nullptr;
  bool arena_search = false;
  size_t arena = 0;
};

// The smallest arena (16-byte steps) in which the network allocates and leaves the front end its scratch.
size_t SearchArena(size_t high) {
  char why[160];
  size_t low = 0;  // invariant: low fails (or is 0), high works
  g_quiet_tflm = 1;
  while (high - low > 16) {
    size_t mid = (low + high) / 2 / 16 * 16;
    if (mid <= low) break;
    // Kernels request their scratch while tensors are allocated, so allocation decides; the clips then run in it.
    bool ok = NetworkSetup(mid, &g_profiler, why, sizeof(why)) && NetworkScratch(ASC_FE_SCRATCH_BYTES);
    NetworkTeardown();
    (ok ? high : low) = mid;
  }
  g_quiet_tflm = 0;
  return high;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  static const char* clips[64];  // clips named on the command line; --list streams any number
  int n_clips = 0;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    auto value = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        fprintf(stderr, "error: %s needs a value\n", name);
        exit(2);
      }
      return argv[++i];
    };
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      printf("usage: asc_fw [--list FILE] [--dump-input FILE] [--dump-mel FILE] [--arena-search] [--arena BYTES] "
             "CLIP.wav ...\n"
             "Classifies 1 s clips (16-bit PCM WAV, mono, %d Hz): one line per clip with its class, int8 logits\n"
             "and time per stage and per op. --list FILE: one clip path per line. --dump-input/--dump-mel FILE:\n"
             "write the int8 network inputs / float log-mels. --arena-search: find the smallest tensor arena.\n"
             "--arena BYTES: use that many bytes of the arena. Exit 2 on a bad clip (one error: line).\n",
             ASC_SAMPLE_RATE);
      return 0;
    }
    if (!strcmp(a, "--list")) options.list = value(a);
    else if (!strcmp(a, "--dump-input")) options.dump_input = value(a);
    else if (!strcmp(a, "--dump-mel")) options.dump_mel = value(a);
    else if (!strcmp(a, "--arena-search")) options.arena_search = true;
    else if (!strcmp(a, "--arena")) options.arena = strtoul(value(a), nullptr, 10);
    else if (a[0] == '-' && a[1] == '-') {
      fprintf(stderr, "error: unknown option %s (asc_fw --help lists them)\n", a);
      return 2;
    } else if (n_clips < 64) clips[n_clips++] = a;
  }
  FILE* list = nullptr;
  if (options.list && !(list = fopen(options.list, "rb"))) {
    fprintf(stderr, "error: %s: cannot open the clip list\n", options.list);
    return 2;
  }
  char line[256];
  asc_describe_timer(line, sizeof(line));
  printf("asc-fw target=%s kernels=%s frontend=%s\n%s\n", ASC_TARGET, ASC_KERNELS, ASC_FRONTEND, line);
  if (asc_frontend_init() != 0) {
    fprintf(stderr, "error: the FFT tables of asc_frontend.c do not describe a real FFT of %d points\n", ASC_N_FFT);
    return 2;
  }
  size_t arena = options.arena ? options.arena : NetworkArenaCapacity();
  if (options.arena_search) {
    size_t smallest = SearchArena(arena);
    printf("arena_search smallest=%u capacity=%u\n", (unsigned)smallest, (unsigned)NetworkArenaCapacity());
    arena = smallest;
  }
  char why[200];
  if (!NetworkSetup(arena, &g_profiler, why, sizeof(why))) {
    fprintf(stderr, "error: %s\n", why);
    return 2;
  }
  if (!NetworkScratch(ASC_FE_SCRATCH_BYTES)) {
    fprintf(stderr, "error: no %u free bytes in the arena for the front end: raise the arena\n",
            (unsigned)ASC_FE_SCRATCH_BYTES);
    return 2;
  }
  const int n_ops = NetworkOpCount();
  for (int i = 0; i < n_ops; ++i) {
    NetworkOpShapes(i, line, sizeof(line));
    printf("op %d %s\n", i, line);
  }
  FILE* dump_input = options.dump_input ? fopen(options.dump_input, "wb") : nullptr;
  FILE* dump_mel = options.dump_mel ? fopen(options.dump_mel, "wb") : nullptr;
  float* log_mel = nullptr;
  if (options.dump_mel) {
    log_mel = static_cast<float*>(malloc(sizeof(float) * ASC_N_MELS * ASC_N_FRAMES));
    if (!log_mel || !dump_mel) {
      fprintf(stderr, "error: %s: cannot dump the log-mel (file or %u bytes of heap)\n", options.dump_mel,
              (unsigned)(sizeof(float) * ASC_N_MELS * ASC_N_FRAMES));
      return 2;
    }
  }
  if ((options.dump_input && !dump_input)) {
    fprintf(stderr, "error: %s: cannot open for writing\n", options.dump_input);
    return 2;
  }
  int status = 0;
  int n_done = 0;
  uint64_t stage_totals[ASC_FE_N_STAGES] = {0};
  static char list_line[512];
  for (int c = 0;; ++c) {
    const char* clip = nullptr;
    if (c < n_clips) {
      clip = clips[c];
    } else if (list && fgets(list_line, sizeof(list_line), list)) {
      list_line[strcspn(list_line, "\r\n")] = '\0';
      if (!list_line[0]) continue;
      clip = list_line;
    } else {
      break;
    }
    uint64_t frontend_ticks = 0;
    g_frontend.log_mel = nullptr;
    asc_wav_t wav;
    bool ok = asc_wav_open(&wav, clip, why, sizeof(why)) == 0;
    if (ok) {
      size_t in_bytes;
      int8_t* input = NetworkInput(&in_bytes);
      asc_frontend_begin(&g_frontend, input, log_mel, NetworkScratch(ASC_FE_SCRATCH_BYTES));
      int16_t chunk[kChunk];
      for (;;) {
        int32_t n = asc_wav_read(&wav, chunk, kChunk);
        if (n < 0) {
          snprintf(why, sizeof(why), "the file ends inside its data chunk (truncated)");
          ok = false;
          break;
        }
        if (n == 0) break;
        uint64_t start = asc_ticks();
        asc_frontend_push(&g_frontend, chunk, n);
        frontend_ticks += asc_ticks() - start;
      }
      asc_wav_close(&wav);
    }
    if (!ok) {
      fprintf(stderr, "error: %s: %s\n", clip, why);
      status = 2;
      continue;
    }
    size_t in_bytes;
    const int8_t* input = NetworkInput(&in_bytes);
    if (dump_input) fwrite(input, 1, in_bytes, dump_input);
    if (dump_mel) fwrite(log_mel, sizeof(float), ASC_N_MELS * ASC_N_FRAMES, dump_mel);
    g_profiler.Reset();
    uint64_t start = asc_ticks();
    if (!NetworkInvoke()) {
      fprintf(stderr, "error: %s: Invoke failed\n", clip);
      return 3;
    }
    uint64_t network_ticks = asc_ticks() - start;
    size_t n_out;
    const int8_t* out = NetworkOutput(&n_out);
    int best = 0;
    for (size_t k = 1; k < n_out; ++k)
      if (out[k] > out[best]) best = static_cast<int>(k);
    printf("clip %d %s class=%s logits=", c, clip, asc_class_names[best]);
    for (size_t k = 0; k < n_out; ++k) printf(k ? ",%d" : "%d", out[k]);
    printf(" frontend=%llu network=%llu ops=", (unsigned long long)frontend_ticks,
           (unsigned long long)network_ticks);
    for (int k = 0; k < g_profiler.count(); ++k) printf(k ? ",%llu" : "%llu", (unsigned long long)g_profiler.ticks(k));
    printf("\n");
    for (int k = 0; k < ASC_FE_N_STAGES; ++k) stage_totals[k] += g_frontend.stage_ticks[k];
    n_done++;
  }
  // The front end's time per stage, summed over the clips (the rest of `frontend=` is buffering the samples).
  static const char* const stage_names[] = ASC_FE_STAGE_NAMES;
  printf("frontend_stages clips=%d", n_done);
  for (int k = 0; k < ASC_FE_N_STAGES; ++k) printf(" %s=%llu", stage_names[k], (unsigned long long)stage_totals[k]);
  printf("\n");
  if (list) fclose(list);
  if (dump_input) fclose(dump_input);
  if (dump_mel) fclose(dump_mel);
  ArenaFigures a = NetworkArena();
  printf("memory arena=%u arena_used=%u non_persistent=%u persistent=%u frontend_scratch_in_arena=%u "
         "stack_used=%u heap_used=%u\n",
         (unsigned)a.size, (unsigned)a.used, (unsigned)a.non_persistent, (unsigned)a.persistent,
         (unsigned)ASC_FE_SCRATCH_BYTES, (unsigned)asc_stack_used(), (unsigned)asc_heap_used());
  return status;
}
