/**
 * str: copying a NUL-terminated string into a fixed buffer, cut to fit.
 *
 * The same result as snprintf(dst, size, "%s", src), without the format machinery: the
 * message path copies a few ids per message, and snprintf's cost showed in the writer's
 * profile (docs/BENCHMARKS.md).
 */
#ifndef CIM_CORE_STR_H
#define CIM_CORE_STR_H

#include <stddef.h>
#include <string.h>

/** Copy @p src into @p dst of @p size bytes (> 0), cut to size - 1 bytes, always
 * terminated. */
static inline void str_copy(char *dst, size_t size, const char *src)
{
    size_t n = strnlen(src, size - 1);
    memcpy(dst, src, n);
    dst[n] = '\0';
}

#endif
