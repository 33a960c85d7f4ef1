// The int8 network under TFLite Micro: op resolver with exactly the network's ops, a static arena, and the
// arena's free bytes before Invoke lent to the front end.
#ifndef ASC_FW_NETWORK_H_
#define ASC_FW_NETWORK_H_

#include <stddef.h>
#include <stdint.h>

#include "profiler.h"

struct ArenaFigures {
  size_t size;            // bytes of the static arena
  size_t used;            // head (planned tensors, scratch) + tail (persistent)
  size_t non_persistent;  // head: the memory planner's plan
  size_t persistent;      // tail: interpreter structures, op data, quantization parameters
};

// Set up the interpreter in the first `arena_bytes` of the static arena. Returns false (with one line in
// `why`) when the model does not load or does not fit.
bool NetworkSetup(size_t arena_bytes, OpProfiler* profiler, char* why, int why_size);
void NetworkTeardown();

int8_t* NetworkInput(size_t* bytes);
const int8_t* NetworkOutput(size_t* count);
// Free arena memory before Invoke (not the input tensor): `bytes` long, 8-byte aligned, or nullptr.
void* NetworkScratch(size_t bytes);
bool NetworkInvoke();
ArenaFigures NetworkArena();
size_t NetworkArenaCapacity();

// Shapes of op `index` as "in1xin2;..->out" (from the flatbuffer); the number of ops.
int NetworkOpCount();
void NetworkOpShapes(int index, char* text, int size);

#endif  // ASC_FW_NETWORK_H_
