/* libFuzzer target fuzz_bus: the public decoders of what other nodes put on the cluster's
 * NATS bus (docs/SCALING.md) — messages between homes, probes and watermarks
 * (src/actors/xhome.c), the online question and its answer (src/actors/xonline.c) — and of
 * the outbox entries an origin stores for its messages between homes.
 *
 * Input: [sel u8][bytes]. sel % 5 picks the decoder, sel / 5 is mode 2's parameter.
 *
 *   0  xhome_parse(bytes). Oracle: accepted exactly when a model of the format (xhome.h)
 *      accepts; every field is the input's, the strings, skip id, user list and record lie
 *      where the model puts them (inside the input, the record last and not empty);
 *      xhome_user walks exactly nusers users to the end of the list, then says no more;
 *      xhome_encode gives back the input byte for byte, and parsing that gives the same
 *      fields; the input cut before its record is refused.
 *   1  xhome_wm_parse(bytes). Oracle: accepted exactly when the model accepts; the pairs
 *      are the input's; xhome_wm_encode gives back the input; xhome_wm_seq finds each
 *      home's first pair, and 0 for a home the watermark does not name.
 *   2  xhome_outbox_each(bytes), the callback stopping (returning OUT_STOP) at its call
 *      number sel / 5 (0: never). Oracle: the calls and the return value are a model's:
 *      the whole entry once; or the parts of an XHOME_OUTBOX_MULTI in order; or RC_EPROTO
 *      and no call when a part overruns the entry. Then every part goes through mode 0.
 *   3  xonline_ask_parse(bytes). Oracle: accepted exactly when the model accepts; token,
 *      count and app are the input's; xonline_ask_user walks exactly n users, the input's,
 *      to the end, then says no more; xonline_ask_encode gives back the input.
 *   4  xonline_ans_parse(bytes). Oracle: accepted exactly when the model accepts (the
 *      length is the count's, no bit set past it); xonline_ans_get is each bit;
 *      xonline_ans_init plus xonline_ans_set of the set bits gives back the input.
 *
 * Every refusal must be RC_EPROTO. The models read the formats as xhome.h and xonline.h
 * state them, with their own byte reader and id check. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "actors/xhome.h"
#include "actors/xonline.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"
#include "fuzz/model.h"
#include "fuzz/targets.h"

#define MODES    5
#define OUT_STOP 0x57 /* what the outbox callback returns to stop the walk */

static __attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "fuzz_bus: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

/* @p rc, what decoder @p what returned for @p n bytes, must be 0 when the model accepts
 * them (@p ok), else RC_EPROTO. */
static void check_rc(const char *what, size_t n, int rc, bool ok)
{
    if (rc != (ok ? 0 : RC_EPROTO))
        fail("%s(%zu bytes) = %d, the model %s", what, n, rc, ok ? "accepts" : "refuses");
}

/* Is @p s (a parsed string) exactly the @p n bytes at @p p? */
static bool same_str(const char *s, const uint8_t *p, size_t n)
{
    return strlen(s) == n && memcmp(s, p, n) == 0;
}

/* ---- mode 0: XHOME_MSG, XHOME_PROBE ----------------------------------------------------- */

/* Where the model puts the parts of an accepted XHOME_MSG (offsets in the input). */
typedef struct xmodel {
    size_t skip;      /* the u64 session id (XHOME_F_SKIP), else 0 */
    size_t users;     /* the u32 count of users (XHOME_F_USERS), else 0 */
    size_t ulist_len; /* the bytes of the users after the count */
    size_t rec;       /* the record, to the end of the input */
} xmodel_t;

