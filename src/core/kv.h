/**
 * kv: the LMDB environment and the typed records cim stores in it.
 *
 * One environment in the data directory (data.mdb, lock.mdb) with named databases, all
 * opened once in kv_open inside a committed transaction (DESIGN.md pitfalls):
 *   meta   "schema" → u32 version; "last_id" → u64 (largest SnowFlake id issued)
 *   apps   app name → 32-byte secret || u64 created_ms (big-endian) [|| settings]
 *   users  app "\0" user → u64 created_ms (big-endian) [|| u8 flags]
 * Later issues add timelines, messages, cursors, groups and conversations; docs/STORAGE.md
 * is the reference for every key and value.
 *
 * Transactions: kv_begin(kv, KV_READ|KV_WRITE). Read transactions are short, run on any
 * thread (the env is opened with MDB_NOTLS) and never span a callback; values they return
 * are copied out before they end. Write transactions exist in exactly one thread of cimd
 * (the store actor); other processes (cimctl) may write too, LMDB serialises them with its
 * own lock. kv_open calls mdb_reader_check to clear reader slots left by crashed processes.
 *
 * Writable opens with KV_NOSYNC use MDB_WRITEMAP (the writer writes into the map; no page
 * copies at commit); synced opens write with pwrite (see kv_open for the measurements).
 * The map starts at 64 MiB and doubles when full; the data file holds the whole map, its
 * blocks reserved (posix_fallocate) when the map is set, so a write never meets a hole on
 * a full disk (SIGBUS): a full disk is a map that cannot grow (kv_grow fails -ENOSPC). The
 * map never shrinks on open; a resize made by another process (MDB_MAP_RESIZED) is adopted
 * transparently in kv_begin. RC_EMAPFULL reaches the writer, which aborts the
 * transaction, calls kv_grow() with no transaction open and retries.
 *
 * A write that fails with anything but RC_EEXIST / RC_ENOTFOUND / RC_EINVAL leaves the
 * transaction unusable: abort it (kv_commit would fail with RC_ESTORE).
 *
 * Error mapping (the only place LMDB codes are seen): MDB_NOTFOUND → RC_ENOTFOUND,
 * MDB_KEYEXIST → RC_EEXIST, MDB_MAP_FULL → RC_EMAPFULL, errno values → -errno, any other
 * MDB_* → RC_ESTORE (logged once with mdb_strerror).
 *
 * Threading: kv_open/kv_close on one thread while no other uses the kv_t; everything else
 * is thread-safe: one write transaction at a time in the process, used by the thread that
 * began it; a thread holds at most one read transaction at a time and ends it on the same
 * thread (kv_begin refuses a second with RC_EINVAL). Each read transaction holds this
 * thread's shard of a sharded reader lock that a remap (kv_grow, adopting another
 * process's resize) takes exclusively: growing the map is safe while workers read.
 *
 * Caveat (LMDB): never open the same directory twice in one process at the same time; its
 * locks are per process, and closing one kv_t would drop the other's. Share one kv_t.
 */
#ifndef CIM_CORE_KV_H
#define CIM_CORE_KV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KV_SCHEMA 8
#define KV_ID_MAX 64 /**< longest app / user id, bytes */

typedef struct kv kv_t;
typedef struct kv_txn kv_txn_t;

enum {
    KV_RDONLY = 1 << 0, /* kv_open: open read-only (cimdump); no writes, never creates */
    KV_NOSYNC = 1 << 1, /* kv_open: commits do not fsync (durability = nosync) */
    KV_MIGRATE = 1 << 2, /* kv_open: accept an older schema, to be migrated (cimd) */
    KV_DEFER = 1 << 3,   /* kv_open: defer the timelines and the conversation index (the
                            directory's one cimd: docs/STORAGE.md, cpend); applies what an
                            earlier one left */
};

enum { KV_READ = 0, KV_WRITE = 1 };

/**
 * Open (creating when needed, unless KV_RDONLY) the environment in directory @p dir.
 * The directory and missing parents are created (0700). Opens every database, clears
 * stale reader slots, writes (new env) or checks the schema version.
 * @param[in]  flags  KV_RDONLY and/or KV_NOSYNC.
 * @param[out] out    owned, written only on success; free with kv_close().
 * @return 0, RC_ESTORE (not an LMDB environment, not a cim one, wrong schema: the log says
 *         which), or -errno (-ENOENT: KV_RDONLY and no environment there; -EACCES).
 */
