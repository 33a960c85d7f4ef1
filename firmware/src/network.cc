#include "network.h"

#include <stdio.h>
#include <string.h>

#include <new>

#include "asc_frontend.h"
#include "asc_network_int8.h"
#include "tensorflow/lite/micro/memory_helpers.h"
#include "tensorflow/lite/micro/micro_arena_constants.h"
#include "tensorflow/lite/micro/arena_allocator/single_arena_buffer_allocator.h"
#include "tensorflow/lite/micro/memory_planner/greedy_memory_planner.h"
#include "tensorflow/lite/micro/micro_allocator.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"

#ifndef ASC_ARENA_BYTES
#define ASC_ARENA_BYTES ASC_EXPORT_ARENA_BYTES
#endif

namespace {

alignas(16) uint8_t g_arena[ASC_ARENA_BYTES];
alignas(tflite::MicroInterpreter) uint8_t g_interpreter_memory[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter* g_interpreter = nullptr;
tflite::SingleArenaBufferAllocator* g_buffers = nullptr;
size_t g_arena_bytes = 0;
const tflite::Model* g_model = nullptr;

using Resolver = tflite::MicroMutableOpResolver<ASC_N_OP_KINDS>;
alignas(Resolver) uint8_t g_resolver_memory[sizeof(Resolver)];
Resolver* g_resolver = nullptr;

#define ASC_ADD_OP(method) ok = ok && g_resolver->method() == kTfLiteOk;

}  // namespace

size_t NetworkArenaCapacity() { return ASC_ARENA_BYTES; }

bool NetworkSetup(size_t arena_bytes, OpProfiler* profiler, char* why, int why_size) {
  if (arena_bytes > ASC_ARENA_BYTES) arena_bytes = ASC_ARENA_BYTES;
  g_arena_bytes = arena_bytes;
  g_model = tflite::GetModel(asc_network_int8);
  if (g_model->version() != TFLITE_SCHEMA_VERSION) {
    snprintf(why, why_size, "model schema %u, TFLite Micro expects %d", (unsigned)g_model->version(),
             TFLITE_SCHEMA_VERSION);
    return false;
  }
  if (!g_resolver) {
    g_resolver = new (g_resolver_memory) Resolver();
    bool ok = true;
    ASC_OPS(ASC_ADD_OP)
    if (!ok) {
      snprintf(why, why_size, "op resolver: could not register the network's ops");
      return false;
    }
  }
  // The allocator is made here (as MicroAllocator::Create does) to read the head/tail split afterwards.
  g_buffers = tflite::SingleArenaBufferAllocator::Create(g_arena, arena_bytes);
  uint8_t* planner_memory = g_buffers ? g_buffers->AllocatePersistentBuffer(
                                            sizeof(tflite::GreedyMemoryPlanner), alignof(tflite::GreedyMemoryPlanner))
                                      : nullptr;
  if (!planner_memory) {
    snprintf(why, why_size, "arena of %u bytes too small for the allocator", (unsigned)arena_bytes);
    return false;
  }
  auto* planner = new (planner_memory) tflite::GreedyMemoryPlanner();
  tflite::MicroAllocator* allocator = tflite::MicroAllocator::Create(g_buffers, planner);
  g_interpreter = new (g_interpreter_memory) tflite::MicroInterpreter(g_model, *g_resolver, allocator, nullptr, profiler);
  if (g_interpreter->AllocateTensors() != kTfLiteOk) {
    snprintf(why, why_size, "AllocateTensors failed in an arena of %u bytes (build with a larger make ARENA_BYTES=)",
             (unsigned)arena_bytes);
    NetworkTeardown();
    return false;
  }
  TfLiteTensor* input = g_interpreter->input(0);
  TfLiteTensor* output = g_interpreter->output(0);
  if (input->type != kTfLiteInt8 || output->type != kTfLiteInt8 ||
      input->bytes != (size_t)ASC_N_MELS * ASC_N_FRAMES || output->bytes != (size_t)ASC_N_CLASSES) {
    snprintf(why, why_size, "the network's input/output are not int8 [%d x %d] / [%d]", ASC_N_MELS,
             ASC_N_FRAMES, ASC_N_CLASSES);
    NetworkTeardown();
    return false;
  }
  return true;
}

void NetworkTeardown() {
  if (g_interpreter) g_interpreter->~MicroInterpreter();
  g_interpreter = nullptr;
}

int8_t* NetworkInput(size_t* bytes) {
  TfLiteTensor* t = g_interpreter->input(0);
  if (bytes) *bytes = t->bytes;
  return t->data.int8;
}

const int8_t* NetworkOutput(size_t* count) {
  TfLiteTensor* t = g_interpreter->output(0);
  if (count) *count = t->bytes;
  return t->data.int8;
}

void* NetworkScratch(size_t bytes) {
  // Before Invoke the planned (head) region holds nothing but the input tensor: the rest is free.
  uint8_t* head = tflite::AlignPointerUp(g_arena, tflite::MicroArenaBufferAlignment());
  uint8_t* head_end = head + g_buffers->GetNonPersistentUsedBytes();
  uint8_t* tail = g_arena + g_arena_bytes - g_buffers->GetPersistentUsedBytes();
  size_t in_bytes;
  uint8_t* in = reinterpret_cast<uint8_t*>(NetworkInput(&in_bytes));
  uint8_t* candidates[3][2] = {{head, in}, {in + in_bytes, head_end}, {head_end, tail}};
  for (auto& c : candidates) {
    uint8_t* start = tflite::AlignPointerUp(c[0], 8);
    if (c[1] > start && static_cast<size_t>(c[1] - start) >= bytes) return start;
  }
  return nullptr;
}

bool NetworkInvoke() { return g_interpreter->Invoke() == kTfLiteOk; }

ArenaFigures NetworkArena() {
  ArenaFigures f;
  f.size = g_arena_bytes;
  f.used = g_interpreter->arena_used_bytes();
  f.non_persistent = g_buffers->GetNonPersistentUsedBytes();
  f.persistent = g_buffers->GetPersistentUsedBytes();
  return f;
}

int NetworkOpCount() {
  const tflite::Model* model = tflite::GetModel(asc_network_int8);
  return static_cast<int>(model->subgraphs()->Get(0)->operators()->size());
}

static int AppendShape(const tflite::SubGraph* graph, int tensor, char* text, int size) {
  const auto* shape = graph->tensors()->Get(tensor)->shape();
  int n = 0;
  for (unsigned d = 0; shape && d < shape->size() && n < size; ++d)
    n += snprintf(text + n, size - n, d ? "x%d" : "%d", static_cast<int>(shape->Get(d)));
  return n;
}

void NetworkOpShapes(int index, char* text, int size) {
  const tflite::Model* model = tflite::GetModel(asc_network_int8);
  const tflite::SubGraph* graph = model->subgraphs()->Get(0);
  const tflite::Operator* op = graph->operators()->Get(index);
  int n = 0;
  text[0] = '\0';
  for (unsigned i = 0; i < op->inputs()->size() && n < size - 1; ++i) {
    int t = op->inputs()->Get(i);
    if (t < 0) continue;
    if (i && n < size - 1) text[n++] = ';';
    n += AppendShape(graph, t, text + n, size - n);
  }
  if (n < size - 3) n += snprintf(text + n, size - n, "->");
  if (n < size - 1) AppendShape(graph, op->outputs()->Get(0), text + n, size - n);
}
