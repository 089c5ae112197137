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

/** Bytes one after another, referred to by offset (the block may move). */
typedef struct kv_arena {
    uint8_t *p;
    size_t len, cap;
} kv_arena_t;

/** Append @p n bytes to @p a. @return their offset. */
size_t kv__arena_put(kv_arena_t *a, const void *bytes, size_t n);

/** LMDB's default key order (bytes, then the shorter first), for sorting keys kept apart. */
int kv__key_order(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

/** qsort comparator of uint64_t. */
int kv__u64_cmp(const void *pa, const void *pb);

/** Id-list appends of the open write transaction, applied in key order (kv_pend.c). */
typedef struct kv_pend kv_pend_t;
/** Id-list appends committed but not yet in their database (kv_tail.c). */
typedef struct kv_tail kv_tail_t;
/* KV_PEND_FANOUT: timeline appends of a message to many users (a group's), put at the
 * commit even with KV_DEFER (kv_timeline_fanout); after KV_PEND_TIMELINE, so that a
 * lookup by database finds the deferred one first. */
enum kv_pend_db { KV_PEND_TIMELINE, KV_PEND_CMSGS, KV_PEND_CEVENTS, KV_PEND_FANOUT, KV_PEND_COUNT };

/** The writer's open msgs chunk: new records not put yet (kv_chunk.c). */
typedef struct kv_chunkbuf {
    uint8_t *b;
    size_t len, cap; /* len 0: none open */
    uint64_t first, last; /* its first and last record's ids */
    uint64_t grows;       /* the key of the stored chunk it continues and replaces, or 0 */
} kv_chunkbuf_t;

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
    MDB_dbi cpend;    /* write txn id (u64 BE) → the cmsgs appends it deferred */
    kv_pend_t *pend[KV_PEND_COUNT]; /* gathered appends, by enum kv_pend_db (kv_pend.c) */
    kv_tail_t *tail;       /* KV_DEFER: timeline, cmsgs appends deferred (kv_tail.c) */
    kv_pend_t *drain[3];   /* KV_DEFER: what a commit drains from the tail: timeline, cmsgs,
                              convs records to create */
    kv_pend_t *conv_new;   /* KV_DEFER: the write txn's deferred convs records (kv_conv_defer) */
    kv_pend_t *conv_ix;    /* KV_DEFER: and their first ids under their users' prefixes */
    kv_arena_t log;        /* KV_DEFER: the commit's cpend record being built */
    unsigned schema_found; /* the schema version the environment had when opened */
    size_t chunk_max;      /* the largest msgs chunk: two to a page (kv_chunk.c) */
    uint64_t msgs_alone;   /* the last msgs chunk's key if alone on its page, else 0 */
    kv_chunkbuf_t mbuf;    /* the writer's open msgs chunk (kv_chunk.c) */
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

/** The largest msgs chunk for pages of @p psize bytes: two fill a leaf (kv_chunk.c). */
size_t kv__chunk_max(size_t psize);

/** Put the write transaction's open msgs chunk (at the commit). @return 0 or rc. */
int kv__msgs_flush(kv_txn_t *txn);

/** Forget the open msgs chunk and what is known of the last page (an abort). */
void kv__msgs_forget(kv_t *kv);

/** Retention's phase 2: drop message records below @p cutoff, about @p budget of them
 *  (a chunk goes whole); @p done once none is left below it. @return 0 or rc. */
int kv__msgs_retire(kv_txn_t *txn, uint64_t cutoff, size_t *budget, size_t *removed,
                    bool *done);

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
/** A pend whose keys are records to create, empty, where @p dbi has none (its ids are
 *  kept but not stored: kv_conv_defer). */
kv_pend_t *kv__pend_new_records(MDB_dbi dbi);
/** The ids gathered under @p key. */
size_t kv__pend_count(const kv_pend_t *p, const uint8_t *key, size_t klen);
void kv__pend_free(kv_pend_t *p);
void kv__pend_add(kv_pend_t *p, const uint8_t *key, size_t klen, uint64_t id, bool watch);
int kv__pend_news(kv_pend_t *p, int (*cb)(void *ctx, const uint8_t *key, size_t klen,
                                          uint64_t first),
                  void *ctx);
void kv__pend_news_clear(kv_pend_t *p);
void kv__pend_clear(kv_pend_t *p);
MDB_dbi kv__pend_dbi(const kv_pend_t *p);
int kv__pend_apply(kv_pend_t *p, MDB_txn *txn);

/** Sort the gathered keys for kv__pend_apply_range. @return how many keys. */
size_t kv__pend_sort(kv_pend_t *p);

/** Apply the sorted keys [@p from, @p to) in @p txn; nothing is cleared (kv__pend_clear
 *  after the last range). @return 0 or rc. */
int kv__pend_apply_range(kv_pend_t *p, MDB_txn *txn, size_t from, size_t to);
/** Append @p key's gathered ids to (*buf)[n..] (growing it). @return the new count. */
size_t kv__pend_ids(kv_pend_t *p, const uint8_t *key, size_t klen, uint64_t **buf,
                    size_t *cap, size_t n);
/** Look the watched keys up without applying anything: a key is new when @p elsewhere
 *  says it has no ids there and @p txn's database has none (kv__pend_news reports it). */
int kv__pend_news_find(kv_pend_t *p, MDB_txn *txn,
                       bool (*elsewhere)(void *ctx, const uint8_t *key, size_t klen),
                       void *ctx);
/** Offer every key's ids (ascending, unique) to @p take; those it takes leave the pend.
 *  @return how many ids are left. */
size_t kv__pend_detach(kv_pend_t *p,
                       bool (*take)(void *ctx, const uint8_t *key, size_t klen,
                                    const uint64_t *ids, size_t n),
                       void *ctx);

/* kv_defer.c: the timelines and the conversation index deferred (KV_DEFER;
 * docs/STORAGE.md, cpend) */
/** Apply what cpend holds (an earlier cimd's tail) to its databases, then start the tail. */
int kv__defer_open(kv_t *kv);
void kv__defer_close(kv_t *kv);
/** The write txn's commit work: id lists applied, the timeline and cmsgs appends logged
 *  and moved to the tail, a step of draining. */
int kv__defer_commit(kv_txn_t *txn);
/** Forget this thread's private tail of a read-only open (its read txn ends). */
void kv__ro_tail_done(void);

/** This thread's read txn ends: close the msgs cursor kv_msg_get kept for it. */
void kv__msgs_read_done(void);
/** Whether the tail holds an id of @p key of the id list @p dbi (writer). */
bool kv__deferred_has(kv_t *kv, MDB_dbi dbi, const uint8_t *key, size_t klen);
/** The ids of @p key the id list @p dbi (timeline, cmsgs) holds outside its database as
 *  @p txn sees them (the tail; the write txn's gathered appends): ascending, unique, none
 *  that the database has. @p *ids: NULL or a block the caller frees (mem_free).
 *  @return 0 or rc. */
int kv__ids_extra(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen, uint64_t **ids,
                  size_t *n);

/* kv_tail.c (one writer thread; readers on any thread, lock-free) */
kv_tail_t *kv__tail_new(size_t limit);
void kv__tail_free(kv_tail_t *t);
/** Whether the open epoch takes @p n more entries (writer). */
bool kv__tail_room(kv_tail_t *t, size_t n);
/** Add @p ids under @p key, committed by write txn @p txn (writer, at its commit), unless
 *  that would give the key more than @p max entries in the open epoch. @return added. */
bool kv__tail_add(kv_tail_t *t, const uint8_t *key, size_t klen, const uint64_t *ids, size_t n,
                  uint64_t txn, size_t max);
/** How many entries @p key has in the open epoch (writer). */
size_t kv__tail_count(kv_tail_t *t, const uint8_t *key, size_t klen);
/** Whether @p key has an entry not revoked (writer). */
bool kv__tail_has(kv_tail_t *t, const uint8_t *key, size_t klen);
/** Append @p key's ids a snapshot @p snap sees to (*buf)[n..], unsorted, none of a key
 *  drained at or before @p snap. @return the new count. */
size_t kv__tail_ids(kv_tail_t *t, const uint8_t *key, size_t klen, uint64_t snap,
                    uint64_t **buf, size_t *cap, size_t n);
/** At commit @p txn, which added @p added entries: close the open epoch when full (or a
 *  minute old), and give twice as many of the closed one's entries to @p into, whole keys
 *  in key order. @p log_upto: when that drained the closed epoch's last key, the newest
 *  cpend record it may delete (else 0). */
int kv__tail_drain(kv_tail_t *t, uint64_t txn, size_t added,
                   void (*into)(void *ctx, const uint8_t *key, size_t klen, uint64_t id),
                   void *ctx, uint64_t *log_upto);
/** Give every entry of @p key (all epochs) to @p into now, as a drain by @p txn would: a
 *  key that came to its bound, whose next ids are put at once, so that none of its
 *  entries is put later below them. @return how many. */
size_t kv__tail_take_key(kv_tail_t *t, const uint8_t *key, size_t klen, uint64_t txn,
                         void (*into)(void *ctx, const uint8_t *key, size_t klen, uint64_t id),
                         void *ctx);
/** After the commit of @p txn (@p ok) or its failure: undo, or retire a drained epoch. */
void kv__tail_committed(kv_tail_t *t, uint64_t txn, bool ok);
/** Read transactions pin what they may see of the tail: take a slot before the txn
 *  begins, set its snapshot after, release it when it ends. */
int kv__pin(void);
void kv__pin_set(int slot, uint64_t snap);
void kv__unpin(int slot);

/** How many ids of an id list lie in (after, up_to] (up_to UINT64_MAX: no end). */
int kv__ids_count(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen, uint64_t after,
                  uint64_t up_to, uint64_t *out);

/** The newest id of an id list at or below @p up_to (0: none). */
int kv__ids_last(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen, uint64_t up_to,
                 uint64_t *out);

/** As kv__ids_after, kv__ids_count, kv__ids_last, merged with kv__ids_extra (timeline,
 *  cmsgs: what is deferred, kv_defer.c). */
int kv__merged_after(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen,
                     uint64_t after, uint64_t *ids, size_t max, size_t *n, uint64_t *total_after);
int kv__merged_count(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen,
                     uint64_t after, uint64_t up_to, uint64_t *out);
int kv__merged_last(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen,
                    uint64_t up_to, uint64_t *out);

/** Page an id list forwards (see kv_timeline_page). */
int kv__ids_after(kv_txn_t *txn, MDB_dbi dbi, const uint8_t *key, size_t klen,
                  uint64_t after, uint64_t *ids, size_t max, size_t *n, uint64_t *total_after);


#endif
