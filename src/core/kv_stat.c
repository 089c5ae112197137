/* kv_stat: read-only statistics and listings for inspection (cimdump): per-database
 * statistics, the environment, the reader table, a user's device cursors and the oldest
 * message. Nothing here writes. Layout reference: docs/STORAGE.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/be.h"
#include "core/kv.h"
#include "core/kv_int.h"
#include "core/log.h"
#include "core/rc.h"

/* LMDB's free-page list is its database 0 (FREE_DBI); mdb_stat(1) reads it the same way. */
#define KV_FREE_DBI 0

static void fill(kv_dbstat_t *st, const char *name, const MDB_stat *ms, unsigned flags)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->name, sizeof(st->name), "%s", name);
    st->dupsort = (flags & MDB_DUPSORT) != 0;
    st->depth = ms->ms_depth;
    st->entries = ms->ms_entries;
    st->branch_pages = ms->ms_branch_pages;
    st->leaf_pages = ms->ms_leaf_pages;
    st->overflow_pages = ms->ms_overflow_pages;
}

/* Stat one named database; @return 1 when @p name is a key of the main database that
 * names no database (skipped), else 0 or rc. */
static int stat_named(MDB_txn *mt, const char *name, kv_dbstat_t *st)
{
    MDB_dbi dbi;
    MDB_stat ms;
    unsigned flags = 0;
    /* Every cim database is open since kv_open: this returns its handle. Another one is
     * opened for this transaction only (an aborted read txn drops the handle). */
    int mrc = mdb_dbi_open(mt, name, 0, &dbi);

    if (mrc == MDB_INCOMPATIBLE || mrc == MDB_NOTFOUND)
        return 1;
    if (mrc != MDB_SUCCESS)
        return kv__rc(mrc, "mdb_dbi_open");
    if ((mrc = mdb_stat(mt, dbi, &ms)) != MDB_SUCCESS ||
        (mrc = mdb_dbi_flags(mt, dbi, &flags)) != MDB_SUCCESS)
        return kv__rc(mrc, "mdb_stat");
    fill(st, name, &ms, flags);
    return 0;
}

static int free_pages_count(MDB_txn *mt, uint64_t *out)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    uint64_t pages = 0;
    int rc, mrc;

    if ((rc = kv__rc(mdb_cursor_open(mt, KV_FREE_DBI, &cur), "cursor free")) < 0)
        return rc;
    /* Each record is an IDL: a count (size_t) followed by that many page numbers. */
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == MDB_SUCCESS) {
        size_t n;
        if (v.mv_size < sizeof(size_t))
            continue;
        memcpy(&n, v.mv_data, sizeof(n));
        pages += n;
    }
    mdb_cursor_close(cur);
    if (mrc != MDB_NOTFOUND)
        return kv__rc(mrc, "mdb_cursor_get free");
    *out = pages;
    return 0;
}

