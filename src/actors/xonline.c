/* xonline: the online flag of contacts of other homes — the request, and the bus formats of
 * the question and its answer (xonline.h). */
#include "actors/xonline.h"

#include <string.h>

#include "core/be.h"
#include "core/mem.h"
#include "core/rc.h"

xonline_req_t *xonline_req_new(size_t n)
{
    xonline_req_t *q = mem_calloc(sizeof(*q) + n * sizeof(q->ents[0]));
    q->hdr.kind = XONLINE_REQ;
    return q;
}

int xonline_ask_encode(uint64_t token, const char *app, const char *const *users, size_t n,
                       uint8_t *out, size_t *len)
{
    size_t used = XONLINE_ASK_HDR, l = strlen(app);

    if (n == 0 || n > XONLINE_MAX || l > KV_ID_MAX)
        return RC_EINVAL;
    be64_put(out, token);
    out[8] = (uint8_t)(n >> 8);
    out[9] = (uint8_t)n;
    memcpy(out + used, app, l + 1);
    used += l + 1;
    for (size_t i = 0; i < n; i++) {
        if ((l = strlen(users[i])) > KV_ID_MAX)
            return RC_EINVAL;
        memcpy(out + used, users[i], l + 1);
        used += l + 1;
    }
    *len = used;
    return 0;
}

/* The NUL-terminated id at @p p (before @p end) into @p out. @return its length with the
 * NUL, or 0 when it is not a valid id. */
static size_t take_id(const uint8_t *p, const uint8_t *end, char out[KV_ID_MAX + 1])
{
    size_t n = p < end ? strnlen((const char *)p, (size_t)(end - p)) : 0;

    if (n == 0 || n > KV_ID_MAX || p + n >= end)
        return 0;
    memcpy(out, p, n + 1);
    return kv_id_valid(out) ? n + 1 : 0;
}

int xonline_ask_parse(const uint8_t *p, size_t len, xonline_ask_t *out)
{
    const uint8_t *end = p + len, *q;
    char user[KV_ID_MAX + 1];
    xonline_ask_t a;
    size_t k;

    if (len < XONLINE_ASK_HDR || len > XONLINE_ASK_MAX)
        return RC_EPROTO;
    a.token = be64_get(p);
    a.n = (uint32_t)p[8] << 8 | p[9];
    if (a.n == 0 || a.n > XONLINE_MAX)
        return RC_EPROTO;
    q = p + XONLINE_ASK_HDR;
    if ((k = take_id(q, end, a.app)) == 0)
        return RC_EPROTO;
    q += k;
    a.users = q;
    for (uint32_t i = 0; i < a.n; i++) {
        if ((k = take_id(q, end, user)) == 0)
            return RC_EPROTO;
        q += k;
    }
    if (q != end)
        return RC_EPROTO;
    a.users_len = (size_t)(end - a.users);
    *out = a;
    return 0;
}

bool xonline_ask_user(const xonline_ask_t *q, size_t *pos, char out[KV_ID_MAX + 1])
{
    size_t k;

    if (*pos >= q->users_len)
        return false;
    k = take_id(q->users + *pos, q->users + q->users_len, out);
    *pos += k;
    return k != 0; /* the parser checked every one */
}

size_t xonline_ans_init(uint8_t *out, uint64_t token, uint32_t node, size_t n)
{
    size_t len = XONLINE_ANS_HDR + (n + 7) / 8;

    memset(out, 0, len);
    be64_put(out, token);
    be32_put(out + 8, node);
    out[12] = (uint8_t)(n >> 8);
    out[13] = (uint8_t)n;
    return len;
}

void xonline_ans_set(uint8_t *out, size_t i)
{
    out[XONLINE_ANS_HDR + i / 8] |= (uint8_t)(1u << (i % 8));
}

int xonline_ans_parse(const uint8_t *p, size_t len, xonline_ans_t *out)
{
    xonline_ans_t a;

    if (len < XONLINE_ANS_HDR || len > XONLINE_ANS_MAX)
        return RC_EPROTO;
    a.token = be64_get(p);
    a.node = be32_get(p + 8);
    a.n = (uint32_t)p[12] << 8 | p[13];
    a.bits = p + XONLINE_ANS_HDR;
    if (a.n == 0 || a.n > XONLINE_MAX || len != XONLINE_ANS_HDR + (a.n + 7) / 8)
        return RC_EPROTO;
    if (a.n % 8 != 0 && (a.bits[a.n / 8] >> (a.n % 8)) != 0)
        return RC_EPROTO; /* a bit past the count */
    *out = a;
    return 0;
}

bool xonline_ans_get(const xonline_ans_t *a, size_t i)
{
    return (a->bits[i / 8] >> (i % 8)) & 1;
}
