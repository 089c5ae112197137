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
    return tmsg_send_many_conv(c, cim_ConvType_DIRECT, to, n, window, msg_type, mk, ctx, ids,
                               codes, n_answered);
}

int tmsg_send_many_conv(cimc_t *c, int conv_type, const char *to, size_t n, size_t window,
                        int msg_type, tmsg_mk_fn mk, void *ctx, uint64_t *ids, int *codes,
                        size_t *n_answered)
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
            req.conv_type = (cim_ConvType)conv_type;
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

/* ---- any request/answer pair --------------------------------------------------------- */

int tmsg_call_result(cimc_t *c, uint32_t type, uint32_t ack_type, const pb_msgdesc_t *fields,
                     void *req, cim_Result *res)
{
    memset(res, 0, sizeof(*res));
    return cimc_call(c, type, fields, req, ack_type, cim_Result_fields, res);
}

int tmsg_call_raw(cimc_t *c, uint32_t type, const uint8_t *body, size_t len,
                  uint32_t ack_type, const pb_msgdesc_t *fields, void *rsp)
{
    uint32_t got;
    uint8_t *ans = NULL;
    size_t alen;
    int rc;

    if ((rc = cimc_send_frame(c, type, body, len)) < 0)
        return rc;
    if ((rc = tmsg_next_answer(c, 10000, &got, &ans, &alen)) < 0)
        return rc;
    if (got != ack_type) {
        fprintf(stderr, "tmsg_call_raw: got frame 0x%04x, want 0x%04x\n", got, ack_type);
        free(ans);
        return RC_EPROTO;
    }
    rc = cimc_decode(fields, ans, alen, rsp);
    free(ans);
    return rc;
}

void tmsg_expect_code_(const char *file, int line, int rc, int code, const char *reason,
                       int want)
{
    if (rc != 0) {
        fprintf(stderr, "%s:%d: no answer: %d (%s)\n", file, line, rc, rc_str(rc));
        fflush(stderr);
        abort();
    }
    if (code != want) {
        fprintf(stderr, "%s:%d: answered %s (%s), want %s\n", file, line, cimc_code_str(code),
                reason ? reason : "", cimc_code_str(want));
        fflush(stderr);
        abort();
    }
    if (want != cim_Code_OK && (reason == NULL || reason[0] == '\0')) {
        fprintf(stderr, "%s:%d: %s without a reason\n", file, line, cimc_code_str(code));
        fflush(stderr);
        abort();
    }
}

void tmsg_expect_alive(cimc_t *c, cimc_t *from, cimc_t *to, const char *to_user)
{
    static unsigned n;
    char cmid[32], body[32];
    cim_SendRsp rsp;
    tmsg_t m;

    ASSERT_OK(cimc_ping(c, NULL));
    n++;
    snprintf(cmid, sizeof(cmid), "alive-%u", n);
    snprintf(body, sizeof(body), "still here %u", n);
    ASSERT_OK(tmsg_send(from, to_user, cmid, cim_MsgType_TEXT, body, strlen(body), false, &rsp));
    if (rsp.code != cim_Code_OK)
        TEST_FAIL_("alive check: send to %s: %s (%s)", to_user, cimc_code_str(rsp.code),
                   rsp.reason);
    ASSERT_OK(tmsg_next_push(to, 5000, &m, NULL, 0));
    if (m.msg_id != rsp.msg_id)
        TEST_FAIL_("alive check: %s got msg_id %" PRIu64 " ('%s'), want %" PRIu64 " (%s)",
                   to_user, m.msg_id, m.client_msg_id, rsp.msg_id, cmid);
}

int tmsg_send_conv(cimc_t *c, int conv_type, const char *to, const char *cmid, int msg_type,
                   const void *body, size_t len, bool transient, cim_SendRsp *rsp)
{
    cim_SendReq req;
    cimc_bytes_t b = {body, len};

    tmsg_fill_req(&req, to, cmid, msg_type, &b, transient);
    req.conv_type = (cim_ConvType)conv_type;
    return tmsg_send_req(c, &req, rsp);
}

/* ---- groups ---------------------------------------------------------------------------- */

