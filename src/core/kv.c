/* kv: the LMDB environment and its typed records. Layout reference: docs/STORAGE.md. */
#include "core/kv.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>
#include <time.h>

#include "core/be.h"
#include "core/kv_int.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/rc.h"

/* The data file holds the whole map (reserved: see reserve()), so the map starts small
 * and doubles when full (kv_grow; an environment that another process grew keeps its
 * size): the file is at most twice the data, plus this. */
#define KV_MAP_INITIAL (64ULL << 20)

/* Under ThreadSanitizer the writer's in-place writes to pages LMDB recycles race, as far as
 * TSan can tell, with readers that finished with them: the reader table that orders them
 * lives in lock.mdb's shared memory, which TSan cannot see. Without MDB_WRITEMAP the
 * writes go through pwrite, out of TSan's sight, so the tsan variant keeps that path and
 * checks everything of ours around it; the other variants map writably when nosync. */
#if defined(__SANITIZE_THREAD__)
#define KV_USE_WRITEMAP 0
#else
#define KV_USE_WRITEMAP 1
#endif
#define KV_MAX_DBS 32
#define KV_MAX_READERS 256 /* worker threads, cimdump and cimctl, each txn one slot */

#define APP_VAL_LEN (32 + 8) /* secret || created_ms; settings may follow */
#define USER_KEY_MAX (2 * KV_ID_MAX + 1)
#define USER_VAL_LEN 8 /* created_ms; a flags byte may follow */


/* Every named database, opened once by kv_open. A new database is one line here, one
 * MDB_dbi in struct kv, and a section in docs/STORAGE.md. */
static const struct {
    const char *name;
    unsigned flags; /* MDB_DUPSORT etc.; MDB_CREATE is added for writable opens */
    size_t off;     /* of its MDB_dbi in struct kv */
} dbs[] = {
    {"meta", 0, offsetof(struct kv, meta)},
    {"apps", 0, offsetof(struct kv, apps)},
    {"users", 0, offsetof(struct kv, users)},
    {"msgs", 0, offsetof(struct kv, msgs)},
    {"timeline", MDB_DUPSORT | MDB_DUPFIXED, offsetof(struct kv, timeline)},
    {"cursors", 0, offsetof(struct kv, cursors)},
    {"cmsgs", MDB_DUPSORT | MDB_DUPFIXED, offsetof(struct kv, cmsgs)},
    {"cevents", MDB_DUPSORT | MDB_DUPFIXED, offsetof(struct kv, cevents)},
    {"groups", 0, offsetof(struct kv, recs[KV_DB_GROUPS])},
    {"members", 0, offsetof(struct kv, recs[KV_DB_MEMBERS])},
    {"ugroups", 0, offsetof(struct kv, recs[KV_DB_UGROUPS])},
    {"convs", 0, offsetof(struct kv, recs[KV_DB_CONVS])},
    {"contacts", 0, offsetof(struct kv, recs[KV_DB_CONTACTS])},
    {"rcontacts", 0, offsetof(struct kv, recs[KV_DB_RCONTACTS])},
    {"blocks", 0, offsetof(struct kv, recs[KV_DB_BLOCKS])},
    {"gspans", 0, offsetof(struct kv, recs[KV_DB_GSPANS])},
    {"cpend", 0, offsetof(struct kv, cpend)},
};

static const char META_SCHEMA[] = "schema";
static const char META_LAST_ID[] = "last_id";
static const char DEFAULT_APP[] = "default";

/* kv_txn_t is the MDB_txn itself: no allocation per transaction. The kv_t (for the DBI
 * handles) is the environment's user context. */
MDB_txn *kv__txn(kv_txn_t *txn)
{
    return (MDB_txn *)txn;
}

kv_t *kv__of(kv_txn_t *txn)
{
    return mdb_env_get_userctx(mdb_txn_env(kv__txn(txn)));
}

/* The one place LMDB codes become rc values. */
int kv__rc(int mrc, const char *what)
{
    switch (mrc) {
    case MDB_SUCCESS: return 0;
    case MDB_NOTFOUND: return RC_ENOTFOUND;
    case MDB_KEYEXIST: return RC_EEXIST;
    case MDB_MAP_FULL: return RC_EMAPFULL;
    default: break;
    }
    if (mrc > 0)
        return -mrc; /* an errno value */
    LOG_ERROR("kv: %s: %s", what, mdb_strerror(mrc));
    return RC_ESTORE;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool kv_id_valid(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n == KV_ID_MAX)
            return false;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '@' || c == '-'))
            return false;
    }
    return n > 0;
}

/* Create @p dir and any missing parents, like mkdir -p. */
static int mkdir_p(const char *dir)
{
    char path[4096];
    size_t n = strlen(dir);
    int rc = 0;

    if (n == 0)
        return -ENOENT;
    if (n >= sizeof(path))
        return -ENAMETOOLONG;
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        path[i] = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST) {
            rc = -errno;
            break;
        }
        path[i] = i < n ? '/' : '\0';
    }
    if (rc == 0) {
        struct stat st;
        if (stat(dir, &st) < 0)
            rc = -errno;
        else if (!S_ISDIR(st.st_mode))
            rc = -ENOTDIR;
    }
    return rc;
}

