/**
 * backup: a hot copy of a data directory, and putting one back (cimctl backup / restore).
 *
 * A backup is a directory (mode 0700) holding what a data directory needs to start, each
 * file mode 0600: data.mdb, a compacted copy of the LMDB environment made by LMDB itself
 * (kv_copy: one read snapshot, free pages left out, so it is as small as the data), and
 * identity.key, the server's identity, without which every client would have to pin a new
 * key. lock.mdb and cimd.lock are not copied: they are made again on the first start. So
 * a backup is itself a data directory (cimdump can read it), but is not meant to be served:
 * restore copies it to the directory cimd will use.
 *
 * backup_make works while cimd serves the source: it opens the environment read-only (as
 * cimdump does) and takes no lock; cimd's writers are never blocked. A message is in the
 * backup when its commit came before the copy's snapshot, as for any reader. It refuses a
 * destination that exists and is not an empty directory.
 *
 * backup_restore refuses a destination that exists and is not an empty directory (a live
 * data directory is never empty), takes the destination's cimd lock while it copies (a
 * cimd started meanwhile on it refuses to start), copies both files, checks that the
 * result opens (LMDB, cim schema, identity key), and leaves the destination as it found it
 * on any failure.
 *
 * Every file written is fsynced, and so is its directory, before success is reported.
 *
 * Threading: blocking file-system work for the tools; any thread, no shared state.
 */
#ifndef CIM_CORE_BACKUP_H
#define CIM_CORE_BACKUP_H

#include <stddef.h>
#include <stdint.h>

/**
 * Copy the data directory @p data into @p dir (created when missing; its parent must
 * exist).
 * @param[out] why     on failure, one line saying what went wrong (for "cimctl: <why>"),
 *                     NUL-terminated; untouched on success.
 * @param[out] bytes   on success, the size of the copied data.mdb; may be NULL.
 * @return 0, RC_ENOTFOUND (@p data holds no cim data), RC_EEXIST (@p dir exists and is not
 *         an empty directory), RC_ETOOBIG (a path too long), RC_ESTORE or -errno.
 *         Nothing is left in @p dir on failure (a directory this call made is removed).
 */
int backup_make(const char *data, const char *dir, char *why, size_t whylen,
                uint64_t *bytes) __attribute__((warn_unused_result));

/**
 * Copy the backup @p dir into the data directory @p data, which must not exist or be an
 * empty directory.
 * @param[out] why  as for backup_make.
 * @param[out] pub  on success, the restored identity's public key (32 bytes); may be NULL.
 * @return 0, RC_ENOTFOUND (@p dir is no backup: no data.mdb or identity.key), RC_EEXIST
 *         (@p data exists and is not an empty directory), -EBUSY (a cimd holds @p data's
 *         lock), RC_ESTORE / RC_ECRYPTO (the copy does not open: not a cim environment, or
 *         a bad identity key), RC_ETOOBIG or -errno. On failure @p data is as it was.
 */
int backup_restore(const char *dir, const char *data, char *why, size_t whylen,
                   uint8_t pub[32]) __attribute__((warn_unused_result));

#endif
