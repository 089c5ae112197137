#include "support/msg.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <pb_decode.h>
#include <pb_encode.h>

#include "core/frame.h"
#include "core/kv.h"
#include "core/rc.h"
#include "support/test.h"

#define SYNC_PAGES_MAX 100000
#define RAW_REQ_ID_BASE 0x60000000u

uint64_t tmsg_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void tmsg_sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

uint64_t tmsg_hash(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void tmsg_page_init(tmsg_page_t *p, tmsg_t *msgs, size_t cap, uint8_t *bodies,
                    size_t bodies_cap)
{
    memset(p, 0, sizeof(*p));
    p->msgs = msgs;
    p->cap = cap;
    p->bodies = bodies;
    p->bodies_cap = bodies ? bodies_cap : 0;
}

void tmsg_page_reset(tmsg_page_t *p)
{
    tmsg_page_init(p, p->msgs, p->cap, p->bodies, p->bodies_cap);
}

cimc_t *tmsg_login(const tsrv_t *t, const char *user, const char *device, int kind,
                   cim_LoginRsp *rsp)
{
    cim_LoginReq req = cim_LoginReq_init_zero;
    cim_LoginRsp r = cim_LoginRsp_init_zero;
    cimc_t *c = tsrv_connect(t);
    int rc;

    snprintf(req.user, sizeof(req.user), "%s", user);
    snprintf(req.device_id, sizeof(req.device_id), "%s", device);
    req.device_kind = (cim_DeviceKind)kind;
    tsrv_token(t, "", user, 3600, req.token, sizeof(req.token));
    rc = cimc_login(c, &req, &r);
    if (rc != 0 || r.code != cim_Code_OK) {
        tsrv_dump_log(t);
        TEST_FAIL_("login %s/%s: rc %s, code %d (%s)", user, device, rc_str(rc), r.code,
                   r.reason);
    }
    if (rsp != NULL)
        *rsp = r;
    return c;
}

void tmsg_wait_user(const tsrv_t *t, const char *user)
{
    for (int i = 0; i < 500; i++) {
        kv_t *kv = NULL;
        kv_txn_t *txn = NULL;
        int rc;

        ASSERT_OK(kv_open(t->dir, KV_RDONLY, &kv));
        ASSERT_OK(kv_begin(kv, KV_READ, &txn));
        rc = kv_user_get(txn, "default", user, NULL);
        kv_abort(txn);
        kv_close(kv);
        if (rc == 0)
            return;
        ASSERT_RC(rc, RC_ENOTFOUND);
        tmsg_sleep_ms(10);
    }
    TEST_FAIL_("user %s not registered within 5 s", user);
}

void tmsg_fill_req(cim_SendReq *req, const char *to, const char *cmid, int msg_type,
                   const cimc_bytes_t *b, bool transient)
{
    memset(req, 0, sizeof(*req));
    snprintf(req->client_msg_id, sizeof(req->client_msg_id), "%s", cmid);
    req->conv_type = cim_ConvType_DIRECT;
    snprintf(req->to, sizeof(req->to), "%s", to);
    req->msg_type = (cim_MsgType)msg_type;
    req->transient = transient;
    if (b != NULL && b->len > 0)
        cimc_bytes_encoder(&req->body, b);
}

int tmsg_send_req(cimc_t *c, cim_SendReq *req, cim_SendRsp *rsp)
{
    memset(rsp, 0, sizeof(*rsp));
    return cimc_call(c, FT_SEND, cim_SendReq_fields, req, FT_SEND_ACK, cim_SendRsp_fields, rsp);
}

int tmsg_send(cimc_t *c, const char *to, const char *cmid, int msg_type, const void *body,
              size_t len, bool transient, cim_SendRsp *rsp)
{
    cim_SendReq req;
    cimc_bytes_t b = {body, len};

    tmsg_fill_req(&req, to, cmid, msg_type, &b, transient);
    return tmsg_send_req(c, &req, rsp);
}

/* ---- hand-built bodies ------------------------------------------------------------- */

static size_t put_varint(uint8_t *buf, size_t cap, size_t off, uint64_t v)
{
    do {
        if (off >= cap)
            TEST_FAIL_("tmsg_pb: buffer of %zu bytes too small", cap);
        buf[off++] = (uint8_t)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
    return off;
}

size_t tmsg_pb_varint(uint8_t *buf, size_t cap, size_t off, uint32_t field, uint64_t v)
{
    off = put_varint(buf, cap, off, (uint64_t)field << 3);
    return put_varint(buf, cap, off, v);
}

size_t tmsg_pb_bytes(uint8_t *buf, size_t cap, size_t off, uint32_t field, const void *data,
                     size_t len)
{
    off = put_varint(buf, cap, off, ((uint64_t)field << 3) | 2);
    off = put_varint(buf, cap, off, len);
    if (off + len > cap)
        TEST_FAIL_("tmsg_pb: buffer of %zu bytes too small", cap);
    memcpy(buf + off, data, len);
    return off + len;
}

/* ---- raw frames -------------------------------------------------------------------- */

int tmsg_next_answer(cimc_t *c, unsigned timeout_ms, uint32_t *type, uint8_t **body,
                     size_t *len)
{
    uint64_t deadline = tmsg_now_ms() + timeout_ms;
    int rc;

    for (;;) {
        uint64_t now = tmsg_now_ms();
        unsigned left = now >= deadline ? 0 : (unsigned)(deadline - now);
        if ((rc = cimc_next_frame(c, left, type, body, len)) < 0)
            return rc;
        if (*type != FT_PUSH && *type != FT_EVENT)
            return 0;
        free(*body);
        *body = NULL;
    }
}

int tmsg_send_raw(cimc_t *c, const uint8_t *body, size_t len, uint32_t req_id,
                  cim_SendRsp *rsp)
{
    uint32_t type;
    uint8_t *ans = NULL;
    size_t alen;
    int rc;

    memset(rsp, 0, sizeof(*rsp));
    if ((rc = cimc_send_frame(c, FT_SEND, body, len)) < 0)
        return rc;
    if ((rc = tmsg_next_answer(c, 10000, &type, &ans, &alen)) < 0)
        return rc;
    if (type != FT_SEND_ACK) {
        free(ans);
        return RC_EPROTO;
    }
    rc = cimc_decode(cim_SendRsp_fields, ans, alen, rsp);
    free(ans);
    if (rc == 0 && rsp->req_id != req_id)
        rc = RC_EPROTO;
    return rc;
}

/* Encode @p req (req_id already set) and append its sealed frame to @p out. */
static int seal_append(cimc_t *c, uint32_t type, const pb_msgdesc_t *fields, const void *msg,
                       uint8_t **out, size_t *used, size_t *cap)
{
    size_t n = 0, flen;
    uint8_t *pt, *frame = NULL;
    pb_ostream_t os;
    int rc;

    if (!pb_get_encoded_size(&n, fields, msg))
        return RC_EINVAL;
    pt = malloc(n > 0 ? n : 1);
    ASSERT_NOT_NULL(pt);
    os = pb_ostream_from_buffer(pt, n);
    if (!pb_encode(&os, fields, msg)) {
        free(pt);
        return RC_EINVAL;
    }
    rc = cimc_seal(c, type, pt, n, &frame, &flen);
    free(pt);
    if (rc < 0)
        return rc;
    if (*used + flen > *cap) {
        *cap = (*used + flen) * 2;
        *out = realloc(*out, *cap);
        ASSERT_NOT_NULL(*out);
    }
    memcpy(*out + *used, frame, flen);
    *used += flen;
    free(frame);
    return 0;
}

int tmsg_send_many(cimc_t *c, const char *to, size_t n, size_t window, int msg_type,
                   tmsg_mk_fn mk, void *ctx, uint64_t *ids, int *codes, size_t *n_answered)
{
    /* Every window's answers are read before the next is sent, so the req_ids may start
     * over with every call (no shared counter: connections in other threads are fine). */
    uint32_t next_id = RAW_REQ_ID_BASE;
    uint8_t *buf = NULL;
    size_t cap = 0, done = 0;
    int rc = 0;

    if (n_answered != NULL)
        *n_answered = 0;
    if (window == 0)
        window = 1;
    while (done < n && rc == 0) {
        size_t k = n - done < window ? n - done : window, used = 0;
        uint32_t first = next_id;

        for (size_t j = 0; j < k && rc == 0; j++) {
            cim_SendReq req;
            char cmid[65];
            const uint8_t *body = NULL;
            size_t blen = 0;
            cimc_bytes_t b;

            mk(ctx, done + j, cmid, sizeof(cmid), &body, &blen);
            b.data = body;
            b.len = blen;
            tmsg_fill_req(&req, to, cmid, msg_type, &b, false);
            req.req_id = next_id++;
            rc = seal_append(c, FT_SEND, cim_SendReq_fields, &req, &buf, &used, &cap);
        }
        if (rc == 0)
            rc = cimc_write_raw(c, buf, used);
        for (size_t j = 0; j < k && rc == 0; j++) {
            cim_SendRsp rsp = cim_SendRsp_init_zero;
            uint32_t type;
            uint8_t *ans = NULL;
            size_t alen;

            if ((rc = tmsg_next_answer(c, 20000, &type, &ans, &alen)) < 0)
                break;
            if (type != FT_SEND_ACK) {
                free(ans);
                rc = type == FT_BYE ? RC_ECLOSED : RC_EPROTO;
                break;
            }
            rc = cimc_decode(cim_SendRsp_fields, ans, alen, &rsp);
            free(ans);
            if (rc == 0 && rsp.req_id != first + (uint32_t)j) {
                fprintf(stderr, "tmsg_send_many: answer for req_id %u, expected %u\n",
                        rsp.req_id, first + (uint32_t)j);
                rc = RC_EPROTO;
            }
            if (rc == 0 && rsp.code != cim_Code_OK && codes == NULL)
                fprintf(stderr, "tmsg_send_many: message %zu: %s (%s)\n", done + j,
                        cimc_code_str(rsp.code), rsp.reason);
            if (rc == 0) {
                if (ids != NULL)
                    ids[done + j] = rsp.code == cim_Code_OK ? rsp.msg_id : 0;
                if (codes != NULL)
                    codes[done + j] = rsp.code;
                if (n_answered != NULL)
                    *n_answered = done + j + 1;
            }
        }
        done += k;
    }
    free(buf);
    return rc;
}

/* ---- SYNC -------------------------------------------------------------------------- */

static void record(tmsg_page_t *p, const cimc_push_t *m)
{
    tmsg_t *r;

    p->n_seen++;
    p->page_n++;
    if (p->n == p->cap) {
        p->overflow = true;
        return;
    }
    r = &p->msgs[p->n++];
    memset(r, 0, sizeof(*r));
    r->msg_id = m->u.msg.msg_id;
    r->conv_type = m->u.msg.conv_type;
    memcpy(r->from, m->u.msg.from, sizeof(r->from));
    memcpy(r->to, m->u.msg.to, sizeof(r->to));
    r->msg_type = m->u.msg.msg_type;
    r->time_ms = m->u.msg.time_ms;
    memcpy(r->client_msg_id, m->u.msg.client_msg_id, sizeof(r->client_msg_id));
    r->flags = m->u.msg.flags;
    r->from_device = m->u.msg.from_device;
    r->body_len = m->body_len;
    r->body_hash = tmsg_hash(m->body_data, m->body_len);
    if (p->bodies != NULL && p->bodies_used + m->body_len <= p->bodies_cap) {
        if (m->body_len > 0)
            memcpy(p->bodies + p->bodies_used, m->body_data, m->body_len);
        r->body = p->bodies + p->bodies_used;
        p->bodies_used += m->body_len;
    }
}

static bool on_message(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    tmsg_page_t *p = *arg;
    cimc_push_t m;

    (void)f;
    if (cimc_message_decode(s, &m) < 0)
        return false;
    record(p, &m);
    cimc_push_free(&m);
    return true;
}

int tmsg_sync(cimc_t *c, uint64_t after, uint32_t limit, tmsg_page_t *p)
{
    cim_SyncReq req = cim_SyncReq_init_zero;
    cim_SyncRsp rsp = cim_SyncRsp_init_zero;
    int rc;

    req.after_msg_id = after;
    req.limit = limit;
    p->page_n = 0;
    rsp.messages.funcs.decode = on_message;
    rsp.messages.arg = p;
    rc = cimc_call(c, FT_SYNC, cim_SyncReq_fields, &req, FT_SYNC_ACK, cim_SyncRsp_fields, &rsp);
    if (rc < 0)
        return rc;
    p->pages++;
    p->code = rsp.code;
    memcpy(p->reason, rsp.reason, sizeof(p->reason));
    p->remain = rsp.remain;
    p->last_msg_id = rsp.last_msg_id;
    return 0;
}

int tmsg_sync_all(cimc_t *c, uint64_t after, uint32_t limit, tmsg_page_t *p)
{
    int rc;

    for (size_t i = 0; i < SYNC_PAGES_MAX; i++) {
        if ((rc = tmsg_sync(c, after, limit, p)) < 0)
            return rc;
        if (p->code != cim_Code_OK) {
            fprintf(stderr, "tmsg_sync_all: page %zu: %s (%s)\n", i, cimc_code_str(p->code),
                    p->reason);
            return RC_EPROTO;
        }
        if (p->remain == 0)
            return 0;
        if (p->page_n == 0 || p->last_msg_id <= after) {
            fprintf(stderr, "tmsg_sync_all: page %zu made no progress (remain %u)\n", i,
                    p->remain);
            return RC_EPROTO;
        }
        after = p->last_msg_id;
    }
    return RC_EPROTO;
}

/* ---- PUSH, PUSH_ACK ---------------------------------------------------------------- */

int tmsg_push_ack(cimc_t *c, uint64_t up_to)
{
    cim_DeliveredReq req = cim_DeliveredReq_init_zero;
    req.up_to_msg_id = up_to;
    return cimc_send_msg(c, FT_PUSH_ACK, cim_DeliveredReq_fields, &req);
}

int tmsg_next_push(cimc_t *c, unsigned timeout_ms, tmsg_t *out, uint8_t *body,
                   size_t body_cap)
{
    uint64_t deadline = tmsg_now_ms() + timeout_ms;
    tmsg_page_t one;
    cimc_push_t p;
    int rc;

    for (;;) {
        uint64_t now = tmsg_now_ms();
        unsigned left = now >= deadline ? 0 : (unsigned)(deadline - now);
        if ((rc = cimc_next_push(c, left, &p)) < 0)
            return rc;
        if (p.type == FT_PUSH)
            break;
        cimc_push_free(&p);
        if (p.type == FT_BYE)
            return RC_ECLOSED;
    }
    tmsg_page_init(&one, out, 1, body, body_cap);
    record(&one, &p);
    cimc_push_free(&p);
    return 0;
}

void tmsg_expect_no_push(cimc_t *c, unsigned ms)
{
    tmsg_t m;
    int rc = tmsg_next_push(c, ms, &m, NULL, 0);
    if (rc == 0)
        TEST_FAIL_("unexpected PUSH: msg_id %" PRIu64 " from %s to %s cmid '%s'", m.msg_id,
                   m.from, m.to, m.client_msg_id);
    ASSERT_RC(rc, RC_ETIMEDOUT);
}