/* The schema version recorded in meta (0: none), read in @p txn. */
static int read_schema(kv_t *kv, kv_txn_t *txn, unsigned *out)
{
    MDB_val k = {sizeof(META_SCHEMA) - 1, (void *)META_SCHEMA}, v;
    int mrc = mdb_get(kv__txn(txn), kv->meta, &k, &v);
    *out = 0;
    if (mrc == MDB_NOTFOUND)
        return 0;
    if (mrc != MDB_SUCCESS)
        return kv__rc(mrc, "mdb_get schema");
    *out = v.mv_size == 4 ? be32_get(v.mv_data) : UINT32_MAX;
    return 0;
}

static int write_schema(kv_t *kv, kv_txn_t *txn, unsigned version)
{
    uint8_t schema[4];
    MDB_val k = {sizeof(META_SCHEMA) - 1, (void *)META_SCHEMA}, v = {sizeof(schema), schema};
    be32_put(schema, version);
    return kv__rc(mdb_put(kv__txn(txn), kv->meta, &k, &v, 0), "mdb_put schema");
}

/* Check (or, on a new environment, write) the schema, then open every named database, in
 * one committed transaction: DBI handles opened in a transaction that aborts are lost. */
static int open_dbs(kv_t *kv)
{
    bool rdonly = (kv->flags & KV_RDONLY) != 0;
    unsigned create = rdonly ? 0 : MDB_CREATE, found = 0;
    kv_txn_t *txn = NULL;
    int rc, mrc;

    if ((rc = kv_begin(kv, rdonly ? KV_READ : KV_WRITE, &txn)) < 0)
        goto out;
    mrc = mdb_dbi_open(kv__txn(txn), "meta", create, &kv->meta);
    if (mrc == MDB_NOTFOUND) {
        LOG_ERROR("kv: database 'meta' missing: not a cim data directory");
        rc = RC_ESTORE;
        goto out;
    }
    if ((rc = kv__rc(mrc, "mdb_dbi_open meta")) < 0 || (rc = read_schema(kv, txn, &found)) < 0)
        goto out;
    if (found == 0 && !rdonly) {
        if ((rc = write_schema(kv, txn, KV_SCHEMA)) < 0)
            goto out;
        found = KV_SCHEMA;
    } else if (found == 0) {
        LOG_ERROR("kv: no schema version: not a cim data directory");
        rc = RC_ESTORE;
        goto out;
    } else if (found < KV_SCHEMA && (kv->flags & KV_MIGRATE) && !rdonly) {
        /* opened to be migrated (cimd): kv_schema_found tells, kv_migrated finishes */
    } else if (found != KV_SCHEMA) {
        LOG_ERROR("kv: schema version %u, this build reads %u%s", found, KV_SCHEMA,
                  found < KV_SCHEMA ? ": start this version's cimd on the directory once, "
                                      "it migrates the data"
                                    : ": a newer cim wrote it");
        rc = RC_ESTORE;
        goto out;
    }
    kv->schema_found = found;
    for (size_t i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
        MDB_dbi *dbi = (MDB_dbi *)((char *)kv + dbs[i].off);
        mrc = mdb_dbi_open(kv__txn(txn), dbs[i].name, dbs[i].flags | create, dbi);
        if (mrc == MDB_NOTFOUND) {
            LOG_ERROR("kv: database '%s' missing: not a cim data directory, or an older one",
                      dbs[i].name);
            rc = RC_ESTORE;
            goto out;
        }
        if ((rc = kv__rc(mrc, "mdb_dbi_open")) < 0)
            goto out;
    }
    rc = kv_commit(txn);
    txn = NULL; /* commit frees the txn even when it fails */
out:
    kv_abort(txn);
    return rc;
}

unsigned kv_schema_found(const kv_t *kv)
{
    return kv->schema_found;
}

int kv_migrated(kv_txn_t *txn)
{
    kv_t *kv = kv__of(txn);
    MDB_dbi dedup;
    int mrc = mdb_dbi_open(kv__txn(txn), "dedup", 0, &dedup);

    /* schema 1's dedup index: the window is in memory now (actors/dedup.h) */
    if (mrc == MDB_SUCCESS)
        mrc = mdb_drop(kv__txn(txn), dedup, 1);
    if (mrc != MDB_SUCCESS && mrc != MDB_NOTFOUND)
        return kv__rc(mrc, "mdb_drop dedup");
    return write_schema(kv, txn, KV_SCHEMA);
}

/* The initial map size: KV_MAP_INITIAL, or CIM_KV_MAP_SIZE bytes (tests use a tiny map to
 * exercise growth). */
static size_t initial_map(void)
{
    const char *e = getenv("CIM_KV_MAP_SIZE");
    char *end;
    unsigned long long v;
    if (e == NULL || *e == '\0')
        return KV_MAP_INITIAL;
    v = strtoull(e, &end, 10);
    return *end == '\0' && v >= (1u << 16) ? (size_t)v : KV_MAP_INITIAL;
}

