/* dump: conversations: convs. */
#include <stdlib.h>
#include <string.h>

#include "cmd/cimdump/dump_int.h"
#include "cmd/cimdump/jv.h"
#include "actors/conv.h"
#include "core/mem.h"
#include "core/rc.h"

typedef struct conv_row {
    int type;
    char peer[KV_ID_MAX + 1];
    conv_rec_t c;
    conv_view_t v;      /* last message and unread, derived as CONV_LIST does */
    uint64_t peer_read; /* DIRECT: the peer's read cursor in the same conversation */
    uint64_t messages;  /* the conversation index (shared by its participants) */
} conv_row_t;

typedef struct convsctx {
    dump_t *d;
    const char *user;
    conv_row_t *rows;
    size_t n, cap;
    int rc;
} convsctx_t;

static int on_conv(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val, size_t vlen)
{
    convsctx_t *cc = ctx;
    conv_row_t *r;

    /* suffix: conv_type (one byte) then the peer's id */
    if (slen < 2 || slen - 1 > KV_ID_MAX)
        return 0;
    if (cc->n == cc->cap) {
        cc->cap = cc->cap ? 2 * cc->cap : 16;
        cc->rows = mem_realloc(cc->rows, cc->cap * sizeof(*cc->rows));
    }
    r = &cc->rows[cc->n++];
    memset(r, 0, sizeof(*r));
    r->type = sfx[0];
    memcpy(r->peer, sfx + 1, slen - 1);
    r->peer[slen - 1] = '\0';
    conv_decode(val, vlen, &r->c);
    return 0;
}

/* Newest first, as CONV_LIST answers. */
static int conv_cmp(const void *a, const void *b)
{
    const conv_row_t *x = a, *y = b;
    if (x->v.last_id != y->v.last_id)
        return x->v.last_id > y->v.last_id ? -1 : 1;
    return strcmp(x->peer, y->peer);
}

static int conv_extra(dump_t *d, const char *user, conv_row_t *r)
{
    uint8_t key[CONV_UKEY_MAX];
    size_t klen;
    conv_rec_t pc;
    int rc;

    if (r->type == cim_ConvType_DIRECT && kv_id_valid(r->peer)) {
        klen = conv_ukey(key, d->app, r->peer, cim_ConvType_DIRECT, user);
        if ((rc = conv_load(d->txn, key, klen, &pc)) < 0 && rc != RC_ENOTFOUND)
            return rc;
        if ((rc = conv_read_cursor(d->txn, d->app, r->peer, cim_ConvType_DIRECT, user, &pc,
                                   &r->peer_read)) < 0)
            return rc;
    }
    if ((rc = conv_view(d->txn, d->app, user, r->type, r->peer, &r->c, &r->v)) < 0)
        return rc;
    return conv_index_count(d->txn, d->app, user, r->type, r->peer, &r->messages);
}

int dump__cmd_convs(dump_t *d)
{
    const char *user = d->pos[0];
    convsctx_t cc = {.d = d, .user = user};
    uint64_t unread = 0;
    FILE *f = d->out;
    char e[16];
    int rc;

    if ((rc = dump__need_user(d, user, NULL)) < 0)
        return rc;
    if ((rc = conv_scan(d->txn, d->app, user, on_conv, &cc)) < 0) {
        dump__fail_rc(d, "cannot read the conversations", rc);
        goto out;
    }
    for (size_t i = 0; i < cc.n; i++) {
        if ((rc = conv_extra(d, user, &cc.rows[i])) < 0) {
            dump__fail_rc(d, "cannot read a conversation", rc);
            goto out;
        }
        unread += cc.rows[i].v.unread;
    }
    if (cc.n > 1)
        qsort(cc.rows, cc.n, sizeof(*cc.rows), conv_cmp);
    if (d->json) {
        json_t *convs = jv_arr();
        d->doc = jv_obj();
        jv_set(d->doc, "app", jv_str(d->app));
        jv_set(d->doc, "user", jv_str(user));
        jv_set(d->doc, "count", jv_u64(cc.n));
        jv_set(d->doc, "total_unread", jv_u64(unread));
        jv_set(d->doc, "convs", convs); /* held by the document, filled below */
        for (size_t i = 0; i < cc.n; i++) {
            const conv_row_t *r = &cc.rows[i];
            json_t *o = jv_obj();
            jv_set(o, "conv_type", jv_str(dump__conv_name(e, r->type)));
            jv_set(o, "peer", jv_str(r->peer));
            jv_set(o, "last_id", jv_id_or_null(r->v.last_id));
            jv_set(o, "updated_ms", jv_u64(r->v.updated_ms));
            jv_set(o, "unread", jv_u64(r->v.unread));
            jv_set(o, "read_up_to", jv_id(r->v.read_up_to));
            if (r->type == cim_ConvType_DIRECT)
                jv_set(o, "peer_read_up_to", jv_id(r->peer_read));
            else
                jv_set(o, "peer_read_up_to", json_null());
            jv_set(o, "left_id", jv_id_or_null(r->c.left_id));
            jv_set(o, "messages", jv_u64(r->messages));
            jv_push(convs, o);
        }
        goto out;
    }
    fprintf(f, "%-6s %-20s %20s %7s %20s %20s %8s %s\n", "CONV", "PEER", "LAST", "UNREAD",
            "READ UP TO", "PEER READ UP TO", "MESSAGES", "STATE");
    for (size_t i = 0; i < cc.n; i++) {
        const conv_row_t *r = &cc.rows[i];
        char pr[24];
        snprintf(pr, sizeof(pr), "%llu", (unsigned long long)r->peer_read);
        fprintf(f, "%-6s %-20s %20llu %7u %20llu %20s %8llu %s\n",
                r->type == cim_ConvType_GROUP    ? "group"
                : r->type == cim_ConvType_DIRECT ? "direct"
                                                 : dump__conv_name(e, r->type),
                r->peer, (unsigned long long)r->v.last_id, (unsigned)r->v.unread,
                (unsigned long long)r->v.read_up_to, r->type == cim_ConvType_DIRECT ? pr : "-",
                (unsigned long long)r->messages, r->c.left_id ? "left" : "-");
    }
    fprintf(f, "(%zu conversations, %llu unread)\n", cc.n, (unsigned long long)unread);
out:
    mem_free(cc.rows);
    return rc;
}
