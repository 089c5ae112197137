/* dump: output helpers: the JSON writer, text for a terminal, times and sizes. */
#include <string.h>
#include <time.h>

#include "cmd/cimdump/dump_int.h"


/* The length of the valid UTF-8 sequence at @p s (n bytes available), 0 when invalid:
 * overlong forms, surrogates and code points past U+10FFFF are invalid (RFC 3629). */
static size_t utf8_seq(const uint8_t *s, size_t n, uint32_t *cp)
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
        if (s[i] == 0 || (l = utf8_seq(s + i, n - i, NULL)) == 0)
            return false;
    return true;
}

/* Write @p n bytes as a JSON string: '"' and '\' escaped, control characters as \n etc. or
 * \u00XX, valid UTF-8 as is, and each byte that is not valid UTF-8 as U+FFFD (JSON text is
 * UTF-8; bodies that are not text are shown in hex instead, so nothing is lost there). */
static void json_string(FILE *f, const uint8_t *s, size_t n)
{
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t l;
        if (c == '"' || c == '\\') {
            fputc('\\', f);
            fputc(c, f);
            i++;
        } else if (c < 0x20) {
            switch (c) {
            case '\b':
                fputs("\\b", f);
                break;
            case '\f':
                fputs("\\f", f);
                break;
            case '\n':
                fputs("\\n", f);
                break;
            case '\r':
                fputs("\\r", f);
                break;
            case '\t':
                fputs("\\t", f);
                break;
            default:
                fprintf(f, "\\u%04x", c);
                break;
            }
            i++;
        } else if (c < 0x80) {
            fputc(c, f);
            i++;
        } else if ((l = utf8_seq(s + i, n - i, NULL)) > 0) {
            fwrite(s + i, 1, l, f);
            i += l;
        } else {
            fputs("\\ufffd", f);
            i++;
        }
    }
    fputc('"', f);
}

/* Write the ',' a value needs after a sibling, then its key. Documents nest at most four
 * deep here; JW_DEPTH leaves room, and deeper levels (never reached) would only lose their
 * commas, never write out of bounds. */
void jw_sep(jw_t *w, const char *key)
{
    if (w->depth > 0 && w->depth <= JW_DEPTH) {
        if (w->comma[w->depth - 1])
            fputc(',', w->f);
        w->comma[w->depth - 1] = true;
    }
    if (key != NULL) {
        json_string(w->f, (const uint8_t *)key, strlen(key));
        fputc(':', w->f);
    }
}

/* Open an object ('{') or array ('['), as member @p key of the enclosing object (NULL in
 * an array or at the top). */
void jw_open(jw_t *w, const char *key, char open)
{
    jw_sep(w, key);
    fputc(open, w->f);
    if (w->depth < JW_DEPTH)
        w->comma[w->depth] = false;
    w->depth++;
}

void jw_close(jw_t *w, char close)
{
    w->depth--;
    fputc(close, w->f);
}

void jw_strn(jw_t *w, const char *key, const void *s, size_t n)
{
    jw_sep(w, key);
    json_string(w->f, s, n);
}

void jw_str(jw_t *w, const char *key, const char *s)
{
    jw_strn(w, key, s, strlen(s));
}

void jw_u64(jw_t *w, const char *key, uint64_t v)
{
    jw_sep(w, key);
    fprintf(w->f, "%llu", (unsigned long long)v);
}

/* 64-bit ids are strings: JSON readers commonly hold numbers as doubles, exact only up to
 * 2^53, and SnowFlake ids are larger (proto3's JSON mapping does the same for uint64). */
void jw_id(jw_t *w, const char *key, uint64_t v)
{
    jw_sep(w, key);
    fprintf(w->f, "\"%llu\"", (unsigned long long)v);
}

/* An id, or null when it is 0 ("none"). */
void jw_id_or_null(jw_t *w, const char *key, uint64_t v)
{
    jw_sep(w, key);
    if (v == 0)
        fputs("null", w->f);
    else
        fprintf(w->f, "\"%llu\"", (unsigned long long)v);
}

void jw_bool(jw_t *w, const char *key, bool v)
{
    jw_sep(w, key);
    fputs(v ? "true" : "false", w->f);
}

void jw_null(jw_t *w, const char *key)
{
    jw_sep(w, key);
    fputs("null", w->f);
}

/* A ratio with one decimal, or null when there is none (@p den 0). */
void jw_ratio(jw_t *w, const char *key, uint64_t num, uint64_t den)
{
    jw_sep(w, key);
    if (den == 0)
        fputs("null", w->f);
    else
        fprintf(w->f, "%.1f", (double)num / (double)den);
}

void jw_hex(jw_t *w, const char *key, const uint8_t *b, size_t n)
{
    jw_sep(w, key);
    fputc('"', w->f);
    for (size_t i = 0; i < n; i++)
        fprintf(w->f, "%02x", b[i]);
    fputc('"', w->f);
}

/* ---- text helpers ------------------------------------------------------------------- */

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
        } else if ((l = utf8_seq(s + i, n - i, &cp)) > 0) {
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
