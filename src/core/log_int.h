/**
 * log internals shared by log.c and log_json.c.
 *
 * log.c formats the message; a line format other than text is a function that turns the
 * parts of one line into the bytes to write. log_json.c installs its own with
 * log_use_json() at startup; NULL (the default) means text. Immutable once threads run.
 */
#ifndef CIM_CORE_LOG_INT_H
#define CIM_CORE_LOG_INT_H

#include <stddef.h>
#include <time.h>

/**
 * Format one line into @p line, at most @p cap bytes, without the newline (the caller
 * appends it) and without a NUL.
 * @param[in] ts   the line's wall-clock time.
 * @param[in] msg  the formatted message, NUL-terminated.
 * @return the bytes written, without a NUL; 0 when nothing could be formatted (the caller
 *         then writes the line as text).
 */
typedef size_t (*log__fmt_fn)(char *line, size_t cap, int level, const char *thread,
                              const struct timespec *ts, const char *msg);

/** The line format in force; NULL: text. Set at startup only. */
extern log__fmt_fn log__fmt;

/** The level's name: "error", "warn", "info" or "debug" (out of range: clamped). */
const char *log__level_name(int level);

/** "YYYY-MM-DDTHH:MM:SS.mmmZ" of @p ts into @p out (at least 25 bytes). @return length. */
size_t log__time(char *out, size_t outlen, const struct timespec *ts);

#endif