static _Atomic unsigned next_shard;
static _Thread_local unsigned my_shard = UINT32_MAX; /* this thread's reader shard */
static _Thread_local MDB_txn *my_read;               /* its open read txn, if any */
static _Thread_local kv_t *my_read_kv;
static _Thread_local int my_pin = -1;                /* its pin on the tail (kv_tail.c) */

static unsigned shard(void)
{
    if (my_shard == UINT32_MAX)
        my_shard = atomic_fetch_add(&next_shard, 1) % KV_RSHARDS;
    return my_shard;
}

static void remap_lock_all(kv_t *kv)
{
    for (int i = 0; i < KV_RSHARDS; i++)
        pthread_rwlock_wrlock(&kv->remap[i]);
}

static void remap_unlock_all(kv_t *kv)
{
    for (int i = KV_RSHARDS - 1; i >= 0; i--)
        pthread_rwlock_unlock(&kv->remap[i]);
}

/* Forget @p txn as this thread's read txn. @return the kv whose reader shard it held (to
 * unlock once the txn is gone), or NULL for a write txn. */
static kv_t *read_done(MDB_txn *txn)
{
    kv_t *kv = NULL;
    if (txn != NULL && txn == my_read) {
        kv = my_read_kv;
        my_read = NULL;
        my_read_kv = NULL;
        kv__ro_tail_done();
        kv__msgs_read_done(); /* before the txn goes (a cursor of a read txn must) */
        kv__unpin(my_pin);
        my_pin = -1;
    }
    return kv;
}

/* Back the whole map with disk blocks. With MDB_WRITEMAP a write to a page of a sparse
 * file on a full disk is SIGBUS, not an error: reserving the space when the map is set
 * turns a full disk into a map that cannot grow (RC_EMAPFULL, -ENOSPC), which the writer
 * reports and survives. Synced (pwrite) opens reserve too: the same full disk then shows
 * the same way, whichever durability wrote the file. */
static int reserve(kv_t *kv, size_t size)
{
    int fd = -1, err;

    if (mdb_env_get_fd(kv->env, &fd) != MDB_SUCCESS)
        return RC_ESTORE;
    if ((err = posix_fallocate(fd, 0, (off_t)size)) != 0) {
        LOG_ERROR("kv: cannot reserve %zu MiB for the data file: %s", size >> 20, strerror(err));
        return -err;
    }
    return 0;
}

/* Shrink this process's map to max(@p floor, twice the pages in use, as a power of two
 * times floor) when it is larger, and with @p truncate the file with it (never below what
 * another process may write: only the directory's one cimd may). @p size: updated. */
static int fit_map(kv_t *kv, size_t floor, bool truncate, size_t *size)
{
    MDB_envinfo info;
    MDB_stat st;
    struct stat fst;
    size_t used, want = floor;
    int fd = -1, rc;

    if ((rc = kv__rc(mdb_env_info(kv->env, &info), "mdb_env_info")) < 0 ||
        (rc = kv__rc(mdb_env_stat(kv->env, &st), "mdb_env_stat")) < 0)
        return rc;
    used = ((size_t)info.me_last_pgno + 1) * st.ms_psize;
    while (want < 2 * used)
        want *= 2;
    if (want >= info.me_mapsize)
        return 0;
    if ((rc = kv__rc(mdb_env_set_mapsize(kv->env, want), "set_mapsize")) < 0)
        return rc;
    if (truncate)
        LOG_INFO("kv: map brought down from %zu MiB to %zu MiB (%zu MiB in use)",
                 info.me_mapsize >> 20, want >> 20, used >> 20);
    *size = want;
    if (truncate && mdb_env_get_fd(kv->env, &fd) == MDB_SUCCESS && fstat(fd, &fst) == 0 &&
        (size_t)fst.st_size > want && ftruncate(fd, (off_t)want) < 0)
        LOG_WARN("kv: cannot shorten the data file to %zu MiB: %s", want >> 20, strerror(errno));
    return 0;
}

