/* Bare-metal Cortex-M platform for QEMU's MPS2/MPS3 machines: vector table, reset handler (FPU on, .data/.bss,
 * C++ constructors), SysTick time base, semihosting command line and exit status. Newlib's rdimon does the
 * semihosting file I/O (fopen, fread, printf). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "platform.h"

extern uint32_t __data_load__, __data_start__, __data_end__, __bss_start__, __bss_end__;
extern uint32_t __heap_start__, __heap_end__, __stack_limit__, __stack_top__;
extern void __libc_init_array(void);
extern void initialise_monitor_handles(void);
extern int main(int argc, char **argv);

#define PAINT 0xA5A5A5A5u
#define SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SYSTICK_MAX 0x00FFFFFFu

static volatile uint32_t systick_wraps;

static int semihost(int op, void *arg) {
  register int r0 __asm__("r0") = op;
  register void *r1 __asm__("r1") = arg;
  __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

static void semihost_exit(int status) {
  uint32_t block[2] = {0x20026u /* ADP_Stopped_ApplicationExit */, (uint32_t)status};
  semihost(0x20 /* SYS_EXIT_EXTENDED */, block);
  for (;;) {
  }
}

void SysTick_Handler(void) { systick_wraps++; }

/* -nostartfiles leaves out crti.o: __libc_init_array calls _init, which has nothing to do here. */
void _init(void) {}
void _fini(void) {}

uint64_t asc_ticks(void) {
  uint32_t wraps, value;
  do {
    wraps = systick_wraps;
    value = SYST_CVR;
  } while (wraps != systick_wraps);
  return ((uint64_t)wraps << 24) + (SYSTICK_MAX - value);
}

void asc_describe_timer(char *line, int size) {
  const uint32_t loops = 2000000; /* `subs; bne`: 2 instructions per loop */
  uint32_t n = loops;
  uint64_t start = asc_ticks();
  __asm__ volatile("1: subs %0, %0, #1\n bne 1b" : "+r"(n) : : "cc");
  uint64_t ticks = asc_ticks() - start;
  snprintf(line, (size_t)size, "timer unit=ticks calibration_instructions=%lu calibration_ticks=%lu",
           (unsigned long)(2 * loops), (unsigned long)ticks);
}

static uint32_t painted_used(uint32_t *low, uint32_t *high, int from_top) {
  if (from_top) { /* stack grows down: the first overwritten word from the bottom */
    uint32_t *p = low;
    while (p < high && *p == PAINT) ++p;
    return (uint32_t)((char *)high - (char *)p);
  }
  uint32_t *p = high; /* heap grows up */
  while (p > low && p[-1] == PAINT) --p;
  return (uint32_t)((char *)p - (char *)low);
}

uint32_t asc_stack_used(void) { return painted_used(&__stack_limit__, &__stack_top__, 1); }
uint32_t asc_heap_used(void) { return painted_used(&__heap_start__, &__heap_end__, 0); }

static int command_line(char *buffer, int size, char **argv, int max_args) {
  struct {
    char *buffer;
    int size;
  } block = {buffer, size - 1};
  if (semihost(0x15 /* SYS_GET_CMDLINE */, &block) != 0) return 0;
  buffer[block.size] = '\0';
  int argc = 0;
  for (char *p = buffer; *p && argc < max_args;) {
    while (*p == ' ') *p++ = '\0';
    if (!*p) break;
    argv[argc++] = p;
    while (*p && *p != ' ') ++p;
  }
  argv[argc] = 0;
  return argc;
}

void Reset_Handler(void) {
  SCB_CPACR |= (0xFu << 20); /* CP10, CP11 full access: the FPU (and MVE) before any float code */
  __asm__ volatile("dsb\n isb" ::: "memory");
  uint32_t *src = &__data_load__;
  for (uint32_t *dst = &__data_start__; dst < &__data_end__;) *dst++ = *src++;
  for (uint32_t *dst = &__bss_start__; dst < &__bss_end__;) *dst++ = 0;
  for (uint32_t *p = &__heap_start__; p < &__heap_end__;) *p++ = PAINT;
  uint32_t *sp;
  __asm__ volatile("mov %0, sp" : "=r"(sp));
  for (uint32_t *p = &__stack_limit__; p < sp - 16;) *p++ = PAINT;
  SYST_RVR = SYSTICK_MAX;
  SYST_CVR = 0;
  SYST_CSR = 7; /* processor clock, interrupt on wrap, enabled */
  __libc_init_array();
  initialise_monitor_handles();
  static char cmdline[1024];
  static char *argv[32];
  int argc = command_line(cmdline, sizeof(cmdline), argv, 31);
  int status = main(argc, argv);
  fflush(stdout);
  fflush(stderr);
  semihost_exit(status);
}

static void Fault_Handler(void) {
  static const char message[] = "error: hard fault\n";
  semihost(0x04 /* SYS_WRITE0 */, (void *)message);
  semihost_exit(3);
}

typedef void (*vector_t)(void);
__attribute__((section(".vectors"), used)) const vector_t asc_vectors[16] = {
    (vector_t)&__stack_top__, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, SysTick_Handler};