int kv_open(const char *dir, unsigned flags, kv_t **out);

/**
 * The schema version the environment had when kv_open opened it: KV_SCHEMA, or with
 * KV_MIGRATE an older one (1 or 2), which the caller migrates and then records with
 * kv_migrated.
 */
unsigned kv_schema_found(const kv_t *kv);

/**
 * Finish a migration (write txn): drop what schema 1 kept and later ones do not (the
 * dedup index) and record KV_SCHEMA. The caller has rewritten the records whose meaning
 * changed first, in the same transaction. @return 0 or rc.
 */
int kv_migrated(kv_txn_t *txn);

/** Close the environment. No transaction may be open. kv_close(NULL) is a no-op. */
void kv_close(kv_t *kv);

/**
 * Begin a transaction. A KV_WRITE begin blocks while another thread or process writes.
 * @param[in] mode  KV_READ or KV_WRITE.
 * @param[out] out  written only on success; end it with kv_commit or kv_abort.
 * @return 0, or RC_EINVAL (bad @p mode), -EACCES (KV_WRITE on a KV_RDONLY kv),
 *         RC_ESTORE (e.g. all reader slots taken) / -errno.
 * @note Adopting a map grown by another process remaps the file under the reader lock,
 *       like kv_grow.
 */
int kv_begin(kv_t *kv, int mode, kv_txn_t **out);

/**
 * Commit and free @p txn (also for read transactions). The txn is gone even on failure.
 * @return 0, RC_EMAPFULL, RC_ESTORE or -errno (e.g. -ENOSPC).
 */
int kv_commit(kv_txn_t *txn);

/** Abort and free @p txn. NULL is a no-op. */
void kv_abort(kv_txn_t *txn);

/**
 * Double the map size. Waits until no read transaction is open in the process and holds
 * new ones off meanwhile. The caller holds no transaction. @return 0 or rc.
 */
int kv_grow(kv_t *kv);

/** Flush to disk (for KV_NOSYNC at shutdown). @return 0 or rc. */
int kv_sync(kv_t *kv);

/**
 * Write a compacted copy of the environment's data file to @p fd (LMDB's own hot copy,
 * mdb_env_copyfd2 with MDB_CP_COMPACT): the state of one read transaction, free pages left
 * out, so the copy is as small as the data. Safe while other processes (cimd) write: the
 * copy reads a snapshot and blocks no writer. The result is a data.mdb that kv_open opens
 * as it is. @p fd is truncated first (and again if a map resized by another process makes
 * LMDB start over) and not synced: the caller fsyncs. Any kv (KV_RDONLY too); the caller
 * holds no transaction on this thread.
 * @return 0, or RC_ESTORE / -errno (the log says which).
 */
int kv_copy(kv_t *kv, int fd);

/** @return true when @p s is a valid app or user id: 1..64 bytes of [A-Za-z0-9._@-].
 *          NULL is invalid. Lookups of an invalid id answer RC_ENOTFOUND, adds RC_EINVAL. */
bool kv_id_valid(const char *s);

/* ---- meta ------------------------------------------------------------------------- */

/** Read the largest message id ever issued (0 if none). @return 0 or rc. */
int kv_last_id_get(kv_txn_t *txn, uint64_t *out);

/** Record @p id as the largest issued (write txn). @return 0 or rc. */
int kv_last_id_put(kv_txn_t *txn, uint64_t id);

/* ---- apps ------------------------------------------------------------------------- */

/**
 * Look up an app's secret.
 * @param[out] secret  32 bytes, written only on success.
 * @return 0, RC_ENOTFOUND, or rc.
 */
int kv_app_get(kv_txn_t *txn, const char *app, uint8_t secret[32]);

/**
 * Create an app with @p secret (write txn).
 * @return 0, RC_EEXIST (app exists; nothing changed), RC_EINVAL (bad name), or rc.
 */
int kv_app_add(kv_txn_t *txn, const char *app, const uint8_t secret[32], uint64_t created_ms);

#define KV_APP_SETTINGS_MAX 4096 /**< bytes of an app's settings (kv_app_settings_put) */

/**
 * An app's settings: the bytes stored after the secret and created_ms (docs/STORAGE.md).
 * kv keeps them opaque; actors/appconf gives them their meaning. An app stored before
 * settings existed has none (length 0).
 * @param[out] val, len  borrowed: valid until the transaction ends; *len may be 0.
 * @return 0, RC_ENOTFOUND, or rc.
 */