int kv_open(const char *dir, unsigned flags, kv_t **out)
{
    kv_t *kv = mem_calloc(sizeof(*kv));
    unsigned mflags = MDB_NOTLS;
    size_t map = initial_map();
    MDB_envinfo info;
    pthread_rwlockattr_t attr;
    int dead = 0, rc;

    /* Writer preference: a remap waiting for the lock is not starved by new readers. */
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    for (int i = 0; i < KV_RSHARDS; i++)
        pthread_rwlock_init(&kv->remap[i], &attr);
    pthread_rwlockattr_destroy(&attr);

    kv->flags = flags;
    if (flags & KV_RDONLY)
        mflags |= MDB_RDONLY;
    else if ((rc = mkdir_p(dir)) < 0)
        goto out;
    if (flags & KV_NOSYNC)
        mflags |= MDB_NOSYNC;
    /* Without fsync the writer writes into the shared map instead of copying each dirty
     * page to the kernel with pwrite at commit (measured: the copy was ~13 % of the
     * writer's time, and the page buffers' mallocs more). With fsync it must not: the
     * msync of every commit cleans the pages and write-protects them again, so each page
     * the next transaction dirties takes a write fault through the filesystem
     * (ext4_page_mkwrite, __block_write_begin), and on a 20 M-message store that made a
     * synced commit 10-25 ms and c2c half as fast (8.4k msgs/s against 16.7k with pwrite;
     * docs/BENCHMARKS.md). LMDB asks that writers of one environment agree on the flag:
     * synced writers (cimd with durability = sync, cimctl) all use pwrite; only cimd with
     * nosync maps writably, and a cimctl writing beside it still reads and writes the same
     * pages (Linux's page cache is one for mmap and pwrite) and fsyncs all of the file at
     * its commit, so neither loses what it promises. It must be cimd alone: an open with
     * MDB_WRITEMAP truncates the file to that process's map size, so a cimctl mapping
     * writably with its smaller map cut the file under a running cimd, whose next write
     * past the cut was SIGBUS (e2e_offline_cimctl_beside_nosync_cimd). Read-only opens
     * (cimdump) write nothing. */
    if (!(flags & KV_RDONLY) && (flags & KV_NOSYNC) && KV_USE_WRITEMAP)
        mflags |= MDB_WRITEMAP;
    if ((rc = kv__rc(mdb_env_create(&kv->env), "mdb_env_create")) < 0)
        goto out;
    if ((rc = kv__rc(mdb_env_set_maxdbs(kv->env, KV_MAX_DBS), "mdb_env_set_maxdbs")) < 0 ||
        (rc = kv__rc(mdb_env_set_maxreaders(kv->env, KV_MAX_READERS), "set_maxreaders")) < 0 ||
        (rc = kv__rc(mdb_env_set_mapsize(kv->env, map), "set_mapsize")) < 0 ||
        (rc = kv__rc(mdb_env_set_userctx(kv->env, kv), "set_userctx")) < 0)
        goto out;
    if ((rc = kv__rc(mdb_env_open(kv->env, dir, mflags, 0600), "mdb_env_open")) < 0)
        goto out;
    /* A crashed process leaves its reader slots behind; they pin old pages forever. */
    if ((rc = kv__rc(mdb_reader_check(kv->env, &dead), "mdb_reader_check")) < 0)
        goto out;
    if (dead > 0)
        LOG_WARN("kv: cleared %d reader slot(s) left by dead processes", dead);
    /* Never run with a smaller map than another process already grew the file to: adopt
     * the size recorded in the environment, then raise it to our minimum. */
    if ((rc = kv__rc(mdb_env_set_mapsize(kv->env, 0), "set_mapsize")) < 0 ||
        (rc = kv__rc(mdb_env_info(kv->env, &info), "mdb_env_info")) < 0)
        goto out;
    if (info.me_mapsize < map &&
        (rc = kv__rc(mdb_env_set_mapsize(kv->env, map), "set_mapsize")) < 0)
        goto out;
    if (info.me_mapsize < map)
        info.me_mapsize = map;
    /* A writer brings a map far larger than its data — a schema 1 directory recorded
     * 64 GiB, and LMDB never records a smaller size — down to twice the data: the map is
     * reserved on disk below, and must not claim that many blocks. Only cimd (which holds
     * the directory's lock) shortens the file too. */
    if (!(flags & KV_RDONLY) &&
        (rc = fit_map(kv, map, (flags & KV_MIGRATE) != 0, &info.me_mapsize)) < 0)
        goto out;
    if ((rc = open_dbs(kv)) < 0)
        goto out;
    {
        MDB_stat st;
        if ((rc = kv__rc(mdb_env_stat(kv->env, &st), "mdb_env_stat")) < 0)
            goto out;
        kv->chunk_max = kv__chunk_max(st.ms_psize);
    }
    kv->pend[KV_PEND_TIMELINE] = kv__pend_new(kv->timeline);
    kv->pend[KV_PEND_CMSGS] = kv__pend_new(kv->cmsgs);
    kv->pend[KV_PEND_CEVENTS] = kv__pend_new(kv->cevents);
    kv->pend[KV_PEND_FANOUT] = kv__pend_new(kv->timeline);
    if (!(flags & KV_RDONLY) && (rc = reserve(kv, info.me_mapsize)) < 0)
        goto out;
    if ((flags & KV_DEFER) && !(flags & KV_RDONLY) && (rc = kv__defer_open(kv)) < 0)
        goto out;
    *out = kv;
    kv = NULL;
out:
    kv_close(kv);
    return rc;
}

void kv_close(kv_t *kv)
{
    if (kv == NULL)
        return;
    kv__defer_close(kv); /* (a write transaction: before the environment closes) */
    if (kv->env != NULL)
        mdb_env_close(kv->env);
    for (int i = 0; i < KV_PEND_COUNT; i++)
        kv__pend_free(kv->pend[i]);
    mem_free(kv->mbuf.b);
    for (int i = 0; i < KV_RSHARDS; i++)
        pthread_rwlock_destroy(&kv->remap[i]);
    mem_free(kv);
}

