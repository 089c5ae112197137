#include "core/backup.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/chan.h"
#include "core/datadir.h"
#include "core/kv.h"
#include "core/mem.h"
#include "core/rc.h"

#define COPY_BUF (1u << 20)

/* The files a backup holds, in the order they are written. */
static const char *const files[] = {DATADIR_DATA, DATADIR_IDENTITY};
#define NFILES (sizeof(files) / sizeof(files[0]))

/* A destination directory being filled: what to undo if it fails. */
typedef struct dest {
    const char *dir;
    bool owned;        /* dest_open found it missing or empty: all in it is this call's */
    bool made_dir;     /* this call created it */
    bool made[NFILES]; /* this call created files[i] in it */
    char *why;
    size_t whylen;
} dest_t;

static __attribute__((format(printf, 3, 4))) int say(dest_t *d, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(d->why, d->whylen, fmt, ap); /* a cut reason is still a reason */
    va_end(ap);
    return rc;
}

/* @return 0 when @p dir is a directory with no entries, 1 when it does not exist, else
 *         RC_EEXIST (not a directory, or entries) or -errno. */
static int empty_or_missing(const char *dir)
{
    struct dirent *e;
    struct stat sb;
    DIR *dh;
    int rc = 0;

    if (stat(dir, &sb) < 0)
        return errno == ENOENT ? 1 : -errno;
    if (!S_ISDIR(sb.st_mode))
        return RC_EEXIST;
    if ((dh = opendir(dir)) == NULL)
        return -errno;
    while (rc == 0 && (e = readdir(dh)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            rc = RC_EEXIST;
    closedir(dh);
    return rc;
}

/* Make sure d->dir exists, is empty, and is ours (mode 0700). */
static int dest_open(dest_t *d, const char *role)
{
    int rc = empty_or_missing(d->dir);

    if (rc == RC_EEXIST && datadir_check(d->dir, d->why, d->whylen) == 0)
        return say(d, rc, "%s %s already holds cim data (a data directory, live or not): "
                          "give a new or empty directory; nothing changed", role, d->dir);
    if (rc == RC_EEXIST)
        return say(d, rc, "%s %s exists and is not an empty directory: give a new or empty "
                          "one; nothing changed", role, d->dir);
    if (rc < 0)
        return say(d, rc, "cannot read %s %s: %s", role, d->dir, strerror(-rc));
    if (rc == 1) {
        if (mkdir(d->dir, 0700) < 0)
            return say(d, -errno, "cannot create %s %s: %s", role, d->dir, strerror(errno));
        d->made_dir = true;
    }
    d->owned = true;
    if (chmod(d->dir, 0700) < 0)
        return say(d, -errno, "cannot make %s %s private (mode 0700): %s", role, d->dir,
                   strerror(errno));
    return 0;
}

/* Create files[i] in the destination, mode 0600, refusing one that is there. */
static int dest_create(dest_t *d, size_t i, int *fd)
{
    char path[DATADIR_PATH_MAX];

    if (datadir_path(path, sizeof(path), d->dir, files[i]) < 0)
        return say(d, RC_ETOOBIG, "path too long: %s/%s", d->dir, files[i]);
    *fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (*fd < 0)
        return say(d, -errno, "cannot create %s: %s", path, strerror(errno));
    d->made[i] = true;
    /* 0600 whatever the umask: the key and the messages are for the server's user only */
    if (fchmod(*fd, 0600) < 0)
        return say(d, -errno, "cannot set the mode of %s: %s", path, strerror(errno));
    return 0;
}

/* fsync and close @p fd (always closed). */
static int dest_finish(dest_t *d, size_t i, int fd)
{
    int rc = fsync(fd) < 0 ? -errno : 0;

    if (close(fd) < 0 && rc == 0)
        rc = -errno;
    if (rc < 0)
        return say(d, rc, "cannot write %s/%s: %s", d->dir, files[i], strerror(-rc));
    return 0;
}

/* Make the new entries durable: fsync the directory itself. */
static int dest_sync(dest_t *d)
{
    int fd = open(d->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;

    if (fd < 0 || fsync(fd) < 0)
        rc = -errno;
    if (fd >= 0)
        close(fd);
    if (rc < 0)
        return say(d, rc, "cannot sync %s: %s", d->dir, strerror(-rc));
    return 0;
}

/* After a failure: remove what this call made, so the destination is as it was. A
 * destination that was not found empty is never touched. */
static void dest_undo(dest_t *d)
{
    char path[DATADIR_PATH_MAX];
    /* Made by the checks of a restore (kv_open, the cimd lock). */
    static const char *const extra[] = {"lock.mdb", DATADIR_LOCK};

    if (!d->owned)
        return;
    for (size_t i = 0; i < NFILES; i++)
        if (d->made[i] && datadir_path(path, sizeof(path), d->dir, files[i]) == 0)
            (void)unlink(path); /* best effort: the error already reported matters more */
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
        if (datadir_path(path, sizeof(path), d->dir, extra[i]) == 0)
            (void)unlink(path); /* best effort, as above */
    if (d->made_dir)
        (void)rmdir(d->dir); /* best effort, as above */
}

/* Copy the file @p name of @p src into the destination as files[i]. */
static int copy_file(dest_t *d, size_t i, const char *src)
{
    char path[DATADIR_PATH_MAX];
    uint8_t *buf = NULL;
    int in = -1, out = -1, rc;
    ssize_t n;

    if (datadir_path(path, sizeof(path), src, files[i]) < 0)
        return say(d, RC_ETOOBIG, "path too long: %s/%s", src, files[i]);
    if ((in = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return say(d, -errno, "cannot open %s: %s", path, strerror(errno));
    if ((rc = dest_create(d, i, &out)) < 0)
        goto out;
    buf = mem_alloc(COPY_BUF);
    while ((n = read(in, buf, COPY_BUF)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = say(d, -errno, "cannot read %s: %s", path, strerror(errno));
            goto out;
        }
        for (ssize_t off = 0, w; off < n; off += w) {
            if ((w = write(out, buf + off, (size_t)(n - off))) < 0 && errno == EINTR)
                w = 0;
            else if (w < 0) {
                rc = say(d, -errno, "cannot write %s/%s: %s", d->dir, files[i], strerror(errno));
                goto out;
            }
        }
    }
    rc = dest_finish(d, i, out);
    out = -1;
out:
    if (out >= 0)
        close(out);
    close(in);
    mem_free(buf);
    return rc;
}

/* The identity key at DIR/identity.key: loadable, and its public key into @p pub. */
static int check_identity(dest_t *d, const char *dir, uint8_t pub[CHAN_KEY])
{
    char path[DATADIR_PATH_MAX];
    chan_identity_t *id = NULL;
    int rc;

    if (datadir_path(path, sizeof(path), dir, DATADIR_IDENTITY) < 0)
        return say(d, RC_ETOOBIG, "path too long: %s/%s", dir, DATADIR_IDENTITY);
    if ((rc = chan_identity_open(path, &id)) < 0)
        return say(d, rc, "%s is not a usable identity key: %s", path, rc_str(rc));
    chan_identity_public(id, pub);
    chan_identity_free(id);
    return 0;
}

int backup_make(const char *data, const char *dir, char *why, size_t whylen, uint64_t *bytes)
{
    dest_t d = {.dir = dir, .why = why, .whylen = whylen};
    uint8_t pub[CHAN_KEY];
    char miss[256];
    struct stat sb;
    kv_t *kv = NULL;
    int fd = -1, rc;

    if ((rc = datadir_check(data, miss, sizeof(miss))) < 0)
        return say(&d, rc, "no cim data in %s: %s", data, rc == RC_ENOTFOUND ? miss : rc_str(rc));
    /* The key first: a source whose key does not load is no data directory worth copying. */
    if ((rc = check_identity(&d, data, pub)) < 0)
        return rc;
    if ((rc = dest_open(&d, "backup directory")) < 0)
        goto out;
    if ((rc = kv_open(data, KV_RDONLY, &kv)) < 0) {
        rc = say(&d, rc, "cannot open the database in %s: %s", data, rc_str(rc));
        goto out;
    }
    if ((rc = dest_create(&d, 0, &fd)) < 0)
        goto out;
    if ((rc = kv_copy(kv, fd)) < 0) {
        rc = say(&d, rc, "cannot copy the database of %s: %s", data, rc_str(rc));
        goto out;
    }
    if (fstat(fd, &sb) == 0 && bytes != NULL)
        *bytes = (uint64_t)sb.st_size;
    rc = dest_finish(&d, 0, fd);
    fd = -1;
    if (rc < 0 || (rc = copy_file(&d, 1, data)) < 0 || (rc = dest_sync(&d)) < 0)
        goto out;
out:
    if (fd >= 0)
        close(fd);
    kv_close(kv);
    if (rc < 0)
        dest_undo(&d);
    return rc;
}

int backup_restore(const char *dir, const char *data, char *why, size_t whylen,
                   uint8_t pub[32])
{
    dest_t d = {.dir = data, .why = why, .whylen = whylen};
    datadir_lock_t *lock = NULL;
    uint8_t key[CHAN_KEY];
    char miss[256];
    pid_t holder = 0;
    kv_t *kv = NULL;
    int rc;

    if ((rc = datadir_check(dir, miss, sizeof(miss))) < 0)
        return say(&d, rc, "%s is no cim backup: %s", dir, rc == RC_ENOTFOUND ? miss : rc_str(rc));
    if ((rc = dest_open(&d, "data directory")) < 0)
        goto out;
    /* Keep a cimd from starting on it while it is half written. */
    if ((rc = datadir_lock_new(data, &lock, &holder)) < 0) {
        d.owned = false; /* another process may be filling it: leave it alone */
        if (rc == -EBUSY)
            rc = say(&d, rc, "a cimd (pid %ld) is starting on %s: stop it first; nothing changed",
                     (long)holder, data);
        else
            rc = say(&d, rc, "cannot lock %s: %s", data, rc_str(rc));
        goto out;
    }
    for (size_t i = 0; i < NFILES; i++)
        if ((rc = copy_file(&d, i, dir)) < 0)
            goto out;
    if ((rc = dest_sync(&d)) < 0)
        goto out;
    /* What cimd will check at start, checked now: a cim environment of this schema, and
     * the key. */
    if ((rc = kv_open(data, KV_RDONLY, &kv)) < 0) {
        rc = say(&d, rc, "%s/%s does not open as cim data: %s", dir, DATADIR_DATA, rc_str(rc));
        goto out;
    }
    if ((rc = check_identity(&d, data, key)) < 0)
        goto out;
    if (pub != NULL)
        memcpy(pub, key, CHAN_KEY);
out:
    kv_close(kv);
    if (rc < 0)
        dest_undo(&d);
    datadir_lock_free(lock);
    return rc;
}
