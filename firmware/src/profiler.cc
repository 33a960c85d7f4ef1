#include "profiler.h"

#include "platform.h"

uint32_t OpProfiler::BeginEvent(const char* tag) {
  if (count_ >= kMaxEvents) return kMaxEvents;  // further events are not recorded
  tags_[count_] = tag;
  ticks_[count_] = 0;
  start_[count_] = asc_ticks();
  return static_cast<uint32_t>(count_++);
}

void OpProfiler::EndEvent(uint32_t event_handle) {
  const uint64_t now = asc_ticks();
  if (event_handle < static_cast<uint32_t>(kMaxEvents)) ticks_[event_handle] = now - start_[event_handle];
}