int kv_begin(kv_t *kv, int mode, kv_txn_t **out)
{
    MDB_txn *txn = NULL;
    unsigned fl;
    int mrc;

    if (mode != KV_READ && mode != KV_WRITE)
        return RC_EINVAL;
    if (mode == KV_READ && my_read != NULL) {
        LOG_ERROR("kv: a thread may hold one read transaction at a time");
        return RC_EINVAL;
    }
    fl = mode == KV_READ ? MDB_RDONLY : 0;
    if (mode == KV_READ) {
        pthread_rwlock_rdlock(&kv->remap[shard()]);
        my_pin = kv->tail != NULL ? kv__pin() : -1; /* before the snapshot is taken */
    }
    mrc = mdb_txn_begin(kv->env, NULL, fl, &txn);
    if (mrc == MDB_MAP_RESIZED) {
        /* Another process grew the map past ours: remap to the size it recorded, with
         * every reader of this process held off. */
        LOG_INFO("kv: map resized by another process; adopting the new size");
        if (mode == KV_READ)
            pthread_rwlock_unlock(&kv->remap[shard()]);
        remap_lock_all(kv);
        mrc = mdb_env_set_mapsize(kv->env, 0);
        remap_unlock_all(kv);
        if (mode == KV_READ)
            pthread_rwlock_rdlock(&kv->remap[shard()]);
        if (mrc == MDB_SUCCESS)
            mrc = mdb_txn_begin(kv->env, NULL, fl, &txn);
    }
    if (mrc != MDB_SUCCESS) {
        if (mode == KV_READ) {
            kv__unpin(my_pin);
            my_pin = -1;
            pthread_rwlock_unlock(&kv->remap[shard()]);
        }
        return kv__rc(mrc, "mdb_txn_begin");
    }
    if (mode == KV_READ) {
        my_read = txn;
        my_read_kv = kv;
        kv__pin_set(my_pin, mdb_txn_id(txn));
    }
    *out = (kv_txn_t *)txn;
    return 0;
}

bool kv__reading(kv_txn_t *txn)
{
    return kv__txn(txn) == my_read;
}

int kv__ids_sync(kv_txn_t *txn, MDB_dbi dbi)
{
    kv_t *kv;
    int rc = 0;

    if (kv__reading(txn)) /* before kv->pend: the writer's, not this thread's */
        return 0;
    kv = kv__of(txn);
    for (int i = 0; i < KV_PEND_COUNT && rc == 0; i++)
        if (dbi == 0 || kv__pend_dbi(kv->pend[i]) == dbi)
            rc = kv__pend_apply(kv->pend[i], kv__txn(txn));
    return rc;
}

void kv__ids_drop(kv_t *kv)
{
    for (int i = 0; i < KV_PEND_COUNT; i++)
        if (kv->pend[i] != NULL) {
            kv__pend_clear(kv->pend[i]);
            kv__pend_news_clear(kv->pend[i]);
        }
    if (kv->conv_new != NULL) {
        kv__pend_clear(kv->conv_new);
        kv__pend_clear(kv->conv_ix);
    }
}

int kv_commit(kv_txn_t *txn)
{
    kv_t *reader = read_done(kv__txn(txn)), *kv = kv__of(txn);
    uint64_t id = mdb_txn_id(kv__txn(txn));
    int rc;

    if (reader == NULL) {
        rc = kv__msgs_flush(txn);
        if (rc == 0)
            rc = kv->tail != NULL ? kv__defer_commit(txn) : kv__ids_sync(txn, 0);
        kv__ids_drop(kv); /* news nobody asked for, too */
        if (rc < 0) {
            kv__msgs_forget(kv);
            mdb_txn_abort(kv__txn(txn));
            if (kv->tail != NULL)
                kv__tail_committed(kv->tail, id, false);
            return rc;
        }
    }
    rc = kv__rc(mdb_txn_commit(kv__txn(txn)), "mdb_txn_commit");
    if (reader == NULL && rc < 0)
        kv__msgs_forget(kv);
    if (reader != NULL)
        pthread_rwlock_unlock(&reader->remap[shard()]);
    else if (kv->tail != NULL)
        kv__tail_committed(kv->tail, id, rc == 0);
    return rc;
}

void kv_abort(kv_txn_t *txn)
{
    kv_t *reader;
    if (txn == NULL)
        return;
    reader = read_done(kv__txn(txn));
    if (reader == NULL) {
        kv__ids_drop(kv__of(txn));
        kv__msgs_forget(kv__of(txn));
    }
    mdb_txn_abort(kv__txn(txn));
    if (reader != NULL)
        pthread_rwlock_unlock(&reader->remap[shard()]);
}

int kv_grow(kv_t *kv)
{
    MDB_envinfo info;
    int rc;

    remap_lock_all(kv);
    if ((rc = kv__rc(mdb_env_info(kv->env, &info), "mdb_env_info")) == 0 &&
        (rc = reserve(kv, info.me_mapsize * 2)) == 0)
        rc = kv__rc(mdb_env_set_mapsize(kv->env, info.me_mapsize * 2), "set_mapsize");
    remap_unlock_all(kv);
    if (rc == 0)
        LOG_INFO("kv: map grown to %zu MiB", (info.me_mapsize * 2) >> 20);
    return rc;
}

