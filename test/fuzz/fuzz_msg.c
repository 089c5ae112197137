/* libFuzzer target fuzz_msg: SEND, PUSH_ACK and SYNC of a logged-in session (mode 2).
 * The session harness (harness.h) with the family filter FUZZ_FAM_MSG: only those frame
 * types, so the fuzzer's time goes to their body decoding and handlers. Run:
 * build/fuzz/bin/fuzz_msg NEW_DIR test/fuzz/corpus-fuzz_msg (docs/FUZZING.md). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz/harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_family_input(FUZZ_FAM_MSG, data, size);
}