/* Copy @p n user ids into a request's list of @p cap (failing the test when they do not
 * fit, as "<fn>: <n> <what> do not fit a <msg>"); @return the count to set. */
static pb_size_t copy_ids(char (*dst)[65], size_t cap, const char *const *ids, size_t n,
                          const char *fn, const char *what, const char *msg)
{
    if (n > cap)
        TEST_FAIL_("%s: %zu %s do not fit a %s", fn, n, what, msg);
    for (size_t i = 0; i < n; i++)
        snprintf(dst[i], sizeof(dst[i]), "%s", ids[i]);
    return (pb_size_t)n;
}

int tmsg_group_create(cimc_t *c, const char *name, const char *const *members, size_t n,
                      bool open, cim_GroupRsp *rsp)
{
    cim_GroupCreateReq *req = calloc(1, sizeof(*req));
    int rc;

    ASSERT_NOT_NULL(req);
    req->members_count = copy_ids(req->members, sizeof(req->members) / sizeof(req->members[0]),
                                  members, n, "tmsg_group_create", "members", "GroupCreateReq");
    snprintf(req->name, sizeof(req->name), "%s", name);
    req->open = open;
    memset(rsp, 0, sizeof(*rsp));
    rc = cimc_call(c, FT_GROUP_CREATE, cim_GroupCreateReq_fields, req, FT_GROUP_CREATE_ACK,
                   cim_GroupRsp_fields, rsp);
    free(req);
    return rc;
}

int tmsg_group_join(cimc_t *c, const char *gid, cim_GroupRsp *rsp)
{
    cim_GroupReq req = cim_GroupReq_init_zero;
    snprintf(req.group_id, sizeof(req.group_id), "%s", gid);
    memset(rsp, 0, sizeof(*rsp));
    return cimc_call(c, FT_GROUP_JOIN, cim_GroupReq_fields, &req, FT_GROUP_JOIN_ACK,
                     cim_GroupRsp_fields, rsp);
}

int tmsg_group_req(cimc_t *c, uint32_t type, const char *gid, cim_Result *res)
{
    cim_GroupReq req = cim_GroupReq_init_zero;
    snprintf(req.group_id, sizeof(req.group_id), "%s", gid);
    return tmsg_call_result(c, type, type + 1, cim_GroupReq_fields, &req, res);
}

int tmsg_group_users(cimc_t *c, uint32_t type, const char *gid, const char *const *users,
                     size_t n, cim_Result *res)
{
    cim_GroupUsersReq *req = calloc(1, sizeof(*req));
    int rc;

    ASSERT_NOT_NULL(req);
    req->users_count = copy_ids(req->users, sizeof(req->users) / sizeof(req->users[0]), users, n,
                                "tmsg_group_users", "users", "GroupUsersReq");
    snprintf(req->group_id, sizeof(req->group_id), "%s", gid);
    rc = tmsg_call_result(c, type, type + 1, cim_GroupUsersReq_fields, req, res);
    free(req);
    return rc;
}

/* ---- lists: a repeated field of an answer collected into the caller's array ---------- */

typedef bool (*list_decode_fn)(pb_istream_t *s, const pb_field_t *f, void **arg);

/* The first @p cap items (@p size bytes each) are kept in @p out, all are counted in n. */
typedef struct list_ctx {
    const pb_msgdesc_t *fields; /* on_item: the items' message type */
    void *out;
    size_t size, cap, n;
} list_ctx_t;

/* Count one more item. @return its slot, or NULL past cap. */
static void *list_next(list_ctx_t *lc)
{
    void *slot = lc->n < lc->cap ? (uint8_t *)lc->out + lc->n * lc->size : NULL;

    lc->n++;
    return slot;
}

/* An item that is a message of lc->fields (a Group or a Contact), kept as decoded. */
static bool on_item(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    list_ctx_t *lc = *arg;
    union {
        cim_Group g;
        cim_Contact c;
    } item;
    void *slot;

    (void)f;
    if (lc->size > sizeof(item))
        return false;
    memset(&item, 0, sizeof(item));
    if (!pb_decode(s, lc->fields, &item))
        return false;
    if ((slot = list_next(lc)) != NULL)
        memcpy(slot, &item, lc->size);
    return true;
}