static bool model_xhome(const uint8_t *p, size_t n, xmodel_t *m)
{
    size_t off = XHOME_HDR;
    uint64_t id, origin, k;

    memset(m, 0, sizeof(*m));
    if (n < XHOME_HDR || p[1] != XHOME_VERSION || (p[0] != XHOME_MSG && p[0] != XHOME_PROBE) ||
        model_get(p + 12, 4) > SNOWFLAKE_NODE_MAX)
        return false;
    if (p[0] == XHOME_PROBE)
        return n == XHOME_HDR && p[2] == 0 && p[3] == 0 && p[4] == 0 && p[7] == 0;
    origin = model_get(p + 8, 4);
    id = model_get(p + 16, 8);
    if (origin > SNOWFLAKE_NODE_MAX || (p[7] & 0xf0) != 0 || id == 0 ||
        (id >> SNOWFLAKE_SEQ_BITS & SNOWFLAKE_NODE_MAX) != origin)
        return false;
    for (int i = 2; i <= 4; off += p[i], i++)
        if (n - off < p[i] || !model_id(p + off, p[i]))
            return false;
    if (p[7] & XHOME_F_SKIP) {
        if (n - off < 8)
            return false;
        m->skip = off;
        off += 8;
    }
    if (p[7] & XHOME_F_USERS) {
        if (n - off < 4 || (k = model_get(p + off, 4)) > XHOME_USERS_MAX)
            return false;
        m->users = off;
        for (off += 4; k > 0; off += 1 + p[off], k--)
            if (off >= n || n - off - 1 < p[off] || !model_id(p + off + 1, p[off]))
                return false;
        m->ulist_len = off - m->users - 4;
    }
    m->rec = off;
    return n > off && n - off <= XHOME_REC_MAX;
}

/* Do @p a and @p b (two parses) have the same fields and content? */
static bool same_msg(const xhome_msg_t *a, const xhome_msg_t *b)
{
    return a->kind == b->kind && a->conv_type == b->conv_type && a->msg_type == b->msg_type &&
           a->flags == b->flags && a->origin == b->origin && a->home == b->home && a->id == b->id &&
           strcmp(a->app, b->app) == 0 && strcmp(a->from, b->from) == 0 &&
           strcmp(a->to, b->to) == 0 && a->skip_sid == b->skip_sid && a->nusers == b->nusers &&
           a->ulist_len == b->ulist_len && a->rec_len == b->rec_len &&
           (a->ulist_len == 0 || memcmp(a->ulist, b->ulist, a->ulist_len) == 0) &&
           (a->rec_len == 0 || memcmp(a->rec, b->rec, a->rec_len) == 0);
}

/* @p m, parsed from @p p (@p n bytes), against the model's @p w. */
static void check_fields(const uint8_t *p, size_t n, const xhome_msg_t *m, const xmodel_t *w)
{
    size_t a = p[2], f = p[3], t = p[4];

    if (m->kind != p[0] || m->conv_type != p[5] || m->msg_type != p[6] || m->flags != p[7] ||
        m->origin != model_get(p + 8, 4) || m->home != model_get(p + 12, 4) ||
        m->id != model_get(p + 16, 8))
        fail("xhome_parse: a header field is not the input's");
    if (!same_str(m->app, p + XHOME_HDR, a) || !same_str(m->from, p + XHOME_HDR + a, f) ||
        !same_str(m->to, p + XHOME_HDR + a + f, t))
        fail("xhome_parse: app, from or to is not the input's");
    if (m->skip_sid != (w->skip != 0 ? model_get(p + w->skip, 8) : 0))
        fail("xhome_parse: skip_sid %" PRIu64 " is not the input's", m->skip_sid);
    if (w->users != 0 ? m->nusers != model_get(p + w->users, 4) || m->ulist != p + w->users + 4 ||
                            m->ulist_len != w->ulist_len
                      : m->nusers != 0 || m->ulist_len != 0)
        fail("xhome_parse: the user list (%u users, %zu bytes) is not where the input has it",
             m->nusers, m->ulist_len);
    if (m->kind == XHOME_PROBE ? m->rec_len != 0 : m->rec != p + w->rec || m->rec_len != n - w->rec)
        fail("xhome_parse: the record (%zu bytes) is not the rest of the input", m->rec_len);
}

/* Walk @p m's users with xhome_user into @p ids (m->nusers of them), against the list. */
static void walk_users(const xhome_msg_t *m, char (*ids)[KV_ID_MAX + 1], const char **ptrs)
{
    char spare[KV_ID_MAX + 1];
    size_t pos = 0, at;

    for (uint32_t k = 0; k < m->nusers; k++) {
        at = pos;
        if (!xhome_user(m, &pos, ids[k]))
            fail("xhome_user stopped at user %u of %u", k, m->nusers);
        if (pos != at + 1 + m->ulist[at] || pos > m->ulist_len ||
            !same_str(ids[k], m->ulist + at + 1, m->ulist[at]))
            fail("xhome_user: user %u is not the list's", k);
        ptrs[k] = ids[k];
    }
    if (pos != m->ulist_len || xhome_user(m, &pos, spare))
        fail("xhome_user: the list goes on past its %u users", m->nusers);
}

