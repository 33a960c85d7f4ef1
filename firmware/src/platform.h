/* What the firmware needs from the board: a tick counter, its unit, and stack/heap high-water marks. */
#ifndef ASC_FW_PLATFORM_H_
#define ASC_FW_PLATFORM_H_

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Monotonic time in the platform's ticks (host: nanoseconds; Cortex-M: SysTick ticks). */
uint64_t asc_ticks(void);

/* One line describing the tick: its unit, and on Cortex-M how many instructions one tick spans, measured
 * with a loop of known length (meaningful under QEMU -icount, where virtual time counts instructions). */
void asc_describe_timer(char *line, int size);

/* Bytes of stack (and heap) used so far, from the paint pattern the startup code writes (0: unknown). */
uint32_t asc_stack_used(void);
uint32_t asc_heap_used(void);

#ifdef __cplusplus
}
#endif

#endif /* ASC_FW_PLATFORM_H_ */