int kv_copy(kv_t *kv, int fd)
{
    kv_txn_t *txn = NULL;
    int mrc = MDB_MAP_RESIZED, rc;

    /* The copy begins its own read transaction, which fails with MDB_MAP_RESIZED when cimd
     * grew the map since this process mapped it; kv_begin adopts the new size. */
    for (int attempt = 0; attempt < 3 && mrc == MDB_MAP_RESIZED; attempt++) {
        if ((rc = kv_begin(kv, KV_READ, &txn)) < 0)
            return rc;
        kv_abort(txn);
        if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
            return -errno;
        pthread_rwlock_rdlock(&kv->remap[shard()]);
        mrc = mdb_env_copyfd2(kv->env, fd, MDB_CP_COMPACT);
        pthread_rwlock_unlock(&kv->remap[shard()]);
    }
    return kv__rc(mrc, "mdb_env_copyfd2");
}

int kv_sync(kv_t *kv)
{
    return kv__rc(mdb_env_sync(kv->env, 1), "mdb_env_sync");
}

/* ---- meta ------------------------------------------------------------------------- */

int kv_last_id_get(kv_txn_t *txn, uint64_t *out)
{
    MDB_val k = {sizeof(META_LAST_ID) - 1, (void *)META_LAST_ID}, v;
    int mrc = mdb_get(kv__txn(txn), kv__of(txn)->meta, &k, &v);

    if (mrc == MDB_NOTFOUND) {
        *out = 0;
        return 0;
    }
    if (mrc != MDB_SUCCESS)
        return kv__rc(mrc, "mdb_get last_id");
    if (v.mv_size != 8) {
        LOG_ERROR("kv: meta last_id has %zu bytes, not 8", v.mv_size);
        return RC_ESTORE;
    }
    *out = be64_get(v.mv_data);
    return 0;
}

int kv_last_id_put(kv_txn_t *txn, uint64_t id)
{
    uint8_t buf[8];
    MDB_val k = {sizeof(META_LAST_ID) - 1, (void *)META_LAST_ID}, v = {sizeof(buf), buf};

    be64_put(buf, id);
    return kv__rc(mdb_put(kv__txn(txn), kv__of(txn)->meta, &k, &v, 0), "mdb_put last_id");
}

/* ---- apps ------------------------------------------------------------------------- */

/* An app's record: the secret and created_ms, then its settings (none in a record an
 * older build wrote). @param[out] v borrowed until the txn ends. */
static int app_rec(kv_txn_t *txn, const char *app, MDB_val *v)
{
    MDB_val k;
    int rc;

    if (!kv_id_valid(app))
        return RC_ENOTFOUND; /* no such name can have been stored */
    k.mv_size = strlen(app);
    k.mv_data = (void *)app;
    if ((rc = kv__rc(mdb_get(kv__txn(txn), kv__of(txn)->apps, &k, v), "mdb_get app")) < 0)
        return rc;
    if (v->mv_size < APP_VAL_LEN || v->mv_size > APP_VAL_LEN + KV_APP_SETTINGS_MAX) {
        LOG_ERROR("kv: app '%s' record has %zu bytes, not %d..%d", app, v->mv_size,
                  APP_VAL_LEN, APP_VAL_LEN + KV_APP_SETTINGS_MAX);
        return RC_ESTORE;
    }
    return 0;
}

int kv_app_get(kv_txn_t *txn, const char *app, uint8_t secret[32])
{
    MDB_val v;
    int rc;

    if ((rc = app_rec(txn, app, &v)) < 0)
        return rc;
    memcpy(secret, v.mv_data, 32);
    return 0;
}

int kv_app_settings_get(kv_txn_t *txn, const char *app, const uint8_t **val, size_t *len)
{
    MDB_val v;
    int rc;

    if ((rc = app_rec(txn, app, &v)) < 0)
        return rc;
    *val = (const uint8_t *)v.mv_data + APP_VAL_LEN;
    *len = v.mv_size - APP_VAL_LEN;
    return 0;
}

int kv_app_settings_put(kv_txn_t *txn, const char *app, const void *val, size_t len)
{
    uint8_t buf[APP_VAL_LEN + KV_APP_SETTINGS_MAX];
    MDB_val k = {strlen(app), (void *)app}, v;
    int rc;

    if (len > KV_APP_SETTINGS_MAX)
        return RC_ETOOBIG;
    if ((rc = app_rec(txn, app, &v)) < 0)
        return rc;
    memcpy(buf, v.mv_data, APP_VAL_LEN);
    if (len > 0)
        memcpy(buf + APP_VAL_LEN, val, len);
    v.mv_size = APP_VAL_LEN + len;
    v.mv_data = buf;
    return kv__rc(mdb_put(kv__txn(txn), kv__of(txn)->apps, &k, &v, 0), "mdb_put app");
}