static void check_xhome(const uint8_t *p, size_t n)
{
    char(*ids)[KV_ID_MAX + 1] = NULL;
    const char **ptrs = NULL;
    xhome_msg_t m, e, again;
    uint8_t *out = NULL;
    size_t len = 0;
    xmodel_t w;
    bool ok = model_xhome(p, n, &w);
    int rc = xhome_parse(p, n, &m);

    check_rc("xhome_parse", n, rc, ok);
    if (!ok)
        return;
    check_fields(p, n, &m, &w);
    if (m.kind == XHOME_MSG && (rc = xhome_parse(p, w.rec, &again)) != RC_EPROTO)
        fail("xhome_parse of the message without its record = %d", rc);
    ids = mem_alloc((m.nusers + 1) * sizeof(*ids));
    ptrs = mem_alloc((m.nusers + 1) * sizeof(*ptrs));
    walk_users(&m, ids, ptrs);
    e = m;
    e.users = ptrs;
    if ((rc = xhome_encode(&e, &out, &len)) != 0)
        fail("xhome_encode of a parsed message = %d", rc);
    if (len != n || memcmp(out, p, n) != 0)
        fail("xhome_encode gave %zu bytes, not the %zu parsed", len, n);
    if ((rc = xhome_parse(out, len, &again)) != 0 || !same_msg(&m, &again))
        fail("xhome_parse of the re-encoded message = %d, or other fields", rc);
    mem_free(out);
    mem_free(ptrs);
    mem_free(ids);
}

/* ---- mode 1: watermarks ------------------------------------------------------------------ */

/* Does @p w have a pair of @p home? */
static bool wm_names(const xhome_wm_t *w, uint32_t home)
{
    for (uint32_t i = 0; i < w->n; i++)
        if (w->home[i] == home)
            return true;
    return false;
}

static void check_wm(const uint8_t *p, size_t n)
{
    uint64_t count = n >= 16 ? model_get(p + 12, 4) : 0;
    bool ok = n >= 16 && model_get(p, 4) <= SNOWFLAKE_NODE_MAX && count <= CONF_CLUSTER_MAX &&
              n == 16 + count * 12;
    uint8_t out[XHOME_WM_MAX];
    uint32_t absent = 0;
    xhome_wm_t w;

    check_rc("xhome_wm_parse", n, xhome_wm_parse(p, n, &w), ok);
    if (!ok)
        return;
    if (w.origin != model_get(p, 4) || w.horizon != model_get(p + 4, 8) || w.n != count)
        fail("xhome_wm_parse: origin, horizon or count is not the input's");
    for (uint32_t i = 0; i < w.n; i++)
        if (w.home[i] != model_get(p + 16 + 12 * i, 4) || w.seq[i] != model_get(p + 20 + 12 * i, 8))
            fail("xhome_wm_parse: pair %u is not the input's", i);
    if (xhome_wm_encode(&w, out) != n || memcmp(out, p, n) != 0)
        fail("xhome_wm_encode does not give back the %zu bytes parsed", n);
    for (uint32_t i = 0; i < w.n; i++) {
        uint32_t j = 0;
        while (w.home[j] != w.home[i])
            j++;
        if (xhome_wm_seq(&w, w.home[i]) != w.seq[j])
            fail("xhome_wm_seq(home %u) is not its first pair's", w.home[i]);
    }
    while (wm_names(&w, absent)) /* at most 64 pairs: one of 0..64 is not named */
        absent++;
    if (xhome_wm_seq(&w, absent) != 0)
        fail("xhome_wm_seq(home %u, not named) is not 0", absent);
}

/* ---- mode 2: outbox entries -------------------------------------------------------------- */

/* The calls xhome_outbox_each made. */
typedef struct calls {
    const uint8_t **at;
    size_t *len;
    size_t n, cap;
    size_t stop; /* return OUT_STOP from this call (1-based; 0: never) */
} calls_t;

