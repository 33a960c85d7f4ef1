/* Host (x86/Arm Linux) platform: nanosecond clock. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <time.h>

#include "platform.h"

uint64_t asc_ticks(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
}

void asc_describe_timer(char *line, int size) { snprintf(line, (size_t)size, "timer unit=ns"); }

uint32_t asc_stack_used(void) { return 0; }
uint32_t asc_heap_used(void) { return 0; }