int kv_app_add(kv_txn_t *txn, const char *app, const uint8_t secret[32], uint64_t created_ms)
{
    uint8_t buf[APP_VAL_LEN];
    MDB_val k, v = {sizeof(buf), buf};

    if (!kv_id_valid(app))
        return RC_EINVAL;
    k.mv_size = strlen(app);
    k.mv_data = (void *)app;
    memcpy(buf, secret, 32);
    be64_put(buf + 32, created_ms);
    return kv__rc(mdb_put(kv__txn(txn), kv__of(txn)->apps, &k, &v, MDB_NOOVERWRITE),
                  "mdb_put app");
}

int kv_app_each(kv_txn_t *txn, int (*cb)(void *ctx, const char *app, uint64_t created_ms),
                void *ctx)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    char name[KV_ID_MAX + 1];
    int rc, mrc;

    if ((rc = kv__rc(mdb_cursor_open(kv__txn(txn), kv__of(txn)->apps, &cur), "cursor_open")) < 0)
        goto out;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size == 0 || k.mv_size > KV_ID_MAX || v.mv_size < APP_VAL_LEN) {
            LOG_ERROR("kv: malformed apps record (key %zu bytes, value %zu bytes)", k.mv_size,
                      v.mv_size);
            rc = RC_ESTORE;
            goto out;
        }
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        if ((rc = cb(ctx, name, be64_get((const uint8_t *)v.mv_data + 32))) != 0)
            goto out;
    }
    rc = mrc == MDB_NOTFOUND ? 0 : kv__rc(mrc, "mdb_cursor_get apps");
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    return rc;
}

int kv_app_ensure_default(kv_t *kv)
{
    kv_txn_t *txn = NULL;
    uint8_t secret[32];
    ssize_t n;
    int rc;

    /* Check and add in one write transaction: LMDB serialises writers across processes,
     * so cimd and cimctl starting together still create the app exactly once. */
    if ((rc = kv_begin(kv, KV_WRITE, &txn)) < 0)
        goto out;
    rc = kv_app_get(txn, DEFAULT_APP, secret);
    if (rc != RC_ENOTFOUND)
        goto out; /* exists (0) or failed */
    /* getrandom(2) on 32 bytes never returns short once the pool is initialised. */
    do
        n = getrandom(secret, sizeof(secret), 0);
    while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(secret)) {
        rc = n < 0 ? -errno : -EIO;
        goto out;
    }
    if ((rc = kv_app_add(txn, DEFAULT_APP, secret, now_ms())) < 0)
        goto out;
    rc = kv_commit(txn);
    txn = NULL;
    if (rc == 0)
        LOG_INFO("kv: created app '%s'", DEFAULT_APP);
out:
    kv_abort(txn);
    memset(secret, 0, sizeof(secret));
    return rc;
}

/* ---- users ------------------------------------------------------------------------ */

/* users key: app bytes, one NUL, user bytes. Ids never contain NUL, so "app\0" is an exact
 * prefix: one app's users are contiguous and in id order, and no other app's match. */
static size_t user_key(uint8_t buf[USER_KEY_MAX], const char *app, const char *user)
{
    size_t a = strlen(app), u = strlen(user);

    memcpy(buf, app, a);
    buf[a] = '\0';
    memcpy(buf + a + 1, user, u);
    return a + 1 + u;
}

/* A user's record: created_ms, then optionally a flags byte (KV_USER_*), then optionally
 * tokens_before_s. A record is written as short as its content allows (8 bytes: what every
 * build before the flags wrote and reads), so old data and old builds keep working. */
#define USER_VAL_MIN 8  /* created_ms */
#define USER_VAL_FLAGS 9 /* ... flags */
#define USER_VAL_MAX 17 /* ... tokens_before_s */

static int user_rec(kv_txn_t *txn, const char *app, const char *user,
                    uint8_t key[USER_KEY_MAX], MDB_val *k, MDB_val *v)
{
    int rc;

    if (!kv_id_valid(app) || !kv_id_valid(user))
        return RC_ENOTFOUND;
    k->mv_size = user_key(key, app, user);
    k->mv_data = key;
    if ((rc = kv__rc(mdb_get(kv__txn(txn), kv__of(txn)->users, k, v), "mdb_get user")) < 0)
        return rc;
    if (v->mv_size != USER_VAL_MIN && v->mv_size != USER_VAL_FLAGS &&
        v->mv_size != USER_VAL_MAX) {
        LOG_ERROR("kv: user record has %zu bytes, not 8, 9 or 17", v->mv_size);
        return RC_ESTORE;
    }
    return 0;
}

static void user_decode(const MDB_val *v, kv_user_t *u)
{
    const uint8_t *p = v->mv_data;
    memset(u, 0, sizeof(*u));
    u->created_ms = be64_get(p);
    if (v->mv_size >= USER_VAL_FLAGS)
        u->flags = p[8];
    if (v->mv_size >= USER_VAL_MAX)
        u->tokens_before_s = be64_get(p + 9);
    u->disabled = (u->flags & KV_USER_DISABLED) != 0;
}

int kv_user_info(kv_txn_t *txn, const char *app, const char *user, kv_user_t *out)
{
    uint8_t key[USER_KEY_MAX];
    MDB_val k, v;
    int rc = user_rec(txn, app, user, key, &k, &v);
    if (rc == 0 && out != NULL)
        user_decode(&v, out);
    return rc;
}