int kv_app_settings_get(kv_txn_t *txn, const char *app, const uint8_t **val, size_t *len);

/**
 * Replace an app's settings (write txn); the secret and created_ms stay.
 * @param[in] len  0..KV_APP_SETTINGS_MAX (0: none, the record as an older build wrote it).
 * @return 0, RC_ENOTFOUND (no such app), RC_ETOOBIG, or rc.
 */
int kv_app_settings_put(kv_txn_t *txn, const char *app, const void *val, size_t len);

/**
 * Call @p cb for each app in name order; a non-zero return stops and is returned.
 * @p app is borrowed for the call. @return 0, cb's value, or rc.
 */
int kv_app_each(kv_txn_t *txn, int (*cb)(void *ctx, const char *app, uint64_t created_ms),
                void *ctx);

/**
 * Make sure the app "default" exists, creating it with a fresh random secret (getrandom)
 * in its own write transaction: the check and the insert are atomic even across processes,
 * so concurrent first starts create it once. No transaction of the caller's thread may be
 * open. @return 0, -EACCES (KV_RDONLY), or rc.
 */
int kv_app_ensure_default(kv_t *kv);

/* ---- users ------------------------------------------------------------------------ */

/** User flags (kv_user_flags). */
enum {
    KV_USER_BOT = 1 << 0,      /* a bot: a BOT device logged in as it, or `cimctl user set` */
    KV_USER_DISABLED = 1 << 1, /* logins refused (admin API, `cimctl user disable`) */
};

/** @return 0 when (@p app, @p user) exists (its creation time in @p created_ms if not
 *          NULL), RC_ENOTFOUND, or rc. */
int kv_user_get(kv_txn_t *txn, const char *app, const char *user, uint64_t *created_ms);

/**
 * A user's record (docs/STORAGE.md): created_ms (8 bytes, big-endian), optionally followed
 * by a flags byte (KV_USER_*) and then tokens_before_s (8 bytes). Written as short as its
 * content allows: a record of 8 bytes (all a schema 2 store wrote) reads as flags 0, no
 * revocation.
 */
typedef struct kv_user {
    uint64_t created_ms;
    uint32_t flags;           /* KV_USER_* */
    bool disabled;            /* flags & KV_USER_DISABLED (kv_user_put writes this one) */
    uint64_t tokens_before_s; /* tokens expiring at or before this Unix time are refused */
} kv_user_t;

/** Read a user's record. @return 0, RC_ENOTFOUND, RC_ESTORE (malformed), or rc. */
int kv_user_info(kv_txn_t *txn, const char *app, const char *user, kv_user_t *out);

/** Write a user's record, creating the user when missing (write txn).
 * @return 0, RC_EINVAL (bad app or user id), or rc. */
int kv_user_put(kv_txn_t *txn, const char *app, const char *user, const kv_user_t *u);

/**
 * Register a user (write txn). Does not check that @p app exists: the caller has (a token
 * verified with its secret, or a kv_app_get).
 * @return 0, RC_EEXIST (nothing changed), RC_EINVAL (bad app or user id), or rc.
 */
int kv_user_add(kv_txn_t *txn, const char *app, const char *user, uint64_t created_ms);

/**
 * Read a user's flags (KV_USER_*; 0 for a user stored before flags existed).
 * @param[out] flags  written only on success; may be NULL (an existence check).
 * @return 0, RC_ENOTFOUND, or rc.
 */
int kv_user_flags(kv_txn_t *txn, const char *app, const char *user, uint32_t *flags);

/**
 * Replace a user's flags (write txn); created_ms stays. Flags 0 store the 8-byte record
 * older builds read too.
 * @return 0, RC_ENOTFOUND (no such user), RC_EINVAL (a flag over 0xff), or rc.
 */
int kv_user_set_flags(kv_txn_t *txn, const char *app, const char *user, uint32_t flags);

/**
 * Call @p cb for each user of @p app in id order (none for an unknown or invalid app);
 * a non-zero return stops and is returned. @p user is borrowed for the call.
 */
int kv_user_each(kv_txn_t *txn, const char *app,
                 int (*cb)(void *ctx, const char *user, uint64_t created_ms), void *ctx);

/* ---- messages, timelines, cursors (docs/STORAGE.md) -------------------------------- */

