/* xhome: the bus formats of messages between homes, and the merge (xhome.h). */
#include "actors/xhome.h"

#include <string.h>

#include "core/be.h"
#include "core/mem.h"
#include "core/rc.h"
#include "core/snowflake.h"

/* ---- formats --------------------------------------------------------------------------- */

int xhome_encode(const xhome_msg_t *m, uint8_t **out, size_t *len)
{
    size_t a = strlen(m->app), f = strlen(m->from), t = strlen(m->to), ul = 0, n;
    bool users = (m->flags & XHOME_F_USERS) != 0, skip = (m->flags & XHOME_F_SKIP) != 0;
    uint8_t *p, *q;

    if (a > KV_ID_MAX || f > KV_ID_MAX || t > KV_ID_MAX || m->rec_len > XHOME_REC_MAX ||
        (users && m->nusers > XHOME_USERS_MAX))
        return RC_EINVAL;
    for (uint32_t i = 0; users && i < m->nusers; i++) {
        size_t u = strlen(m->users[i]);
        if (u > KV_ID_MAX)
            return RC_EINVAL;
        ul += 1 + u;
    }
    n = XHOME_HDR + a + f + t + (skip ? 8 : 0) + (users ? 4 + ul : 0) + m->rec_len;
    p = mem_alloc(n);
    memset(p, 0, XHOME_HDR);
    p[0] = m->kind;
    p[1] = XHOME_VERSION;
    p[2] = (uint8_t)a;
    p[3] = (uint8_t)f;
    p[4] = (uint8_t)t;
    p[5] = m->conv_type;
    p[6] = m->msg_type;
    p[7] = m->flags;
    be32_put(p + 8, m->origin);
    be32_put(p + 12, m->home);
    be64_put(p + 16, m->id);
    q = p + XHOME_HDR;
    memcpy(q, m->app, a);
    memcpy(q + a, m->from, f);
    memcpy(q + a + f, m->to, t);
    q += a + f + t;
    if (skip) {
        be64_put(q, m->skip_sid);
        q += 8;
    }
    if (users) {
        be32_put(q, m->nusers);
        q += 4;
        for (uint32_t i = 0; i < m->nusers; i++) {
            size_t u = strlen(m->users[i]);
            *q++ = (uint8_t)u;
            memcpy(q, m->users[i], u);
            q += u;
        }
    }
    if (m->rec_len > 0)
        memcpy(q, m->rec, m->rec_len);
    *out = p;
    *len = n;
    return 0;
}

/* Copy @p n bytes at @p p into @p out as a string; a valid id (kv_id_valid) or refused —
 * a NUL inside too, which would cut the id short past the check. */
static bool take_id(const uint8_t *p, size_t n, char out[KV_ID_MAX + 1])
{
    if (n == 0 || n > KV_ID_MAX || memchr(p, 0, n) != NULL)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return kv_id_valid(out);
}

bool xhome_user(const xhome_msg_t *m, size_t *pos, char out[KV_ID_MAX + 1])
{
    size_t u;

    if (*pos >= m->ulist_len)
        return false;
    u = m->ulist[*pos];
    if (*pos + 1 + u > m->ulist_len || !take_id(m->ulist + *pos + 1, u, out))
        return false;
    *pos += 1 + u;
    return true;
}

/* The user list at @p p (at most @p len bytes): its length in @p used. */
static bool parse_users(xhome_msg_t *out, const uint8_t *p, size_t len, size_t *used)
{
    char user[KV_ID_MAX + 1];
    size_t pos = 0;

    if (len < 4 || (out->nusers = be32_get(p)) > XHOME_USERS_MAX)
        return false;
    out->ulist = p + 4;
    out->ulist_len = len - 4;
    for (uint32_t i = 0; i < out->nusers; i++)
        if (!xhome_user(out, &pos, user))
            return false;
    out->ulist_len = pos;
    *used = 4 + pos;
    return true;
}

