#include "actors/group.h"

#include <stdio.h>
#include <string.h>

#include "core/be.h"
#include "core/rc.h"

int group_id_parse(const char *s, uint64_t *gid)
{
    uint64_t v = 0;
    size_t n = strlen(s);
    if (n == 0 || n > 19 || s[0] == '0')
        return RC_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return RC_EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *gid = v;
    return 0;
}

size_t group_key(uint8_t out[GROUP_KEY_MAX], const char *app, uint64_t gid)
{
    size_t a = strnlen(app, KV_ID_MAX);
    memcpy(out, app, a);
    out[a] = '\0';
    be64_put(out + a + 1, gid);
    return a + 9;
}

int group_load(kv_txn_t *txn, const char *app, uint64_t gid, group_t *g)
{
    uint8_t key[GROUP_KEY_MAX];
    const uint8_t *v;
    size_t vlen, o, n;
    int rc = kv_rec_get(txn, KV_DB_GROUPS, key, group_key(key, app, gid), &v, &vlen);
    if (rc < 0)
        return rc;
    memset(g, 0, sizeof(*g));
    if (vlen < 15)
        return RC_ESTORE;
    g->gid = gid;
    g->dismissed = (v[0] & 1) != 0;
    g->open = (v[0] & 2) != 0;
    g->created_ms = be64_get(v + 1);
    g->member_count = be32_get(v + 9);
    o = 13;
    n = v[o++];
    if (n > KV_ID_MAX || o + n + 1 > vlen)
        return RC_ESTORE;
    memcpy(g->owner, v + o, n);
    o += n;
    n = v[o++];
    if (n > KV_ID_MAX || o + n > vlen)
        return RC_ESTORE;
    memcpy(g->name, v + o, n);
    return 0;
}

int group_save(kv_txn_t *txn, const char *app, const group_t *g)
{
    uint8_t key[GROUP_KEY_MAX], v[15 + 2 * KV_ID_MAX];
    size_t o = 0, n;
    v[o++] = (uint8_t)((g->dismissed ? 1 : 0) | (g->open ? 2 : 0));
    be64_put(v + o, g->created_ms);
    o += 8;
    be32_put(v + o, g->member_count);
    o += 4;
    n = strnlen(g->owner, KV_ID_MAX);
    v[o++] = (uint8_t)n;
    memcpy(v + o, g->owner, n);
    o += n;
    n = strnlen(g->name, KV_ID_MAX);
    v[o++] = (uint8_t)n;
    memcpy(v + o, g->name, n);
    o += n;
    return kv_rec_put(txn, KV_DB_GROUPS, key, group_key(key, app, g->gid), v, o);
}

void group_to_pb(const group_t *g, cim_Group *out)
{
    memset(out, 0, sizeof(*out));
    snprintf(out->group_id, sizeof(out->group_id), "%llu", (unsigned long long)g->gid);
    snprintf(out->name, sizeof(out->name), "%s", g->name);
    snprintf(out->owner, sizeof(out->owner), "%s", g->owner);
    out->created_ms = g->created_ms;
    out->member_count = g->member_count;
    out->open = g->open;
}