static int on_part(void *ctx, const uint8_t *x, size_t xlen)
{
    calls_t *c = ctx;

    if (c->n == c->cap)
        fail("xhome_outbox_each: more calls than the entry has parts");
    c->at[c->n] = x;
    c->len[c->n] = xlen;
    return ++c->n == c->stop ? OUT_STOP : 0;
}

/* The model: the parts of entry @p p into @p c's arrays (c->n of them). @return false when
 * it is malformed. */
static bool model_outbox(const uint8_t *p, size_t n, calls_t *c)
{
    size_t off = 1, k;

    c->n = 0;
    if (n == 0)
        return false;
    if (p[0] != XHOME_OUTBOX_MULTI) {
        c->at[0] = p;
        c->len[c->n++] = n;
        return true;
    }
    for (; off < n; off += 4 + k) {
        if (n - off < 4 || (k = model_get(p + off, 4)) > n - off - 4)
            return false;
        c->at[c->n] = p + off + 4;
        c->len[c->n++] = k;
    }
    return true;
}

static void check_outbox(const uint8_t *p, size_t n, size_t stop)
{
    size_t cap = n / 4 + 1; /* a part takes 4 bytes at least; or the whole entry is one */
    calls_t want = {mem_alloc(cap * sizeof(uint8_t *)), mem_alloc(cap * sizeof(size_t)), 0, cap, 0};
    calls_t got = {mem_alloc(cap * sizeof(uint8_t *)), mem_alloc(cap * sizeof(size_t)), 0, cap,
                   stop};
    bool ok = model_outbox(p, n, &want);
    bool stops = ok && stop > 0 && stop <= want.n;
    size_t calls = !ok ? 0 : stops ? stop : want.n;
    int exp = !ok ? RC_EPROTO : stops ? OUT_STOP : 0;
    int rc = xhome_outbox_each(p, n, on_part, &got);

    if (rc != exp || got.n != calls)
        fail("xhome_outbox_each(%zu bytes, stop at %zu) = %d after %zu calls; the model: %d "
             "after %zu",
             n, stop, rc, got.n, exp, calls);
    for (size_t i = 0; i < got.n; i++)
        if (got.at[i] != want.at[i] || got.len[i] != want.len[i])
            fail("xhome_outbox_each: part %zu is not the model's", i);
    for (size_t i = 0; ok && i < want.n; i++)
        check_xhome(want.at[i], want.len[i]);
    mem_free(want.at);
    mem_free(want.len);
    mem_free(got.at);
    mem_free(got.len);
}

/* ---- mode 3: the online question --------------------------------------------------------- */

/* The model: the NUL-terminated id at offset @p off of @p p: its length, or 0 when it is
 * not one. */
static size_t model_cid(const uint8_t *p, size_t n, size_t off)
{
    size_t k = 0;

    while (off + k < n && p[off + k] != 0)
        k++;
    return off + k < n && model_id(p + off, k) ? k : 0;
}

/* The model: a question; @p users_off where its users start. */
static bool model_ask(const uint8_t *p, size_t n, size_t *users_off)
{
    size_t off = XONLINE_ASK_HDR, k;
    uint64_t count;

    if (n < XONLINE_ASK_HDR || n > XONLINE_ASK_MAX || (count = model_get(p + 8, 2)) == 0 ||
        count > XONLINE_MAX)
        return false;
    for (uint64_t i = 0; i <= count; i++, off += k + 1) { /* the app, then the users */
        if ((k = model_cid(p, n, off)) == 0)
            return false;
        if (i == 0)
            *users_off = off + k + 1;
    }
    return off == n;
}

