/**
 * log: levelled logging to one sink (stderr by default).
 *
 * LOG_ERROR/WARN/INFO/DEBUG(fmt, ...) check the level *before* evaluating their
 * arguments, so a disabled DEBUG line costs one load and a compare. Each line carries a
 * UTC timestamp, the level and the calling thread's tag (log_set_thread("w0"),
 * "acceptor", "store"), and is written with one write(2) so lines from different threads
 * never interleave.
 *
 * Two line formats (log_format in cimd's configuration):
 *  - text (the default): "2026-11-22T01:25:29.662Z info  [w0] message";
 *  - JSON lines (log_use_json, in log_json.c, which alone needs jansson): one object per
 *    line, {"time": "2026-11-22T01:25:29.662Z", "level": "info", "thread": "w0",
 *    "event": "message", "fields": {...}}. time is RFC 3339 in UTC with milliseconds;
 *    event is the whole message text, unchanged; fields holds every word of the message
 *    of the form name=value (name: a letter or '_', then letters, digits, '_' or '.';
 *    value: up to the next blank, or a "double-quoted" string; a , or ; ending an
 *    unquoted value is punctuation, not value; "name=" with nothing after it is prose),
 *    a decimal integer value as a JSON number, any other as a string; a name given twice
 *    keeps its last value. Bytes that are not UTF-8 become '?'; a message that would not
 *    fit a line once escaped keeps its first 255 bytes and no fields. So a call that
 *    wants a value machine-readable writes it as name=value: LOG_INFO("store: batch
 *    n=%zu ms=%llu", ...). Messages keep their prose; nothing else is parsed out of them.
 *
 * LOG_RL(level, fmt, ...) is for hot-path errors a peer can trigger: at most one line per
 * second per call site, followed by how many were suppressed.
 *
 * Never log message bodies, tokens or secrets.
 *
 * Threading: log_set_level / log_set_fd / log_use_json are for startup, before other
 * threads run; the LOG_* macros and log_set_thread are thread-safe.
 */
#ifndef CIM_CORE_LOG_H
#define CIM_CORE_LOG_H

#include <stdatomic.h>
#include <stdint.h>

enum { LOG_LVL_ERROR = 0, LOG_LVL_WARN = 1, LOG_LVL_INFO = 2, LOG_LVL_DEBUG = 3 };
enum { LOG_FMT_TEXT = 0, LOG_FMT_JSON = 1 };

extern int log_level; /* immutable after startup */

/**
 * Parse a level name ("error", "warn", "info", "debug").
 * @param[out] out  the level, written only on success.
 * @return 0, or RC_EINVAL for an unknown name.
 */
int log_level_parse(const char *name, int *out);

/** Set the minimum level printed (startup only). */
void log_set_level(int level);

/** Send log lines to @p fd instead of stderr (startup only; the fd stays the caller's). */
void log_set_fd(int fd);

/**
 * Write JSON lines from now on (see above). Defined in log_json.c, so that only programs
 * that call it link jansson (libcim does not). Startup only, before other threads run.
 */
void log_use_json(void);

/** Tag the calling thread's lines with @p tag (a string that outlives the thread). */
void log_set_thread(const char *tag);

/** Write one line; use the LOG_* macros instead. */
void log_write(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Rate limiter state of one call site; used by LOG_RL. */
typedef struct log_rl {
    _Atomic uint64_t next_ms;    /* earliest time the next line may print */
    _Atomic uint32_t suppressed; /* lines dropped since the last one printed */
} log_rl_t;

/** @return true when the call site may print now; sets @p *dropped to the count skipped. */
int log_rl_allow(log_rl_t *rl, uint32_t *dropped);

#define LOG_AT(lvl, ...)                                                                   \
    do {                                                                                   \
        if ((lvl) <= log_level)                                                            \
            log_write((lvl), __VA_ARGS__);                                                 \
    } while (0)

#define LOG_ERROR(...) LOG_AT(LOG_LVL_ERROR, __VA_ARGS__)
#define LOG_WARN(...)  LOG_AT(LOG_LVL_WARN, __VA_ARGS__)
#define LOG_INFO(...)  LOG_AT(LOG_LVL_INFO, __VA_ARGS__)
#define LOG_DEBUG(...) LOG_AT(LOG_LVL_DEBUG, __VA_ARGS__)

#define LOG_RL(lvl, fmt, ...)                                                              \
    do {                                                                                   \
        static log_rl_t rl_;                                                               \
        uint32_t dropped_;                                                                 \
        if ((lvl) <= log_level && log_rl_allow(&rl_, &dropped_))                           \
            log_write((lvl), fmt " (%u similar suppressed)", ##__VA_ARGS__, dropped_);     \
    } while (0)

#endif
