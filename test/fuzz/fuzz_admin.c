/* libFuzzer target fuzz_admin: the admin API's decoders of untrusted input
 * (src/actors/admin_parse.c, docs/ADMIN-API.md) — request paths, the bearer secret and
 * the JSON body of POST .../messages.
 *
 * Input: [mode u8][max u16 big-endian][bytes].
 *
 *   mode % 3 == 0  admin_split_path(bytes). Oracle: a model splits at '/' and decodes
 *                  %XX; the segment count and every segment equal the model's, or both
 *                  refuse; no segment holds a '/' that was not escaped, or a NUL.
 *   mode % 3 == 1  admin_hex32(bytes). Oracle: accepted exactly when the input is 64 hex
 *                  digits, and then the bytes print back to the same digits (lower case).
 *   mode % 3 == 2  admin_msg_parse(bytes, max_msg_bytes = max). Oracle: an accepted
 *                  request has a valid sender id, a valid user id (DIRECT) or canonical
 *                  group id (GROUP), a type within TEXT..CUSTOM (SYSTEM exactly when
 *                  system), a client_msg_id of 0..64 bytes, and a body of at most max
 *                  bytes; a refusal is 400 or 413 with a reason; the same input parses
 *                  the same way twice. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/admin_parse.h"
#include "actors/group.h"
#include "cim.pb.h"
#include "fuzz/targets.h"

#define SEGS 8

static __attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "fuzz_admin: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

static int hex(int c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The model: @return the number of segments, or -1. */
static int model_split(const uint8_t *p, size_t n, char out[SEGS][256], size_t lens[SEGS])
{
    int nseg = 0;
    size_t i = 0;
    if (n == 0 || p[0] != '/')
        return -1;
    while (i < n) {
        i++; /* '/' */
        if (nseg == SEGS)
            return -1;
        lens[nseg] = 0;
        while (i < n && p[i] != '/') {
            int c = p[i++];
            if (c == '%') {
                if (n - i < 2 || hex(p[i]) < 0 || hex(p[i + 1]) < 0)
                    return -1;
                c = hex(p[i]) << 4 | hex(p[i + 1]);
                i += 2;
            }
            if (c == 0 || lens[nseg] >= 255)
                return -1;
            out[nseg][lens[nseg]++] = (char)c;
        }
        nseg++;
    }
    return nseg;
}

static void check_split(const uint8_t *d, size_t n)
{
    char buf[4096], *seg[SEGS], want[SEGS][256];
    size_t lens[SEGS];
    int got = admin_split_path((const char *)d, n, buf, sizeof(buf), seg, SEGS);
    int exp = n < 200 ? model_split(d, n, want, lens) : -2; /* the model's room: short paths */

    if (exp == -2)
        return;
    if (got != exp)
        fail("split_path gave %d segments, the model %d", got, exp);
    for (int i = 0; i < got; i++)
        if (strlen(seg[i]) != lens[i] || memcmp(seg[i], want[i], lens[i]) != 0)
            fail("segment %d differs from the model", i);
}

static void check_hex(const uint8_t *d, size_t n)
{
    uint8_t out[32];
    char back[65];
    bool want = n == 64;
    for (size_t i = 0; want && i < n; i++)
        want = hex(d[i]) >= 0;
    if ((admin_hex32((const char *)d, n, out) == 0) != want)
        fail("hex32 %s 64 hex digits", want ? "refused" : "accepted other than");
    if (!want)
        return;
    for (size_t i = 0; i < 32; i++)
        snprintf(back + 2 * i, 3, "%02x", out[i]);
    for (size_t i = 0; i < 64; i++)
        if (back[i] != (d[i] >= 'A' && d[i] <= 'F' ? d[i] - 'A' + 'a' : d[i]))
            fail("hex32 did not round-trip");
}

static void check_msg(const uint8_t *d, size_t n, uint32_t max)
{
    admin_msg_t m, again;
    char why[256], why2[256];
    uint64_t gid;
    int rc = admin_msg_parse((const char *)d, n, max, &m, why, sizeof(why));
    int rc2 = admin_msg_parse((const char *)d, n, max, &again, why2, sizeof(why2));

    if (rc != rc2)
        fail("parsed %d then %d", rc, rc2);
    if (rc != 0) {
        if ((rc != 400 && rc != 413) || why[0] == '\0')
            fail("refusal %d with reason '%s'", rc, why);
        return;
    }
    if (!kv_id_valid(m.from))
        fail("accepted a bad sender");
    if (m.conv_type == cim_ConvType_DIRECT ? !kv_id_valid(m.to)
        : m.conv_type == cim_ConvType_GROUP ? group_id_parse(m.to, &gid) < 0
                                             : true)
        fail("accepted a bad recipient");
    if (m.system != (m.msg_type == cim_MsgType_SYSTEM) ||
        (!m.system && (m.msg_type < cim_MsgType_TEXT || m.msg_type > cim_MsgType_CUSTOM)))
        fail("accepted type %d (system %d)", m.msg_type, m.system);
    if (strlen(m.cmid) > 64 || m.body_len > max || (m.body_len > 0 && m.body == NULL))
        fail("accepted an oversize field");
    if (again.body_len != m.body_len || memcmp(again.body, m.body, m.body_len) != 0)
        fail("the body differs between two parses");
    admin_msg_free(&m);
    admin_msg_free(&again);
}

int fuzz_admin_input(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    switch (data[0] % 3) {
    case 0: check_split(data + 3, size - 3); break;
    case 1: check_hex(data + 3, size - 3); break;
    default: check_msg(data + 3, size - 3, (uint32_t)data[1] << 8 | data[2]); break;
    }
    return 0;
}

#ifdef CIM_FUZZ_TARGET
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_admin_input(data, size);
}
#endif
