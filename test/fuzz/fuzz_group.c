/* libFuzzer target fuzz_group: the GROUP_* requests of a logged-in session (mode 2).
 * The session harness (harness.h) with the family filter FUZZ_FAM_GROUP: only those
 * frame types, so the fuzzer's time goes to their body decoding and handlers. Run:
 * build/fuzz/bin/fuzz_group NEW_DIR test/fuzz/corpus-fuzz_group (docs/FUZZING.md). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz/harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_family_input(FUZZ_FAM_GROUP, data, size);
}
