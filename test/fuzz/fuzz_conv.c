/* libFuzzer target fuzz_conv: READ, RECALL, HISTORY, CONV_LIST, the contact requests,
 * BLOCK and UNBLOCK of a logged-in session (mode 2). The session harness (harness.h)
 * with the family filter FUZZ_FAM_CONV: only those frame types, so the fuzzer's time
 * goes to their body decoding and handlers. Run: build/fuzz/bin/fuzz_conv NEW_DIR
 * test/fuzz/corpus-fuzz_conv (docs/FUZZING.md). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz/harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_family_input(FUZZ_FAM_CONV, data, size);
}
