/* libFuzzer target fuzz_frame: frame reassembly (frame_rd_feed, src/core/frame.c) under
 * arbitrary chunking, frame limits that change between chunks, callbacks that stop the
 * feed or overwrite the frame they are given, checked against a one-pass model of the
 * stream (PROTOCOL.md §1).
 *
 * Input: [flags u8][a u16][b u16][stop u8][n u8][n chunk bytes][stream...], big-endian.
 *   flags bits 0..1  the first limit A: 0 FRAME_HANDSHAKE_MAX, 1 8 + FRAME_MAX_BODY + 16
 *                    (the session's two), 2 the value a (0..65535: below 8 too),
 *                    3 16 MiB - a (beyond any max_body: lengths far past a chunk);
 *         bits 2..3  the second limit B, the same way from b;
 *         bit 4      the callback returns STOP_RC at frame number `stop` (0-based);
 *         bit 5      the callback overwrites every frame it is given (as decryption
 *                    in place does), which must not disturb what follows.
 *   chunk byte: bits 0..6 a chunk size (0 feeds nothing), bit 7 feed it with limit B
 *   (else A); the sizes repeat until the stream is fed. No chunk bytes (or only sizes 0):
 *   the whole stream in one chunk with limit A.
 *
 * Oracle: the frames delivered (type, length and bytes), the return code and the bytes
 * left pending equal the model's, where a header is judged with the limit of the chunk
 * holding its last byte; frame_type_known / frame_type_from_client agree with the table
 * of PROTOCOL.md §4 below for every header seen. ASan checks that nothing is read outside
 * the chunk or the kept partial frame (sized to that frame). */
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/be.h"
#include "core/frame.h"
#include "core/rc.h"
#include "fuzz/targets.h"

#define STOP_RC 7
#define HDR_IN  7 /* input bytes before the chunk list */

/* PROTOCOL.md §4, written out again here so that the frame module is checked against the
 * specification rather than against itself: type, sent by clients. */
static const struct {
    uint32_t type;
    bool from_client;
} spec[] = {
    {0x0001, true},  {0x0002, false}, {0x0003, false}, {0x0101, true},  {0x0102, false},
    {0x0103, true},  {0x0104, false}, {0x0105, true},  {0x0106, false}, {0x0201, true},
    {0x0202, false}, {0x0203, false}, {0x0204, true},  {0x0205, true},  {0x0206, false},
    {0x0207, true},  {0x0208, false}, {0x0301, true},  {0x0302, false}, {0x0303, true},
    {0x0304, false}, {0x0305, true},  {0x0306, false}, {0x0307, false}, {0x0401, true},
    {0x0402, false}, {0x0403, true},  {0x0404, false}, {0x0405, true},  {0x0406, false},
    {0x0407, true},  {0x0408, false}, {0x0409, true},  {0x040A, false}, {0x040B, true},
    {0x040C, false}, {0x040D, true},  {0x040E, false}, {0x040F, true},  {0x0410, false},
    {0x0501, true},  {0x0502, false}, {0x0503, true},  {0x0504, false}, {0x0505, true},
    {0x0506, false}, {0x0507, true},  {0x0508, false}, {0x0509, true},  {0x050A, false},
};

static __attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz_frame: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    abort();
}

/* The specification's view of a type: -1 unknown, else whether clients send it. */
static int spec_type(uint32_t type)
{
    for (size_t i = 0; i < sizeof(spec) / sizeof(spec[0]); i++)
        if (spec[i].type == type)
            return spec[i].from_client;
    return -1;
}

static void check_type(uint32_t type)
{
    int want = spec_type(type);

    if (frame_type_known(type) != (want >= 0))
        fail("frame_type_known(0x%x) disagrees with PROTOCOL.md", type);
    if (frame_type_from_client(type) != (want == 1))
        fail("frame_type_from_client(0x%x) disagrees with PROTOCOL.md", type);
}

static uint32_t pick_limit(unsigned sel, uint16_t v)
{
    switch (sel & 3) {
    case 0:
        return FRAME_HANDSHAKE_MAX;
    case 1:
        return FRAME_HDR + FRAME_MAX_BODY + FRAME_TAG;
    case 2:
        return v;
    default:
        return (16u << 20) - v;
    }
}

typedef struct plan {
    const uint8_t *sizes; /* chunk bytes */
    size_t nsizes;
    uint32_t lim[2]; /* A, B */
} plan_t;

/* The chunk that holds stream byte @p off, as the feed below cuts the stream: its limit. */
static uint32_t limit_at(const plan_t *pl, size_t off)
{
    size_t pos = 0, i = 0;

    if (pl->nsizes == 0)
        return pl->lim[0];
    for (;; i = (i + 1) % pl->nsizes) {
        size_t k = pl->sizes[i] & 0x7f;
        if (off < pos + k)
            return pl->lim[pl->sizes[i] >> 7];
        pos += k;
    }
}