#define KV_UKEY_MAX (2 * KV_ID_MAX + 1) /**< longest user key: app NUL user */

/**
 * Build the key of a user's records: app bytes, one NUL, user bytes (no terminator).
 * Both ids must be valid (kv_id_valid). @return its length.
 */
size_t kv_ukey(uint8_t out[KV_UKEY_MAX], const char *app, const char *user);

/**
 * Store a message record under @p id (write txn). Ids are issued in increasing order, so
 * the put appends. The bytes are stored as given: cimd stores records through
 * message_put (actors/message.h), which leaves out the head the key implies, and reads
 * them back whole through message_get. @return 0, RC_EEXIST (id used), or rc.
 */
int kv_msg_put(kv_txn_t *txn, uint64_t id, const uint8_t *rec, size_t len);

/**
 * Replace the record of an existing message (recall). @return 0, RC_ENOTFOUND, or rc.
 */
int kv_msg_replace(kv_txn_t *txn, uint64_t id, const uint8_t *rec, size_t len);

/**
 * Read a message record: the stored bytes, maybe without their head (message_get).
 * @param[out] rec, len  borrowed: valid until the transaction ends.
 * @return 0, RC_ENOTFOUND (unknown id, or removed by retention), or rc.
 */
int kv_msg_get(kv_txn_t *txn, uint64_t id, const uint8_t **rec, size_t *len);

/** Remove a message record (write txn; a missing one is not an error). @return 0 or rc. */
int kv_msg_del(kv_txn_t *txn, uint64_t id);

/** The largest message id stored (0 if none). @return 0 or rc. */
int kv_msg_last_id(kv_txn_t *txn, uint64_t *out);

/**
 * Call @p cb for every message record with an id >= @p from, in id order (the records
 * are borrowed for the call). A non-zero return stops the scan and is returned.
 * @return 0, rc, or @p cb's value.
 */
int kv_msg_scan(kv_txn_t *txn, uint64_t from,
                int (*cb)(void *ctx, uint64_t id, const uint8_t *rec, size_t len), void *ctx);

/**
 * Append @p id to a user's timeline (write txn). Appending in increasing id order is the
 * fast path; an id below the user's newest is inserted in place; a repeat is a no-op.
 * With KV_DEFER it is logged in cpend and put into the timeline later; every read merges
 * it (docs/STORAGE.md). @return 0 or rc.
 */
int kv_timeline_add(kv_txn_t *txn, const uint8_t *ukey, size_t klen, uint64_t id);

/**
 * As kv_timeline_add, for a message that goes to many timelines at once (a group's RECALL,
 * which its index leaves out; a cluster's group message that no member's span holds:
 * actors/feed.h): with KV_DEFER it is put into the timeline at the commit rather than
 * deferred, which would cost a log entry and a tail entry a member (docs/STORAGE.md,
 * cpend). @return 0 or rc.
 */
int kv_timeline_fanout(kv_txn_t *txn, const uint8_t *ukey, size_t klen, uint64_t id);

/** The newest id in a user's timeline, 0 when empty. @return 0 or rc. */
int kv_timeline_last(kv_txn_t *txn, const uint8_t *ukey, size_t klen, uint64_t *out);

/**
 * Page a user's timeline forwards.
 * @param[in]  after        return ids strictly greater than this.
 * @param[out] ids          up to @p max ids, ascending.
 * @param[out] n            how many were written.
 * @param[out] total_after  how many ids the timeline holds after @p after in all.
 * @return 0 or rc.
 */
int kv_timeline_page(kv_txn_t *txn, const uint8_t *ukey, size_t klen, uint64_t after,
                     uint64_t *ids, size_t max, size_t *n, uint64_t *total_after);

/** @return 0 when @p id is in the user's timeline, RC_ENOTFOUND, or rc. */
int kv_timeline_has(kv_txn_t *txn, const uint8_t *ukey, size_t klen, uint64_t id);

/** Number of entries in a user's timeline. @return 0 or rc. */
int kv_timeline_count(kv_txn_t *txn, const uint8_t *ukey, size_t klen, uint64_t *out);

/** A device's delivery cursor; 0 for a device never seen. @return 0 or rc. */
int kv_cursor_get(kv_txn_t *txn, const uint8_t *ukey, size_t klen, const char *device,
                  uint64_t *out);

