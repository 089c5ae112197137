/**
 * kv internals shared by kv.c and kv_msg.c (not for other modules: nothing LMDB leaves
 * kv). The environment's struct, the transaction cast, the error mapping and the
 * big-endian helpers.
 */
#ifndef CIM_CORE_KV_INT_H
#define CIM_CORE_KV_INT_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "core/kv.h"

#define KV_RSHARDS 16 /* reader lock shards (threads pick one each) */
#define KV_LMDB_KEY_MAX 511 /* mdb_env_get_maxkeysize of the default build */

/** Id-list appends of the open write transaction, applied in key order (kv_pend.c). */
typedef struct kv_pend kv_pend_t;
enum kv_pend_db { KV_PEND_TIMELINE, KV_PEND_CMSGS, KV_PEND_CEVENTS };

struct kv {
    MDB_env *env;
    /* Remapping (kv_grow, adopting another process's resize) is only safe with no
     * transaction open in the process. Every read transaction holds one shard of this
     * lock shared — each thread its own shard, so readers never share a cache line — and
     * a remap takes all of them exclusively. Uncontended except during a remap. */
    pthread_rwlock_t remap[KV_RSHARDS];
    unsigned flags; /* KV_RDONLY | KV_NOSYNC as opened */
    MDB_dbi meta;
    MDB_dbi apps;
    MDB_dbi users;
    MDB_dbi msgs;     /* msg_id (u64 BE) → encoded cim.Message */
    MDB_dbi timeline; /* user key → msg_id (u64 BE) dups, DUPSORT|DUPFIXED */
    MDB_dbi cursors;  /* user key NUL device_id → u64 BE delivered id */
    MDB_dbi cmsgs;    /* conversation key → msg_id dups, DUPSORT|DUPFIXED */
    MDB_dbi cevents;  /* group conversation key → SYSTEM event ids, DUPSORT|DUPFIXED */
    kv_pend_t *pend[3];    /* gathered appends, by enum kv_pend_db (kv_pend.c) */
    unsigned schema_found; /* the schema version the environment had when opened */
    MDB_dbi recs[KV_DB_COUNT]; /* the plain record databases of enum kv_db */
};

/** The MDB_txn behind a kv_txn_t. */
MDB_txn *kv__txn(kv_txn_t *txn);

/** The kv_t a transaction belongs to. */
kv_t *kv__of(kv_txn_t *txn);

/** Map an LMDB return code to an rc (logging unexpected ones with @p what). */
int kv__rc(int mrc, const char *what);

/** Add an id to a DUPSORT|DUPFIXED id list (timeline, cmsgs, cevents), gathered
 *  (kv__ids_sync); @p watch: report the key if it had no ids before (kv_cmsg_news). */
int kv__ids_add(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen, uint64_t id,
                bool watch);

/** Whether @p txn is this thread's read transaction (a write transaction otherwise). */
bool kv__reading(kv_txn_t *txn);

/** Apply the gathered appends to @p dbi (all of them: 0) of the write transaction @p txn;
 *  nothing for a read transaction. Anything that reads or writes an id list another way
 *  calls it first, so gathering is never seen. */
int kv__ids_sync(kv_txn_t *txn, MDB_dbi dbi);

/** A cursor on the id list @p dbi, its gathered appends applied first (kv__ids_sync). */
int kv__ids_cursor(kv_txn_t *txn, MDB_dbi dbi, MDB_cursor **cur);

/** Forget the gathered appends (the write transaction aborts). */
void kv__ids_drop(kv_t *kv);

kv_pend_t *kv__pend_new(MDB_dbi dbi);
void kv__pend_free(kv_pend_t *p);
void kv__pend_add(kv_pend_t *p, const uint8_t *key, size_t klen, uint64_t id, bool watch);
int kv__pend_news(kv_pend_t *p, int (*cb)(void *ctx, const uint8_t *key, size_t klen,
                                          uint64_t first),
                  void *ctx);
void kv__pend_news_clear(kv_pend_t *p);
void kv__pend_clear(kv_pend_t *p);
MDB_dbi kv__pend_dbi(const kv_pend_t *p);
int kv__pend_apply(kv_pend_t *p, MDB_txn *txn);

/** How many ids of an id list lie in (after, up_to] (up_to UINT64_MAX: no end). */
int kv__ids_count(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen, uint64_t after,
                  uint64_t up_to, uint64_t *out);

/** The newest id of an id list at or below @p up_to (0: none). */
int kv__ids_last(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen, uint64_t up_to,
                 uint64_t *out);

/** Page an id list forwards (see kv_timeline_page). */
int kv__ids_after(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen,
                  uint64_t after, uint64_t *ids, size_t max, size_t *n, uint64_t *total_after);


#endif