/* A request of @p type answered (type + 1) by @p rsp (cleared first, @p rsp_size bytes),
 * whose repeated field @p list is collected by @p decode into @p lc; *@p n = items seen. */
static int call_list(cimc_t *c, uint32_t type, const pb_msgdesc_t *req_fields, void *req,
                     const pb_msgdesc_t *rsp_fields, void *rsp, size_t rsp_size,
                     pb_callback_t *list, list_decode_fn decode, list_ctx_t *lc, size_t *n)
{
    int rc;

    memset(rsp, 0, rsp_size);
    list->funcs.decode = decode;
    list->arg = lc;
    rc = cimc_call(c, type, req_fields, req, type + 1, rsp_fields, rsp);
    *n = lc->n;
    return rc;
}

/* A user id (a string of at most 64 bytes) into a char[65]. */
static bool on_name(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    list_ctx_t *nc = *arg;
    char buf[65];
    size_t len = s->bytes_left;
    void *slot;

    (void)f;
    if (len > 64 || !pb_read(s, (pb_byte_t *)buf, len))
        return false;
    buf[len] = '\0';
    if ((slot = list_next(nc)) != NULL)
        memcpy(slot, buf, len + 1);
    return true;
}

int tmsg_group_members(cimc_t *c, const char *gid, char (*names)[65], size_t cap, size_t *n,
                       cim_GroupMembersRsp *rsp)
{
    cim_GroupReq req = cim_GroupReq_init_zero;
    list_ctx_t nc = {NULL, names, sizeof(*names), cap, 0};

    snprintf(req.group_id, sizeof(req.group_id), "%s", gid);
    return call_list(c, FT_GROUP_MEMBERS, cim_GroupReq_fields, &req, cim_GroupMembersRsp_fields,
                     rsp, sizeof(*rsp), &rsp->members, on_name, &nc, n);
}

int tmsg_group_list(cimc_t *c, cim_Group *groups, size_t cap, size_t *n,
                    cim_GroupListRsp *rsp)
{
    cim_Req req = cim_Req_init_zero;
    list_ctx_t gc = {cim_Group_fields, groups, sizeof(*groups), cap, 0};

    return call_list(c, FT_GROUP_LIST, cim_Req_fields, &req, cim_GroupListRsp_fields, rsp,
                     sizeof(*rsp), &rsp->groups, on_item, &gc, n);
}

bool tmsg_has_name(char (*names)[65], size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return true;
    return false;
}

cim_GroupEvent *tmsg_group_event(const tmsg_t *m)
{
    cim_GroupEvent *ev = calloc(1, sizeof(*ev));

    ASSERT_NOT_NULL(ev);
    if (m->msg_type != cim_MsgType_SYSTEM || m->conv_type != cim_ConvType_GROUP)
        TEST_FAIL_("msg_id %" PRIu64 " from %s to %s is msg_type %d conv_type %d, not a "
                   "group's SYSTEM message",
                   m->msg_id, m->from, m->to, m->msg_type, m->conv_type);
    if (m->body == NULL && m->body_len > 0)
        TEST_FAIL_("tmsg_group_event: the body of msg_id %" PRIu64 " was not kept", m->msg_id);
    if (cimc_decode(cim_GroupEvent_fields, m->body, m->body_len, ev) != 0)
        TEST_FAIL_("msg_id %" PRIu64 ": the body is not a GroupEvent", m->msg_id);
    return ev;
}

cim_GroupEvent *tmsg_expect_group_event(const tmsg_t *m, const char *gid, int kind,
                                        const char *actor, const char *const *users,
                                        size_t n)
{
    cim_GroupEvent *ev = tmsg_group_event(m);

    ASSERT_STREQ(m->to, gid);
    ASSERT_STREQ(m->from, actor);
    if ((int)ev->kind != kind)
        TEST_FAIL_("msg_id %" PRIu64 ": GroupEvent kind %d, want %d", m->msg_id, ev->kind,
                   kind);
    ASSERT_STREQ(ev->actor, actor);
    ASSERT_TRUE(ev->has_group);
    ASSERT_STREQ(ev->group.group_id, gid);
    if (ev->users_count != n)
        TEST_FAIL_("msg_id %" PRIu64 " (kind %d): %u users, want %zu", m->msg_id, kind,
                   (unsigned)ev->users_count, n);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (size_t j = 0; j < ev->users_count && !found; j++)
            found = strcmp(ev->users[j], users[i]) == 0;
        if (!found)
            TEST_FAIL_("msg_id %" PRIu64 " (kind %d): user %s missing", m->msg_id, kind,
                       users[i]);
    }
    return ev;
}

