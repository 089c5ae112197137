/* libFuzzer target: arbitrary bytes into one session's input path (harness.h has the
 * input format). Build: scons variant=fuzz; run:
 *   build/fuzz/bin/fuzz_session -max_total_time=60 NEW_DIR test/fuzz/corpus-fuzz_session
 * (new units go to the first directory; the committed seeds are only read). */
#include <stddef.h>
#include <stdint.h>

#include "fuzz/harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_session_input(data, size);
}