/**
 * Move a device's cursor forward to @p id (write txn); a value at or below the stored one
 * is ignored (acks are cumulative). @return 0 or rc.
 */
int kv_cursor_put(kv_txn_t *txn, const uint8_t *ukey, size_t klen, const char *device,
                  uint64_t id);

/* ---- conversations, groups, contacts: plain records (docs/STORAGE.md) --------------- */

/** The databases of plain records, addressed by the kv_rec_* functions. */
enum kv_db {
    KV_DB_GROUPS = 0, /* app NUL gid(u64) → group record */
    KV_DB_MEMBERS,    /* app NUL gid(u64) user → u64 joined (id of the event that added) */
    KV_DB_UGROUPS,    /* user key NUL gid(u64) → (empty) */
    KV_DB_CONVS,      /* conversation key → conversation state */
    KV_DB_CONTACTS,   /* user key NUL contact → (empty) */
    KV_DB_RCONTACTS,  /* app NUL contact NUL owner → (empty): who lists contact */
    KV_DB_BLOCKS,     /* user key NUL blocked user → (empty) */
    KV_DB_GSPANS,     /* user key NUL gid(u64) → spans of membership (actors/feed.h) */
    KV_DB_COUNT
};

/**
 * Read a record. @param[out] val, vlen  borrowed until the transaction ends (may be NULL).
 * @return 0, RC_ENOTFOUND, or rc.
 */
int kv_rec_get(kv_txn_t *txn, int db, const void *key, size_t klen, const uint8_t **val,
               size_t *vlen);

/** Write (insert or replace) a record (write txn). @return 0 or rc. */
int kv_rec_put(kv_txn_t *txn, int db, const void *key, size_t klen, const void *val,
               size_t vlen);

/** Delete a record (write txn). @return 0, RC_ENOTFOUND, or rc. */
int kv_rec_del(kv_txn_t *txn, int db, const void *key, size_t klen);

/**
 * Call @p cb for every record whose key starts with @p prefix, in key order; @p cb gets the
 * key after the prefix and the value (both borrowed for the call). A non-zero return
 * stops the scan and is returned. @return 0, rc, or @p cb's value.
 */
int kv_rec_scan(kv_txn_t *txn, int db, const void *prefix, size_t plen,
                int (*cb)(void *ctx, const uint8_t *sfx, size_t slen, const uint8_t *val,
                          size_t vlen),
                void *ctx);

/**
 * Call @p cb for every record of @p db, in key order (whole keys; borrowed for the call).
 * The callback must not write to @p db. A non-zero return stops and is returned.
 * @return 0, rc, or @p cb's value.
 */
int kv_rec_each(kv_txn_t *txn, int db,
                int (*cb)(void *ctx, const uint8_t *key, size_t klen, const uint8_t *val,
                          size_t vlen),
                void *ctx);

/**
 * A new DIRECT conversation's record in convs (write txn): @p key's, empty, unless it has
 * one. With KV_DEFER it is made later, with the deferred index (docs/STORAGE.md, cpend),
 * and until then readers find it with kv_conv_pending, and under the first @p plen bytes
 * of its key (its user's) with kv_conv_pending_ids; @p first: the message that began the
 * conversation, which tells them its peer. @return 0 or rc.
 */
int kv_conv_defer(kv_txn_t *txn, const uint8_t *key, size_t klen, size_t plen, uint64_t first);

/** Whether @p key's record is on its way to convs as @p txn sees it (kv_conv_defer), for a
 *  key convs lacks. @return 1, 0 or rc. */
int kv_conv_pending(kv_txn_t *txn, const uint8_t *key, size_t klen);

/**
 * The messages that began the conversations whose records are on their way under
 * @p prefix, as @p txn sees them (kv_conv_defer): ascending, unique; some may be in convs
 * already. @p *ids: NULL or a block the caller frees (mem_free). @return 0 or rc.
 */
int kv_conv_pending_ids(kv_txn_t *txn, const uint8_t *prefix, size_t plen, uint64_t **ids,
                        size_t *n);

/** Call @p cb for every conversation key of the conversation index, in order. */
int kv_cmsg_keys(kv_txn_t *txn, int (*cb)(void *ctx, const uint8_t *key, size_t klen),
                 void *ctx);

/** Issue the next value of a named counter in meta, starting at @p start (write txn). */
int kv_counter_next(kv_txn_t *txn, const char *name, uint64_t start, uint64_t *out);

