/**
 * datadir: the data directory as a whole: the names of its files, whether it holds cim
 * data, and the lock that lets one cimd at a time serve it.
 *
 * Layout (docs/STORAGE.md): data.mdb and lock.mdb (the LMDB environment, kv), identity.key
 * (the server's Ed25519 identity, chan) and cimd.lock (this module's lock file). A
 * directory "holds cim data" when it is a directory with both data.mdb and identity.key.
 * cimd creates what is missing on its first start, as does `cimctl init`; every other tool
 * refuses a directory without them (datadir_check), so a mistyped --data never turns into
 * a fresh, empty data directory with a new identity.
 *
 * The lock: one cimd per data directory. Two would share one SnowFlake node id and one
 * LMDB, and issue the same message ids. cimd takes an exclusive POSIX record lock
 * (fcntl F_SETLK, F_WRLCK over the whole file) on DIR/cimd.lock before it opens anything
 * else there, and writes its pid into the file. The kernel drops the lock when the process
 * ends, however it ends (kill -9 included), so a stale lock never blocks the next start;
 * the file itself stays and is never unlinked (deleting a lock file lets two processes lock
 * two different files under one name). The lock, not the file's contents, is what counts:
 * a second cimd learns the holder's pid from the kernel (F_GETLK), and from the file only
 * when the kernel cannot tell (another pid namespace, some network file systems).
 * cimctl and cimdump never take it: LMDB's own locking (lock.mdb) orders their
 * transactions with cimd's.
 *
 * Caveats: POSIX record locks belong to the process, not to the descriptor: a process never
 * conflicts with itself (a second datadir_lock_new on the same directory in one process
 * succeeds), and closing any descriptor of cimd.lock in the process would drop the lock.
 * Only this module opens that file, and cimd takes the lock once. A file system without
 * POSIX locks (ENOLCK) makes datadir_lock_new fail: cimd then refuses to start rather than
 * run unprotected.
 *
 * Threading: every function is blocking file-system work for startup and for the tools;
 * none touches shared state, so any thread may call them, never a loop thread after start.
 */
#ifndef CIM_CORE_DATADIR_H
#define CIM_CORE_DATADIR_H

#include <stddef.h>
#include <sys/types.h>

#define DATADIR_DATA     "data.mdb"     /**< LMDB's data file (kv) */
#define DATADIR_IDENTITY "identity.key" /**< the server identity (chan) */
#define DATADIR_LOCK     "cimd.lock"    /**< the file cimd locks (datadir_lock_new) */
#define DATADIR_PATH_MAX 4096           /**< buffer size for a path built by datadir_path */

/** A held lock on a data directory; opaque. */
typedef struct datadir_lock datadir_lock_t;

/**
 * Join @p dir and a file name in it: "DIR/NAME".
 * @param[out] out     written only on success, NUL-terminated.
 * @param[in]  outlen  size of @p out.
 * @return 0, or RC_ETOOBIG (the path does not fit in @p outlen).
 */
int datadir_path(char *out, size_t outlen, const char *dir, const char *name)
    __attribute__((warn_unused_result));

/**
 * Check that @p dir holds cim data: it is a directory and has data.mdb and identity.key.
 * Creates and opens nothing (not even LMDB's lock.mdb), so a tool can refuse a wrong
 * directory before LMDB sees it. Whether data.mdb is a cim LMDB environment is left to
 * kv_open.
 * @param[out] why     on RC_ENOTFOUND, what is missing, for an error line: "no such
 *                     directory", "not a directory", "no data.mdb", "no identity.key", or
 *                     the system's reason ("Permission denied", "data.mdb: Permission
 *                     denied"); always NUL-terminated (empty on success).
 * @param[in]  whylen  size of @p why (at least 1).
 * @return 0, RC_ENOTFOUND (the directory holds no cim data; @p why says why), or
 *         RC_ETOOBIG (the path is too long).
 */
int datadir_check(const char *dir, char *why, size_t whylen) __attribute__((warn_unused_result));

/**
 * Take the exclusive lock on @p dir (which must exist) for this process and write the
 * pid into DIR/cimd.lock (created with mode 0600 when missing). Never waits.
 * @param[out] out     the held lock, written only on success; owned: release with
 *                     datadir_lock_free() (process exit releases it too).
 * @param[out] holder  on -EBUSY, the pid of the process holding the lock, or 0 when it
 *                     cannot be told; untouched otherwise. May be NULL.
 * @return 0, -EBUSY (another process holds the lock), RC_ETOOBIG (path too long), or
 *         -errno (e.g. -ENOENT: no such directory, -EACCES, -EROFS, -ENOLCK: no POSIX
 *         locks on this file system).
 */
int datadir_lock_new(const char *dir, datadir_lock_t **out, pid_t *holder)
    __attribute__((warn_unused_result));

/**
 * Release the lock: empty the file (best effort, so it names no pid that no longer holds
 * it) and close it. The file stays. NULL is a no-op.
 */
void datadir_lock_free(datadir_lock_t *lock);

#endif
