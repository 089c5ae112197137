/* libFuzzer target fuzz_session: arbitrary bytes into one session's input path, every mode
 * and every frame type (harness.h has the input format; docs/FUZZING.md how to run it):
 *   build/fuzz/bin/fuzz_session -max_total_time=60 NEW_DIR test/fuzz/corpus-fuzz_session
 * (new units go to the first directory; the committed seeds are only read). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz/harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_family_input(FUZZ_FAM_ALL, data, size);
}