/**
 * A named u64 in meta (cluster state: the newest id a home has applied from the merge).
 * @param[out] out  0 when it was never written. @return 0 or rc.
 */
int kv_meta_u64_get(kv_txn_t *txn, const char *name, uint64_t *out);

/** Write a named u64 in meta (write txn). @return 0 or rc. */
int kv_meta_u64_put(kv_txn_t *txn, const char *name, uint64_t v);

/**
 * The cluster's outbox, in meta under "outbox" + id (8 bytes, big-endian): a message this
 * node originated and committed, not yet applied by its own merge (docs/SCALING.md); the
 * value is what the cluster publishes (actors/xhome.h), opaque here.
 * kv_outbox_put/del: write txn; a missing key is not an error for del.
 * @return 0 or rc.
 */
int kv_outbox_put(kv_txn_t *txn, uint64_t id, const void *val, size_t len);
int kv_outbox_del(kv_txn_t *txn, uint64_t id);

/** Read outbox entry @p id (@p val borrowed until the txn ends). @return 0, RC_ENOTFOUND
 *  or rc. */
int kv_outbox_get(kv_txn_t *txn, uint64_t id, const uint8_t **val, size_t *len);

/**
 * Call @p cb for every outbox entry in id order (@p val borrowed until the txn ends); a
 * non-zero return stops. @return 0 or rc.
 */
int kv_outbox_each(kv_txn_t *txn,
                   int (*cb)(void *ctx, uint64_t id, const uint8_t *val, size_t len), void *ctx);

/**
 * The per-conversation message index (one entry per message and conversation side, like
 * a timeline): add @p id under conversation key @p ckey (write txn). Like every id-list
 * append (timelines, cevents) it is gathered and applied in key order at the commit —
 * with KV_DEFER, logged in cpend and put into cmsgs later (docs/STORAGE.md) — and every
 * read of the index merges what is not in cmsgs yet: nothing can tell the difference.
 * @param watch  report @p ckey to kv_cmsg_news if it had no ids before.
 * @return 0 or rc.
 */
int kv_cmsg_add(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t id, bool watch);

/**
 * Look the watched keys up (without KV_DEFER: apply the gathered index appends now) and
 * call @p cb for every watched key that had no ids before they came (since the last call
 * in this transaction), with the smallest id it got. A non-zero return stops.
 * @return 0 or rc.
 */
int kv_cmsg_news(kv_txn_t *txn,
                 int (*cb)(void *ctx, const uint8_t *ckey, size_t klen, uint64_t first),
                 void *ctx);

/**
 * Page a conversation backwards: the newest ids below @p before (0: from the newest),
 * written to @p ids newest first.
 * @param[out] more  true when older ids exist beyond the page.
 * @return 0 or rc.
 */
int kv_cmsg_before(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t before,
                   uint64_t *ids, size_t max, size_t *n, bool *more);

/** Ids of a conversation after @p after, ascending, like kv_timeline_page. */
int kv_cmsg_after(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t after,
                  uint64_t *ids, size_t max, size_t *n, uint64_t *total_after);

/**
 * How many ids of conversation @p ckey lie in (@p after, @p up_to] (@p up_to UINT64_MAX:
 * no end), counted a DUPFIXED page at a time. @return 0 or rc.
 */
int kv_cmsg_count(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t after,
                  uint64_t up_to, uint64_t *out);

/** The newest id of conversation @p ckey at or below @p up_to (0: none). @return 0 or rc. */
int kv_cmsg_last(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t up_to,
                 uint64_t *out);

/** Remove a conversation key and all its ids (write txn; migrations). @return 0 or rc. */
int kv_cmsg_drop(kv_txn_t *txn, const uint8_t *ckey, size_t klen);

/**
 * The SYSTEM events of a group conversation (cevents), so that unread can be counted from
 * the conversation index without reading records: add @p id (write txn). @return 0 or rc.
 */
int kv_cevent_add(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t id);

/** As kv_cmsg_count, over a conversation's SYSTEM events. */
int kv_cevent_count(kv_txn_t *txn, const uint8_t *ckey, size_t klen, uint64_t after,
                    uint64_t up_to, uint64_t *out);

