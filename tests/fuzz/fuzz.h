/* fuzz.h - what the libFuzzer harnesses (tests/fuzz/fuzz_*.c) share: the
 * entry point's declaration and CHECK, a property that must hold for every
 * input. A failed CHECK aborts, which libFuzzer reports as a crash and
 * keeps the input; assert() is not used because NDEBUG would silence it. */
#ifndef PIPEFILED_FUZZ_H
#define PIPEFILED_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: property does not hold: %s\n", __FILE__,         \
              __LINE__, #cond);                                                \
      abort();                                                                 \
    }                                                                          \
  } while (0)

#endif