void tmsg_recall_event(const tmsg_t *m, cim_RecallEvent *out)
{
    memset(out, 0, sizeof(*out));
    if (m->msg_type != cim_MsgType_RECALL)
        TEST_FAIL_("msg_id %" PRIu64 " is msg_type %d, not RECALL", m->msg_id, m->msg_type);
    if (m->body == NULL && m->body_len > 0)
        TEST_FAIL_("tmsg_recall_event: the body of msg_id %" PRIu64 " was not kept", m->msg_id);
    if (cimc_decode(cim_RecallEvent_fields, m->body, m->body_len, out) != 0)
        TEST_FAIL_("msg_id %" PRIu64 ": the body is not a RecallEvent", m->msg_id);
}

/* ---- conversations ------------------------------------------------------------------------ */

typedef struct body_sum {
    size_t len;
    uint64_t hash;
} body_sum_t;

static bool on_body_sum(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    body_sum_t *bs = *arg;
    uint8_t buf[512];

    (void)f;
    while (s->bytes_left > 0) {
        size_t k = s->bytes_left < sizeof(buf) ? s->bytes_left : sizeof(buf);
        if (!pb_read(s, buf, k))
            return false;
        for (size_t i = 0; i < k; i++) {
            bs->hash ^= buf[i];
            bs->hash *= 0x100000001b3ULL;
        }
        bs->len += k;
    }
    return true;
}

static bool on_conv(pb_istream_t *s, const pb_field_t *f, void **arg)
{
    list_ctx_t *cc = *arg;
    cim_Conversation cv = cim_Conversation_init_zero;
    body_sum_t bs = {0, 0xcbf29ce484222325ULL};
    tmsg_conv_t *o;

    (void)f;
    cv.last.body.funcs.decode = on_body_sum;
    cv.last.body.arg = &bs;
    if (!pb_decode(s, cim_Conversation_fields, &cv))
        return false;
    if ((o = list_next(cc)) == NULL)
        return true;
    memset(o, 0, sizeof(*o));
    o->conv_type = cv.conv_type;
    memcpy(o->peer, cv.peer, sizeof(o->peer));
    o->has_last = cv.has_last;
    o->unread = cv.unread;
    o->read_up_to = cv.read_up_to;
    o->peer_read_up_to = cv.peer_read_up_to;
    o->updated_ms = cv.updated_ms;
    if (cv.has_last) {
        tmsg_t *r = &o->last;
        r->msg_id = cv.last.msg_id;
        r->conv_type = cv.last.conv_type;
        memcpy(r->from, cv.last.from, sizeof(r->from));
        memcpy(r->to, cv.last.to, sizeof(r->to));
        r->msg_type = cv.last.msg_type;
        r->time_ms = cv.last.time_ms;
        memcpy(r->client_msg_id, cv.last.client_msg_id, sizeof(r->client_msg_id));
        r->flags = cv.last.flags;
        r->from_device = cv.last.from_device;
        r->body_len = bs.len;
        r->body_hash = bs.hash;
        r->body = NULL;
    }
    return true;
}

int tmsg_conv_list(cimc_t *c, tmsg_conv_t *convs, size_t cap, size_t *n, cim_ConvListRsp *rsp)
{
    cim_Req req = cim_Req_init_zero;
    list_ctx_t cc = {NULL, convs, sizeof(*convs), cap, 0};

    return call_list(c, FT_CONV_LIST, cim_Req_fields, &req, cim_ConvListRsp_fields, rsp,
                     sizeof(*rsp), &rsp->convs, on_conv, &cc, n);
}