int kv_stat_each(kv_txn_t *txn, int (*cb)(void *ctx, const kv_dbstat_t *st), void *ctx,
                 uint64_t *free_pages)
{
    MDB_txn *mt = kv__txn(txn);
    MDB_cursor *cur = NULL;
    MDB_dbi main_dbi;
    MDB_stat ms;
    MDB_val k, v;
    kv_dbstat_t st;
    char name[sizeof(st.name)];
    int rc, mrc;

    if ((rc = kv__rc(mdb_dbi_open(mt, NULL, 0, &main_dbi), "mdb_dbi_open main")) < 0)
        return rc;
    if ((rc = kv__rc(mdb_cursor_open(mt, main_dbi, &cur), "cursor main")) < 0)
        return rc;
    while ((mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == MDB_SUCCESS) {
        /* The main database's keys are the names of the others (no terminator). */
        if (k.mv_size == 0 || k.mv_size >= sizeof(name) ||
            memchr(k.mv_data, '\0', k.mv_size) != NULL)
            continue;
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        if ((rc = stat_named(mt, name, &st)) == 1)
            continue;
        if (rc < 0 || (rc = cb(ctx, &st)) != 0)
            goto out;
    }
    if (mrc != MDB_NOTFOUND) {
        rc = kv__rc(mrc, "mdb_cursor_get main");
        goto out;
    }
    if ((rc = kv__rc(mdb_stat(mt, main_dbi, &ms), "mdb_stat main")) < 0)
        goto out;
    fill(&st, "(main)", &ms, 0);
    if ((rc = cb(ctx, &st)) != 0)
        goto out;
    if ((rc = kv__rc(mdb_stat(mt, KV_FREE_DBI, &ms), "mdb_stat free")) < 0)
        goto out;
    fill(&st, "(free)", &ms, 0);
    if ((rc = cb(ctx, &st)) != 0)
        goto out;
    if (free_pages != NULL)
        rc = free_pages_count(mt, free_pages);
out:
    mdb_cursor_close(cur);
    return rc;
}

int kv_env_info(kv_t *kv, kv_envinfo_t *out)
{
    MDB_envinfo info;
    MDB_stat ms;
    struct stat sb;
    mdb_filehandle_t fd;
    int rc;

    if ((rc = kv__rc(mdb_env_info(kv->env, &info), "mdb_env_info")) < 0 ||
        (rc = kv__rc(mdb_env_stat(kv->env, &ms), "mdb_env_stat")) < 0 ||
        (rc = kv__rc(mdb_env_get_fd(kv->env, &fd), "mdb_env_get_fd")) < 0)
        return rc;
    if (fstat(fd, &sb) < 0)
        return -errno;
    memset(out, 0, sizeof(*out));
    out->map_size = info.me_mapsize;
    out->last_page = info.me_last_pgno;
    out->last_txn = info.me_last_txnid;
    out->file_size = (uint64_t)sb.st_size;
    out->page_size = ms.ms_psize;
    out->max_readers = info.me_maxreaders;
    out->reader_slots = info.me_numreaders;
    return 0;
}

typedef struct readers {
    int (*cb)(void *ctx, long pid, uint64_t txn);
    void *ctx;
    int rc; /* the callback's non-zero value, or RC_ESTORE for a line not understood */
} readers_t;

/* mdb_reader_list hands formatted lines: a header "    pid     thread     txnid", then
 * "PID TID(hex) TXNID" per slot in use, TXNID "-" between transactions; or
 * "(no active readers)". */
static int on_reader_line(const char *msg, void *arg)
{
    readers_t *r = arg;
    char txt[32];
    unsigned long long tid, txn = 0;
    long pid;
    char *end;

    if (strstr(msg, "pid") != NULL || msg[0] == '(')
        return 0;
    if (sscanf(msg, "%ld %llx %31s", &pid, &tid, txt) != 3) {
        LOG_ERROR("kv: reader table line not understood: %s", msg);
        r->rc = RC_ESTORE;
        return -1;
    }
    if (strcmp(txt, "-") != 0) {
        errno = 0;
        txn = strtoull(txt, &end, 10);
        if (errno != 0 || *end != '\0') {
            LOG_ERROR("kv: reader table line not understood: %s", msg);
            r->rc = RC_ESTORE;
            return -1;
        }
    }
    if ((r->rc = r->cb(r->ctx, pid, (uint64_t)txn)) != 0)
        return -1;
    return 0;
}

int kv_reader_each(kv_t *kv, int (*cb)(void *ctx, long pid, uint64_t txn), void *ctx)
{
    readers_t r = {cb, ctx, 0};
    int mrc = mdb_reader_list(kv->env, on_reader_line, &r);

    if (r.rc != 0)
        return r.rc;
    return mrc < 0 ? RC_ESTORE : 0; /* only our callback returns < 0 */
}

int kv_cursor_each(kv_txn_t *txn, const uint8_t *ukey, size_t klen,
                   int (*cb)(void *ctx, const char *device, uint64_t id), void *ctx)
{
    MDB_cursor *cur = NULL;
    uint8_t prefix[KV_UKEY_MAX + 1];
    char device[64 + 1];
    MDB_val k, v;
    size_t plen;
    int rc, mrc;

    if (klen > KV_UKEY_MAX)
        return RC_EINVAL;
    /* user key NUL: a user's devices only, not those of a user whose id extends it */
    memcpy(prefix, ukey, klen);
    prefix[klen] = '\0';
    plen = klen + 1;
    if ((rc = kv__rc(mdb_cursor_open(kv__txn(txn), kv__of(txn)->cursors, &cur), "cursor")) < 0)
        return rc;
    k.mv_size = plen;
    k.mv_data = prefix;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t dlen;
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        dlen = k.mv_size - plen;
        if (dlen == 0 || dlen >= sizeof(device) || v.mv_size != 8) {
            LOG_ERROR("kv: malformed cursors record (key %zu bytes, value %zu bytes)", k.mv_size,
                      v.mv_size);
            rc = RC_ESTORE;
            goto out;
        }
        memcpy(device, (const uint8_t *)k.mv_data + plen, dlen);
        device[dlen] = '\0';
        if ((rc = cb(ctx, device, be64_get(v.mv_data))) != 0)
            goto out;
    }
    rc = mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND ? 0 : kv__rc(mrc, "mdb_cursor_get cursors");
out:
    mdb_cursor_close(cur);
    return rc;
}