/** Where a retention pass stands between steps (zero-initialise to start a pass). */
typedef struct kv_retention {
    uint8_t key[KV_UKEY_MAX + 1 + 64]; /* resume after this key */
    size_t klen;
    int phase;                         /* 0 timelines, 1 group events, 2 msgs, 3 done */
    int sub;                           /* phase 0: 0 timelines, 1 conversation index */
} kv_retention_t;

/**
 * One bounded step of retention (write txn): remove timeline entries, conversation index
 * entries, group event entries and message records with ids below @p cutoff_id, touching at
 * most @p budget records.
 * @param[out] removed  records removed in this step.
 * @return 0 (pass continues, or done when pos->phase == 3), or rc.
 */
int kv_retention_step(kv_txn_t *txn, kv_retention_t *pos, uint64_t cutoff_id, size_t budget,
                      size_t *removed);

/* ---- inspection: statistics and listings for cimdump (kv_stat.c) --------------------- */

/**
 * Statistics of one database (LMDB's mdb_stat). @p name is the database's name as stored;
 * the pseudo names "(main)" and "(free)" stand for LMDB's unnamed database (which holds the
 * names of the others) and its free-page list.
 */
typedef struct kv_dbstat {
    char name[64];
    bool dupsort;           /* sorted duplicates (timeline, cmsgs) */
    uint32_t depth;         /* B-tree depth */
    uint64_t entries;       /* records; for a DUPSORT database every value counts */
    uint64_t branch_pages;  /* pages of the page size in kv_envinfo_t */
    uint64_t leaf_pages;
    uint64_t overflow_pages;
} kv_dbstat_t;

/**
 * Call @p cb for every database of the environment in name order (the ones this build
 * does not know too), then for "(main)" and "(free)". @p st is borrowed for the call.
 * A database this build does not open at kv_open is opened for the transaction only, so
 * no other thread of the process may open databases meanwhile (cim opens all of its own
 * at kv_open: only cimdump meets such a database).
 * @param[out] free_pages  pages on the free list (reusable), like `mdb_stat -f`; may be
 *                         NULL (then the free list is not walked).
 * @return 0, a non-zero value returned by @p cb (stops the walk), or rc.
 * @note Read or write transaction, any thread.
 */
int kv_stat_each(kv_txn_t *txn, int (*cb)(void *ctx, const kv_dbstat_t *st), void *ctx,
                 uint64_t *free_pages);

/** The environment as a whole (mdb_env_info, mdb_env_stat and the data file's size). */
typedef struct kv_envinfo {
    uint64_t map_size;     /* bytes of address space mapped (the size the file may reach) */
    uint64_t last_page;    /* highest page number in use: (last_page + 1) pages are used */
    uint64_t last_txn;     /* id of the last committed write transaction */
    uint64_t file_size;    /* data.mdb's size on disk, bytes */
    uint32_t page_size;    /* bytes */
    uint32_t max_readers;  /* reader slots in lock.mdb */
    uint32_t reader_slots; /* slots ever used (high-water mark, not the ones in use now) */
} kv_envinfo_t;

/**
 * Describe the environment.
 * @param[out] out  written only on success.
 * @return 0, or RC_ESTORE / -errno.
 * @note Any thread; no transaction needed.
 */
int kv_env_info(kv_t *kv, kv_envinfo_t *out);

/**
 * Call @p cb for every reader slot in use, in slot order: @p pid the process holding it,
 * @p txn the snapshot (transaction id) it reads, 0 when the slot is held between
 * transactions. The calling process's own open read transaction is listed too.
 * @return 0, a non-zero value returned by @p cb, or rc.
 * @note Any thread; reads the lock file's table without taking its lock, so the list is
 *       a moment's picture (LMDB's mdb_reader_list).
 */
int kv_reader_each(kv_t *kv, int (*cb)(void *ctx, long pid, uint64_t txn), void *ctx);

/**
 * Call @p cb for each device cursor of a user (cursors database) in device id order.
 * @p device is borrowed for the call. @return 0, @p cb's non-zero value, or rc.
 */
int kv_cursor_each(kv_txn_t *txn, const uint8_t *ukey, size_t klen,
                   int (*cb)(void *ctx, const char *device, uint64_t id), void *ctx);

/** The smallest message id stored (0 if none). @return 0 or rc. */
int kv_msg_first_id(kv_txn_t *txn, uint64_t *out);

/** How many message records are stored (a walk of msgs: for inspection). @return 0 or rc. */
int kv_msg_count(kv_txn_t *txn, uint64_t *out);

#endif