const tmsg_conv_t *tmsg_conv_find(const tmsg_conv_t *convs, size_t n, int conv_type,
                                  const char *peer)
{
    for (size_t i = 0; i < n; i++)
        if (convs[i].conv_type == conv_type && strcmp(convs[i].peer, peer) == 0)
            return &convs[i];
    return NULL;
}

int tmsg_history(cimc_t *c, int conv_type, const char *peer, uint64_t before, uint32_t limit,
                 tmsg_page_t *p)
{
    cim_HistoryReq req = cim_HistoryReq_init_zero;
    cim_HistoryRsp rsp = cim_HistoryRsp_init_zero;
    int rc;

    req.conv_type = (cim_ConvType)conv_type;
    snprintf(req.peer, sizeof(req.peer), "%s", peer);
    req.before_msg_id = before;
    req.limit = limit;
    p->page_n = 0;
    rsp.messages.funcs.decode = on_message;
    rsp.messages.arg = p;
    rc = cimc_call(c, FT_HISTORY, cim_HistoryReq_fields, &req, FT_HISTORY_ACK,
                   cim_HistoryRsp_fields, &rsp);
    if (rc < 0)
        return rc;
    p->pages++;
    p->code = rsp.code;
    memcpy(p->reason, rsp.reason, sizeof(p->reason));
    p->has_more = rsp.has_more;
    return 0;
}

int tmsg_read(cimc_t *c, int conv_type, const char *peer, uint64_t up_to, cim_Result *res)
{
    cim_ReadReq req = cim_ReadReq_init_zero;
    req.conv_type = (cim_ConvType)conv_type;
    snprintf(req.peer, sizeof(req.peer), "%s", peer);
    req.up_to_msg_id = up_to;
    return tmsg_call_result(c, FT_READ, FT_READ_ACK, cim_ReadReq_fields, &req, res);
}

int tmsg_recall(cimc_t *c, uint64_t msg_id, cim_Result *res)
{
    cim_RecallReq req = cim_RecallReq_init_zero;
    req.msg_id = msg_id;
    return tmsg_call_result(c, FT_RECALL, FT_RECALL_ACK, cim_RecallReq_fields, &req, res);
}

/* ---- contacts, blocks, events ------------------------------------------------------------ */

int tmsg_user_req(cimc_t *c, uint32_t type, const char *user, cim_Result *res)
{
    cim_UserReq req = cim_UserReq_init_zero;
    snprintf(req.user, sizeof(req.user), "%s", user);
    return tmsg_call_result(c, type, type + 1, cim_UserReq_fields, &req, res);
}

int tmsg_contact_list(cimc_t *c, cim_Contact *out, size_t cap, size_t *n,
                      cim_ContactListRsp *rsp)
{
    cim_Req req = cim_Req_init_zero;
    list_ctx_t cc = {cim_Contact_fields, out, sizeof(*out), cap, 0};

    return call_list(c, FT_CONTACT_LIST, cim_Req_fields, &req, cim_ContactListRsp_fields, rsp,
                     sizeof(*rsp), &rsp->contacts, on_item, &cc, n);
}

int tmsg_next_event(cimc_t *c, unsigned timeout_ms, cim_Event *out)
{
    uint64_t deadline = tmsg_now_ms() + timeout_ms;
    cimc_push_t p;
    int rc;

    for (;;) {
        uint64_t now = tmsg_now_ms();
        unsigned left = now >= deadline ? 0 : (unsigned)(deadline - now);
        if ((rc = cimc_next_push(c, left, &p)) < 0)
            return rc;
        if (p.type == FT_EVENT) {
            *out = p.u.event;
            cimc_push_free(&p);
            return 0;
        }
        cimc_push_free(&p);
        if (p.type == FT_BYE)
            return RC_ECLOSED;
    }
}