static void check_ask(const uint8_t *p, size_t n)
{
    char(*ids)[KV_ID_MAX + 1] = NULL, spare[KV_ID_MAX + 1];
    const char **ptrs = NULL;
    uint8_t *out = NULL;
    size_t uoff = 0, pos = 0, at, len = 0;
    xonline_ask_t q, again;
    bool ok = model_ask(p, n, &uoff);
    int rc = xonline_ask_parse(p, n, &q);

    check_rc("xonline_ask_parse", n, rc, ok);
    if (!ok)
        return;
    if (q.token != model_get(p, 8) || q.n != model_get(p + 8, 2) ||
        !same_str(q.app, p + XONLINE_ASK_HDR, uoff - XONLINE_ASK_HDR - 1) || q.users != p + uoff ||
        q.users_len != n - uoff)
        fail("xonline_ask_parse: token, count, app or the users are not the input's");
    ids = mem_alloc(q.n * sizeof(*ids));
    ptrs = mem_alloc(q.n * sizeof(*ptrs));
    for (uint32_t k = 0; k < q.n; k++) {
        at = pos;
        if (!xonline_ask_user(&q, &pos, ids[k]))
            fail("xonline_ask_user stopped at user %u of %u", k, q.n);
        if (pos > q.users_len || pos != at + strlen(ids[k]) + 1 ||
            !same_str(ids[k], q.users + at, pos - at - 1))
            fail("xonline_ask_user: user %u is not the input's", k);
        ptrs[k] = ids[k];
    }
    if (pos != q.users_len || xonline_ask_user(&q, &pos, spare))
        fail("xonline_ask_user: the list goes on past its %u users", q.n);
    out = mem_alloc(XONLINE_ASK_MAX);
    if ((rc = xonline_ask_encode(q.token, q.app, ptrs, q.n, out, &len)) != 0 || len != n ||
        memcmp(out, p, n) != 0)
        fail("xonline_ask_encode = %d, %zu bytes, not the %zu parsed", rc, len, n);
    if (xonline_ask_parse(out, len, &again) != 0 || again.token != q.token || again.n != q.n ||
        strcmp(again.app, q.app) != 0 || again.users_len != q.users_len)
        fail("xonline_ask_parse of the re-encoded question differs");
    mem_free(out);
    mem_free(ptrs);
    mem_free(ids);
}

/* ---- mode 4: the online answer ----------------------------------------------------------- */

static bool is_set(const uint8_t *bits, size_t i)
{
    return (bits[i / 8] >> (i % 8) & 1) != 0;
}

static void check_ans(const uint8_t *p, size_t n)
{
    uint64_t count = n >= XONLINE_ANS_HDR ? model_get(p + 12, 2) : 0;
    bool ok = n >= XONLINE_ANS_HDR && n <= XONLINE_ANS_MAX && count >= 1 && count <= XONLINE_MAX &&
              n == XONLINE_ANS_HDR + (count + 7) / 8;
    uint8_t out[XONLINE_ANS_MAX];
    xonline_ans_t a;

    for (size_t i = count; ok && i < (n - XONLINE_ANS_HDR) * 8; i++)
        ok = !is_set(p + XONLINE_ANS_HDR, i); /* nothing past the count */
    check_rc("xonline_ans_parse", n, xonline_ans_parse(p, n, &a), ok);
    if (!ok)
        return;
    if (a.token != model_get(p, 8) || a.node != model_get(p + 8, 4) || a.n != count ||
        a.bits != p + XONLINE_ANS_HDR)
        fail("xonline_ans_parse: token, node, count or bits are not the input's");
    if (xonline_ans_init(out, a.token, a.node, a.n) != n)
        fail("xonline_ans_init is not %zu bytes long", n);
    for (uint32_t i = 0; i < a.n; i++) {
        if (xonline_ans_get(&a, i) != is_set(p + XONLINE_ANS_HDR, i))
            fail("xonline_ans_get(%u) is not the input's bit", i);
        if (xonline_ans_get(&a, i))
            xonline_ans_set(out, i);
    }
    if (memcmp(out, p, n) != 0)
        fail("xonline_ans_init and _set do not give back the %zu bytes parsed", n);
}

int fuzz_bus_input(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    switch (data[0] % MODES) {
    case 0:
        check_xhome(data + 1, size - 1);
        break;
    case 1:
        check_wm(data + 1, size - 1);
        break;
    case 2:
        check_outbox(data + 1, size - 1, data[0] / MODES);
        break;
    case 3:
        check_ask(data + 1, size - 1);
        break;
    default:
        check_ans(data + 1, size - 1);
        break;
    }
    return 0;
}

#ifdef CIM_FUZZ_TARGET
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_bus_input(data, size);
}
#endif
