/* libFuzzer target fuzz_auth: the LOGIN state's LOGIN decoding and validation, and
 * LOGOUT and PING once logged in (modes 1 and 2). The session harness (harness.h) with
 * the family filter FUZZ_FAM_AUTH: only those frame types, so the fuzzer's time goes to
 * their body decoding and handlers. Run: build/fuzz/bin/fuzz_auth NEW_DIR
 * test/fuzz/corpus-fuzz_auth (docs/FUZZING.md). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz/harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_family_input(FUZZ_FAM_AUTH, data, size);
}