void tmsg_expect_quiet(cimc_t *c, unsigned ms)
{
    cimc_push_t p;
    int rc = cimc_next_push(c, ms, &p);

    if (rc == 0) {
        if (p.type == FT_PUSH)
            TEST_FAIL_("unexpected PUSH: msg_id %" PRIu64 " from %s to %s type %d cmid '%s'",
                       p.u.msg.msg_id, p.u.msg.from, p.u.msg.to, p.u.msg.msg_type,
                       p.u.msg.client_msg_id);
        if (p.type == FT_EVENT)
            TEST_FAIL_("unexpected EVENT: kind %d user %s peer %s up_to %" PRIu64 " online %d",
                       p.u.event.kind, p.u.event.user, p.u.event.peer, p.u.event.up_to_msg_id,
                       p.u.event.online);
        TEST_FAIL_("unexpected frame 0x%04x", p.type);
    }
    ASSERT_RC(rc, RC_ETIMEDOUT);
}

/* ---- users -------------------------------------------------------------------------------- */

void tmsg_register_users(const tsrv_t *t, const char *const *users, size_t n)
{
    kv_t *kv = NULL;
    kv_txn_t *txn = NULL;
    struct timespec ts;
    uint64_t now;

    clock_gettime(CLOCK_REALTIME, &ts);
    now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    /* every node's directory (a cluster's users are known at their homes) */
    for (int d = 0; tsrv_node_dir(t, d) != NULL; d++) {
        ASSERT_OK(kv_open(tsrv_node_dir(t, d), KV_NOSYNC, &kv));
        ASSERT_OK(kv_begin(kv, KV_WRITE, &txn));
        for (size_t i = 0; i < n; i++) {
            int rc = kv_user_add(txn, "default", users[i], now);
            if (rc != 0 && rc != RC_EEXIST)
                TEST_FAIL_("kv_user_add %s: %s", users[i], rc_str(rc));
        }
        ASSERT_OK(kv_commit(txn));
        kv_close(kv);
    }
}

/* ---- expected pushes ------------------------------------------------------------------------ */

#define EXPECT_BODY_MAX 70000

uint64_t tmsg_expect_push(cimc_t *c, uint64_t id, int conv_type, const char *from,
                          const char *to, const char *cmid, int msg_type, const void *body,
                          size_t len)
{
    static uint8_t buf[EXPECT_BODY_MAX];
    tmsg_t m;
    int rc = tmsg_next_push(c, 5000, &m, buf, sizeof(buf));

    if (rc != 0)
        TEST_FAIL_("waiting for msg_id %" PRIu64 " ('%s' from %s to %s): %s", id, cmid, from,
                   to, rc_str(rc));
    if ((id != 0 && m.msg_id != id) || strcmp(m.client_msg_id, cmid) != 0)
        TEST_FAIL_("got msg_id %" PRIu64 " ('%s' from %s to %s, type %d), want %" PRIu64
                   " ('%s' from %s to %s)",
                   m.msg_id, m.client_msg_id, m.from, m.to, m.msg_type, id, cmid, from, to);
    ASSERT_EQ(m.conv_type, conv_type);
    ASSERT_STREQ(m.from, from);
    ASSERT_STREQ(m.to, to);
    ASSERT_EQ(m.msg_type, msg_type);
    ASSERT_EQ(m.body_len, len);
    ASSERT_NOT_NULL(m.body);
    if (len > 0)
        ASSERT_MEMEQ(m.body, body, len);
    ASSERT_EQ(m.flags, 0);
    return m.time_ms;
}

uint64_t tmsg_expect_sys(cimc_t *c, const char *gid, int kind, const char *actor,
                         const char *const *users, size_t n, cim_GroupEvent **ev)
{
    static uint8_t buf[EXPECT_BODY_MAX];
    cim_GroupEvent *e;
    tmsg_t m;
    int rc = tmsg_next_push(c, 5000, &m, buf, sizeof(buf));

    if (rc != 0)
        TEST_FAIL_("waiting for the SYSTEM message (kind %d by %s) of group %s: %s", kind,
                   actor, gid, rc_str(rc));
    ASSERT_NOT_NULL(m.body);
    ASSERT_STREQ(m.client_msg_id, "");
    ASSERT_EQ(m.flags, 0);
    e = tmsg_expect_group_event(&m, gid, kind, actor, users, n);
    if (ev != NULL)
        *ev = e;
    else
        free(e);
    return m.msg_id;
}