int kv_user_get(kv_txn_t *txn, const char *app, const char *user, uint64_t *created_ms)
{
    kv_user_t u;
    int rc = kv_user_info(txn, app, user, &u);
    if (rc == 0 && created_ms != NULL)
        *created_ms = u.created_ms;
    return rc;
}

int kv_user_flags(kv_txn_t *txn, const char *app, const char *user, uint32_t *flags)
{
    kv_user_t u;
    int rc = kv_user_info(txn, app, user, &u);
    if (rc == 0 && flags != NULL)
        *flags = u.flags;
    return rc;
}

/* Write @p u (its disabled bool decides KV_USER_DISABLED) under the key in @p k. */
static int user_write(kv_txn_t *txn, MDB_val *k, const kv_user_t *u)
{
    uint8_t val[USER_VAL_MAX];
    uint32_t flags = (u->flags & ~(uint32_t)KV_USER_DISABLED) |
                     (u->disabled ? (uint32_t)KV_USER_DISABLED : 0);
    MDB_val v = {USER_VAL_MIN, val};

    if (flags > 0xff)
        return RC_EINVAL;
    be64_put(val, u->created_ms);
    val[8] = (uint8_t)flags;
    be64_put(val + 9, u->tokens_before_s);
    if (u->tokens_before_s != 0)
        v.mv_size = USER_VAL_MAX;
    else if (flags != 0)
        v.mv_size = USER_VAL_FLAGS;
    return kv__rc(mdb_put(kv__txn(txn), kv__of(txn)->users, k, &v, 0), "mdb_put user");
}

int kv_user_set_flags(kv_txn_t *txn, const char *app, const char *user, uint32_t flags)
{
    uint8_t key[USER_KEY_MAX];
    MDB_val k, v;
    kv_user_t u;
    int rc;

    if (flags > 0xff)
        return RC_EINVAL;
    if ((rc = user_rec(txn, app, user, key, &k, &v)) < 0)
        return rc;
    user_decode(&v, &u);
    u.flags = flags;
    u.disabled = (flags & KV_USER_DISABLED) != 0;
    return user_write(txn, &k, &u);
}

int kv_user_put(kv_txn_t *txn, const char *app, const char *user, const kv_user_t *u)
{
    uint8_t key[USER_KEY_MAX];
    MDB_val k;

    if (!kv_id_valid(app) || !kv_id_valid(user))
        return RC_EINVAL;
    k.mv_size = user_key(key, app, user);
    k.mv_data = key;
    return user_write(txn, &k, u);
}

int kv_user_add(kv_txn_t *txn, const char *app, const char *user, uint64_t created_ms)
{
    uint8_t key[USER_KEY_MAX], val[8];
    MDB_val k, v = {sizeof(val), val};

    if (!kv_id_valid(app) || !kv_id_valid(user))
        return RC_EINVAL;
    k.mv_size = user_key(key, app, user);
    k.mv_data = key;
    be64_put(val, created_ms);
    return kv__rc(mdb_put(kv__txn(txn), kv__of(txn)->users, &k, &v, MDB_NOOVERWRITE),
                  "mdb_put user");
}

int kv_user_each(kv_txn_t *txn, const char *app,
                 int (*cb)(void *ctx, const char *user, uint64_t created_ms), void *ctx)
{
    MDB_cursor *cur = NULL;
    uint8_t prefix[KV_ID_MAX + 1];
    char name[KV_ID_MAX + 1];
    size_t plen;
    MDB_val k, v;
    int rc, mrc;

    if (!kv_id_valid(app))
        return 0; /* no users can be stored under an invalid app */
    plen = strlen(app) + 1;
    memcpy(prefix, app, plen); /* includes the NUL separator */
    if ((rc = kv__rc(mdb_cursor_open(kv__txn(txn), kv__of(txn)->users, &cur), "cursor_open")) < 0)
        goto out;
    k.mv_size = plen;
    k.mv_data = prefix;
    for (mrc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); mrc == MDB_SUCCESS;
         mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t ulen;
        if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break; /* past this app's users */
        ulen = k.mv_size - plen;
        if (ulen == 0 || ulen > KV_ID_MAX ||
            (v.mv_size != USER_VAL_MIN && v.mv_size != USER_VAL_FLAGS &&
             v.mv_size != USER_VAL_MAX)) {
            LOG_ERROR("kv: malformed users record (key %zu bytes, value %zu bytes)",
                      k.mv_size, v.mv_size);
            rc = RC_ESTORE;
            goto out;
        }
        memcpy(name, (const uint8_t *)k.mv_data + plen, ulen);
        name[ulen] = '\0';
        if ((rc = cb(ctx, name, be64_get(v.mv_data))) != 0)
            goto out;
    }
    rc = mrc == MDB_SUCCESS || mrc == MDB_NOTFOUND ? 0 : kv__rc(mrc, "mdb_cursor_get users");
out:
    if (cur != NULL)
        mdb_cursor_close(cur);
    return rc;
}
