/* jv: cimdump's JSON values, on jansson (jv.h). */
#include "cmd/cimdump/jv.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cimdump/dump_int.h"
#include "core/mem.h"

/* jansson's allocator hook wants malloc's shape; mem_alloc aborts on OOM. */
static void *jv_alloc(size_t n)
{
    return mem_alloc(n > 0 ? n : 1);
}

void jv_init(void)
{
    json_set_alloc_funcs(jv_alloc, mem_free);
}

/* A NULL here is a programmer error (see jv.h): nothing sensible can follow. */
static json_t *must(json_t *v)
{
    if (v == NULL)
        abort();
    return v;
}

json_t *jv_obj(void)
{
    return must(json_object());
}

json_t *jv_arr(void)
{
    return must(json_array());
}

void jv_set(json_t *obj, const char *key, json_t *v)
{
    if (json_object_set_new(obj, key, must(v)) != 0)
        abort(); /* not an object, or a key that is not UTF-8: a programmer error */
}

void jv_push(json_t *arr, json_t *v)
{
    if (json_array_append_new(arr, must(v)) != 0)
        abort();
}

json_t *jv_text(const void *s, size_t n)
{
    static const uint8_t fffd[3] = {0xef, 0xbf, 0xbd};
    const uint8_t *b = s;
    uint8_t *clean;
    size_t at = 0, l;
    json_t *v;

    if (dump__utf8_valid(b, n))
        return must(json_stringn(s, n));
    /* Not UTF-8, or holding a NUL (kept: jansson writes \u0000): at most three bytes
     * (U+FFFD) for each byte that is not UTF-8. */
    clean = mem_alloc(3 * n);
    for (size_t i = 0; i < n; i += l) {
        if ((l = dump__utf8_seq(b + i, n - i, NULL)) == 0) {
            memcpy(clean + at, fffd, sizeof(fffd));
            at += sizeof(fffd);
            l = 1;
        } else {
            memcpy(clean + at, b + i, l);
            at += l;
        }
    }
    v = must(json_stringn((const char *)clean, at));
    mem_free(clean);
    return v;
}

json_t *jv_str(const char *s)
{
    return jv_text(s, strlen(s));
}

json_t *jv_u64(uint64_t v)
{
    return must(json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v));
}

json_t *jv_id(uint64_t v)
{
    char buf[24];

    snprintf(buf, sizeof(buf), "%" PRIu64, v);
    return must(json_string(buf));
}

json_t *jv_id_or_null(uint64_t v)
{
    return v == 0 ? must(json_null()) : jv_id(v);
}

json_t *jv_fixed(double v, int decimals)
{
    double scale = pow(10, decimals);

    return must(json_real(round(v * scale) / scale));
}

json_t *jv_ratio(uint64_t num, uint64_t den)
{
    return den == 0 ? must(json_null()) : jv_fixed((double)num / (double)den, 1);
}

json_t *jv_hex(const uint8_t *b, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    char *hex = mem_alloc(2 * n + 1);
    json_t *v;

    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[b[i] >> 4];
        hex[2 * i + 1] = digits[b[i] & 0xf];
    }
    v = must(json_stringn(hex, 2 * n));
    mem_free(hex);
    return v;
}

int jv_dump(const json_t *doc, FILE *f)
{
    /* 15 significant digits: every value jv_fixed rounded prints in its short form
     * (1365.3, not 1365.2999999999999545). */
    if (json_dumpf(doc, f, JSON_COMPACT | JSON_REAL_PRECISION(15)) != 0 || fputc('\n', f) == EOF)
        return -EIO;
    return 0;
}