typedef struct model_frame {
    size_t off;
    uint32_t len, type;
} model_frame_t;

typedef struct run {
    const uint8_t *stream; /* the pristine stream: the fed copy may be overwritten */
    const model_frame_t *want;
    size_t nwant;
    size_t got;
    bool stop;
    size_t stop_at;
    bool scribble;
} run_t;

static int on_frame(void *ctx, uint32_t type, uint8_t *frame, uint32_t len)
{
    run_t *r = ctx;
    const model_frame_t *w;

    if (r->got == r->nwant)
        fail("frame %zu delivered; the model has %zu", r->got + 1, r->nwant);
    w = &r->want[r->got];
    if (type != w->type || len != w->len)
        fail("frame %zu: type 0x%x len %u, model 0x%x len %u", r->got, type, len, w->type, w->len);
    if (memcmp(frame, r->stream + w->off, len) != 0)
        fail("frame %zu (offset %zu, %u bytes): bytes differ from the stream", r->got, w->off, len);
    if (r->scribble)
        memset(frame, 0xee, len);
    r->got++;
    if (r->stop && r->got - 1 == r->stop_at)
        return STOP_RC;
    return 0;
}

int fuzz_frame_input(const uint8_t *data, size_t size)
{
    plan_t pl;
    run_t r = {0};
    model_frame_t *want = NULL;
    uint8_t *copy = NULL;
    const uint8_t *stream;
    size_t n, off = 0, nwant = 0, pending, pos, i;
    int want_rc = 0, rc = 0;
    frame_rd_t rd;
    bool any = false;

    if (size < HDR_IN)
        return 0;
    pl.lim[0] = pick_limit(data[0], (uint16_t)(data[1] << 8 | data[2]));
    pl.lim[1] = pick_limit(data[0] >> 2, (uint16_t)(data[3] << 8 | data[4]));
    r.stop = data[0] & 0x10;
    r.scribble = data[0] & 0x20;
    r.stop_at = data[5];
    pl.nsizes = data[6] < size - HDR_IN ? data[6] : size - HDR_IN;
    pl.sizes = data + HDR_IN;
    stream = pl.sizes + pl.nsizes;
    n = (size_t)(data + size - stream);
    for (i = 0; i < pl.nsizes; i++)
        any |= (pl.sizes[i] & 0x7f) != 0;
    if (!any)
        pl.nsizes = 0; /* nothing would ever be fed: one chunk */

    /* The model: one pass over the whole stream. */
    want = malloc((n / FRAME_HDR + 1) * sizeof(*want));
    if (want == NULL)
        abort();
    while (n - off >= FRAME_HDR) {
        uint32_t len = be32_get(stream + off), type = be32_get(stream + off + 4);
        uint32_t lim = limit_at(&pl, off + FRAME_HDR - 1);
        check_type(type);
        if (len < FRAME_HDR) {
            want_rc = RC_EPROTO;
            break;
        }
        if (len > lim) {
            want_rc = RC_ETOOBIG;
            break;
        }
        if (spec_type(type) < 0) {
            want_rc = RC_EPROTO;
            break;
        }
        if (len > n - off)
            break; /* a partial frame: kept */
        want[nwant++] = (model_frame_t){off, len, type};
        off += len;
        if (r.stop && nwant - 1 == r.stop_at) {
            want_rc = STOP_RC;
            break;
        }
    }
    pending = n - off;

    /* The feed, chunk by chunk, from a copy of exactly the stream's size. */
    copy = malloc(n ? n : 1);
    if (copy == NULL)
        abort();
    memcpy(copy, stream, n);
    r.stream = stream;
    r.want = want;
    r.nwant = nwant;
    frame_rd_init(&rd);
    for (pos = 0, i = 0; pos < n; i = pl.nsizes ? (i + 1) % pl.nsizes : 0) {
        size_t k = pl.nsizes ? pl.sizes[i] & 0x7f : n;
        uint32_t lim = pl.nsizes ? pl.lim[pl.sizes[i] >> 7] : pl.lim[0];
        if (k > n - pos)
            k = n - pos;
        if ((rc = frame_rd_feed(&rd, copy + pos, k, lim, on_frame, &r)) != 0)
            break;
        pos += k;
    }
    if (rc != want_rc)
        fail("feed returned %d (%s), the model %d (%s), after %zu frames", rc, rc_str(rc), want_rc,
             rc_str(want_rc), r.got);
    if (r.got != nwant)
        fail("%zu frames delivered, the model has %zu", r.got, nwant);
    if (rc == 0 && frame_rd_pending(&rd) != pending)
        fail("%zu bytes pending, the model has %zu", frame_rd_pending(&rd), pending);
    frame_rd_close(&rd);
    if (frame_rd_pending(&rd) != 0)
        fail("bytes pending after frame_rd_close");
    free(copy);
    free(want);
    return 0;
}

#ifdef CIM_FUZZ_TARGET
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_frame_input(data, size);
}
#endif