int xhome_parse(const uint8_t *p, size_t len, xhome_msg_t *out)
{
    size_t a, f, t, off, used = 0;
    uint32_t node, seq;
    uint64_t ms;

    memset(out, 0, sizeof(*out));
    if (len < XHOME_HDR || p[1] != XHOME_VERSION || (p[0] != XHOME_MSG && p[0] != XHOME_PROBE))
        return RC_EPROTO;
    out->kind = p[0];
    out->conv_type = p[5];
    out->msg_type = p[6];
    out->flags = p[7];
    out->origin = be32_get(p + 8);
    out->home = be32_get(p + 12);
    out->id = be64_get(p + 16);
    a = p[2];
    f = p[3];
    t = p[4];
    if (out->home > SNOWFLAKE_NODE_MAX)
        return RC_EPROTO;
    if (out->kind == XHOME_PROBE)
        return len == XHOME_HDR && a + f + t == 0 && out->flags == 0 ? 0 : RC_EPROTO;
    off = XHOME_HDR + a + f + t;
    if (len <= off || out->origin > SNOWFLAKE_NODE_MAX ||
        (out->flags & ~(XHOME_F_INDEX | XHOME_F_HOOK | XHOME_F_USERS | XHOME_F_SKIP)) != 0)
        return RC_EPROTO;
    snowflake_decode(out->id, &ms, &node, &seq);
    if (out->id == 0 || node != out->origin)
        return RC_EPROTO;
    if (!take_id(p + XHOME_HDR, a, out->app) || !take_id(p + XHOME_HDR + a, f, out->from) ||
        !take_id(p + XHOME_HDR + a + f, t, out->to))
        return RC_EPROTO;
    if (out->flags & XHOME_F_SKIP) {
        if (len - off < 8)
            return RC_EPROTO;
        out->skip_sid = be64_get(p + off);
        off += 8;
    }
    if ((out->flags & XHOME_F_USERS) && !parse_users(out, p + off, len - off, &used))
        return RC_EPROTO;
    off += used;
    if (len <= off)
        return RC_EPROTO;
    out->rec = p + off;
    out->rec_len = len - off;
    return out->rec_len > XHOME_REC_MAX ? RC_EPROTO : 0;
}

int xhome_outbox_each(const uint8_t *p, size_t len,
                      int (*cb)(void *ctx, const uint8_t *x, size_t xlen), void *ctx)
{
    size_t off = 1;
    int rc;

    if (len == 0)
        return RC_EPROTO;
    if (p[0] != XHOME_OUTBOX_MULTI)
        return cb(ctx, p, len);
    /* checked whole before the first call: an entry is handed over entirely or not at all */
    while (off < len) {
        if (len - off < 4 || be32_get(p + off) > len - off - 4)
            return RC_EPROTO;
        off += 4 + be32_get(p + off);
    }
    for (off = 1; off < len; off += 4 + be32_get(p + off))
        if ((rc = cb(ctx, p + off + 4, be32_get(p + off))) != 0)
            return rc;
    return 0;
}

size_t xhome_wm_encode(const xhome_wm_t *w, uint8_t *out)
{
    size_t n = 16;

    be32_put(out, w->origin);
    be64_put(out + 4, w->horizon);
    be32_put(out + 12, w->n);
    for (uint32_t i = 0; i < w->n && i < CONF_CLUSTER_MAX; i++, n += 12) {
        be32_put(out + n, w->home[i]);
        be64_put(out + n + 4, w->seq[i]);
    }
    return n;
}

