// Per-op time of one Invoke: TFLite Micro calls BeginEvent/EndEvent around every op (MicroProfilerInterface).
#ifndef ASC_FW_PROFILER_H_
#define ASC_FW_PROFILER_H_

#include <stdint.h>

#include "tensorflow/lite/micro/micro_profiler_interface.h"

class OpProfiler : public tflite::MicroProfilerInterface {
 public:
  static constexpr int kMaxEvents = 64;  // ops per Invoke (the baseline has 31)

  uint32_t BeginEvent(const char* tag) override;
  void EndEvent(uint32_t event_handle) override;
  void Reset() { count_ = 0; }
  int count() const { return count_; }
  const char* tag(int i) const { return tags_[i]; }
  uint64_t ticks(int i) const { return ticks_[i]; }

 private:
  const char* tags_[kMaxEvents];
  uint64_t start_[kMaxEvents];
  uint64_t ticks_[kMaxEvents];
  int count_ = 0;
};

#endif  // ASC_FW_PROFILER_H_
