/* dump: output helpers: UTF-8, text for a terminal, times and sizes (JSON: jv.h). */
#include <string.h>
#include <time.h>

#include "cmd/cimdump/dump_int.h"

/* The length of the valid UTF-8 sequence at @p s (n bytes available), 0 when invalid:
 * overlong forms, surrogates and code points past U+10FFFF are invalid (RFC 3629). */
size_t dump__utf8_seq(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint32_t c;
    size_t len;

    if (s[0] < 0x80) {
        len = 1;
        c = s[0];
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        c = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        c = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
        (c >= 0xd800 && c <= 0xdfff))
        return 0;
    if (cp != NULL)
        *cp = c;
    return len;
}

/* @return true when all @p n bytes are valid UTF-8 without NUL. */
bool dump__utf8_valid(const uint8_t *s, size_t n)
{
    for (size_t i = 0, l; i < n; i += l)
        if (s[i] == 0 || (l = dump__utf8_seq(s + i, n - i, NULL)) == 0)
            return false;
    return true;
}

/* Write @p n bytes for a terminal: printable ASCII and printable UTF-8 as is; '\' and '"'
 * escaped with '\';
 * control characters, C1 controls and bytes that are not UTF-8 escaped (\n, \xNN, \uNNNN),
 * so stored data can never drive the terminal. At most @p max characters (0: no limit),
 * then "...". */
void dump__text_put(FILE *f, const uint8_t *s, size_t n, size_t max)
{
    size_t chars = 0;

    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t l;
        if (max > 0 && chars >= max) {
            fputs("...", f);
            return;
        }
        chars++;
        if (c == '\\' || c == '"') {
            fputc('\\', f);
            fputc(c, f);
        } else if (c == '\n') {
            fputs("\\n", f);
        } else if (c == '\t') {
            fputs("\\t", f);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(f, "\\x%02x", c);
        } else if (c < 0x80) {
            fputc(c, f);
        } else if ((l = dump__utf8_seq(s + i, n - i, &cp)) > 0) {
            if (cp < 0xa0 || cp == 0x2028 || cp == 0x2029 || (cp >= 0x202a && cp <= 0x202e))
                fprintf(f, "\\u%04x", (unsigned)cp);
            else
                fwrite(s + i, 1, l, f);
            i += l;
            continue;
        } else {
            fprintf(f, "\\x%02x", c);
        }
        i++;
    }
}

void dump__text_str(FILE *f, const char *s)
{
    dump__text_put(f, (const uint8_t *)s, strlen(s), 0);
}

/* "2026-01-02T03:04:05.678Z" (UTC, ms); "-" for 0. */
void dump__fmt_time(char out[32], uint64_t ms)
{
    struct tm tm;
    time_t t = (time_t)(ms / 1000);
    size_t n;

    if (ms == 0 || gmtime_r(&t, &tm) == NULL) {
        snprintf(out, 32, "-");
        return;
    }
    n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(ms % 1000));
}

/* "1.25 MiB" */
void dump__fmt_bytes(char out[32], uint64_t v)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double d = (double)v;
    int u = 0;

    while (d >= 1024 && u < 5) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, 32, "%llu B", (unsigned long long)v);
    else
        snprintf(out, 32, "%.2f %s", d, units[u]);
}