int xhome_wm_parse(const uint8_t *p, size_t len, xhome_wm_t *out)
{
    memset(out, 0, sizeof(*out));
    if (len < 16)
        return RC_EPROTO;
    out->origin = be32_get(p);
    out->horizon = be64_get(p + 4);
    out->n = be32_get(p + 12);
    if (out->origin > SNOWFLAKE_NODE_MAX || out->n > CONF_CLUSTER_MAX ||
        len != 16 + (size_t)out->n * 12)
        return RC_EPROTO;
    for (uint32_t i = 0; i < out->n; i++) {
        out->home[i] = be32_get(p + 16 + i * 12);
        out->seq[i] = be64_get(p + 20 + i * 12);
    }
    return 0;
}

uint64_t xhome_wm_seq(const xhome_wm_t *w, uint32_t home)
{
    for (uint32_t i = 0; i < w->n; i++)
        if (w->home[i] == home)
            return w->seq[i];
    return 0;
}

/* ---- the merge ------------------------------------------------------------------------- */

static int origin_index(const xmerge_t *x, uint32_t origin)
{
    for (size_t i = 0; i < x->n; i++)
        if (x->nodes[i] == origin)
            return (int)i;
    return -1;
}

void xmerge_init(xmerge_t *x, const uint32_t *nodes, size_t n)
{
    memset(x, 0, sizeof(*x));
    x->n = n > CONF_CLUSTER_MAX ? CONF_CLUSTER_MAX : n;
    memcpy(x->nodes, nodes, x->n * sizeof(*nodes));
}

int xmerge_add(xmerge_t *x, uint32_t origin, uint64_t id, void *data, uint64_t now_ns)
{
    int i = origin_index(x, origin);
    xmerge_ent_t *e, **pp;

    if (i < 0)
        return RC_EINVAL;
    e = mem_alloc(sizeof(*e));
    e->id = id;
    e->origin = origin;
    e->t_in_ns = now_ns;
    e->data = data;
    e->next = NULL;
    if (x->tail[i] == NULL || x->tail[i]->id < id) {
        /* the usual case: an origin sends in id order */
        if (x->tail[i] != NULL)
            x->tail[i]->next = e;
        else
            x->head[i] = e;
        x->tail[i] = e;
    } else {
        /* a republish overtaken by newer ones: where it belongs */
        for (pp = &x->head[i]; *pp != NULL && (*pp)->id < id; pp = &(*pp)->next)
            ;
        e->next = *pp;
        *pp = e;
    }
    x->pending++;
    if (x->horizon[i] <= id)
        x->horizon[i] = id + 1;
    return 0;
}

void xmerge_horizon(xmerge_t *x, uint32_t origin, uint64_t horizon)
{
    int i = origin_index(x, origin);

    if (i >= 0 && x->horizon[i] < horizon)
        x->horizon[i] = horizon;
}

void xmerge_waive(xmerge_t *x, uint32_t origin, bool waived)
{
    int i = origin_index(x, origin);

    if (i >= 0)
        x->waived[i] = waived;
}

xmerge_ent_t *xmerge_next(xmerge_t *x)
{
    xmerge_ent_t *e;
    size_t best = x->n;

    for (size_t i = 0; i < x->n; i++)
        if (x->head[i] != NULL && (best == x->n || x->head[i]->id < x->head[best]->id))
            best = i;
    if (best == x->n)
        return NULL;
    e = x->head[best];
    for (size_t i = 0; i < x->n; i++)
        if (i != best && !x->waived[i] && x->horizon[i] <= e->id)
            return NULL; /* origin i may still send an id below e's */
    x->head[best] = e->next;
    if (x->head[best] == NULL)
        x->tail[best] = NULL;
    e->next = NULL;
    x->pending--;
    if (e->id > x->released)
        x->released = e->id;
    return e;
}

void xmerge_clear(xmerge_t *x, void (*drop)(void *data))
{
    for (size_t i = 0; i < x->n; i++) {
        xmerge_ent_t *e = x->head[i], *next;
        for (; e != NULL; e = next) {
            next = e->next;
            if (drop != NULL)
                drop(e->data);
            mem_free(e);
        }
        x->head[i] = x->tail[i] = NULL;
    }
    x->pending = 0;
}
