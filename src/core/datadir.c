#include "core/datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/mem.h"
#include "core/rc.h"

#define LOCK_TRIES 3 /* rounds of "locked" → "released before we could ask by whom" */

struct datadir_lock {
    int fd;
};

int datadir_path(char *out, size_t outlen, const char *dir, const char *name)
{
    int n = snprintf(out, outlen, "%s/%s", dir, name);

    if (n < 0 || (size_t)n >= outlen)
        return RC_ETOOBIG;
    return 0;
}

/* @return 0 when @p name exists in @p dir, else RC_ENOTFOUND with @p why filled. */
static int check_file(const char *dir, const char *name, char *why, size_t whylen)
{
    char path[DATADIR_PATH_MAX];
    struct stat sb;
    int rc;

    if ((rc = datadir_path(path, sizeof(path), dir, name)) < 0)
        return rc;
    if (stat(path, &sb) < 0) {
        if (errno == ENOENT)
            snprintf(why, whylen, "no %s", name);
        else
            snprintf(why, whylen, "%s: %s", name, strerror(errno));
        return RC_ENOTFOUND;
    }
    return 0;
}

int datadir_check(const char *dir, char *why, size_t whylen)
{
    struct stat sb;
    int rc;

    why[0] = '\0';
    if (stat(dir, &sb) < 0) {
        snprintf(why, whylen, "%s", errno == ENOENT ? "no such directory" : strerror(errno));
        return RC_ENOTFOUND;
    }
    if (!S_ISDIR(sb.st_mode)) {
        snprintf(why, whylen, "not a directory");
        return RC_ENOTFOUND;
    }
    /* data.mdb first: it is what was there before identity.key in every older layout, and
     * the more telling of the two when both are missing. */
    if ((rc = check_file(dir, DATADIR_DATA, why, whylen)) < 0 ||
        (rc = check_file(dir, DATADIR_IDENTITY, why, whylen)) < 0)
        return rc;
    return 0;
}

/* The pid the holder wrote into the file, 0 when there is none (yet). Only consulted when
 * the kernel cannot name the holder. */
static pid_t read_pid(int fd)
{
    char buf[32];
    ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
    long v = 0;

    if (n <= 0)
        return 0;
    buf[n] = '\0';
    for (ssize_t i = 0; i < n && buf[i] >= '0' && buf[i] <= '9'; i++) {
        v = v * 10 + (buf[i] - '0');
        if (v > 0x3fffffff)
            return 0;
    }
    return (pid_t)v;
}

/* Replace the file's contents with "PID\n". */
static int write_pid(int fd)
{
    char buf[32];
    int n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
    ssize_t w;

    if (ftruncate(fd, 0) < 0)
        return -errno;
    w = pwrite(fd, buf, (size_t)n, 0);
    if (w < 0)
        return -errno;
    return w == n ? 0 : -EIO;
}

int datadir_lock_new(const char *dir, datadir_lock_t **out, pid_t *holder)
{
    char path[DATADIR_PATH_MAX];
    datadir_lock_t *lock;
    int fd = -1, rc;

    if ((rc = datadir_path(path, sizeof(path), dir, DATADIR_LOCK)) < 0)
        return rc;
    /* O_CLOEXEC: a program cimd might ever exec must not inherit the descriptor (record
     * locks are not inherited, but a stray descriptor keeps the file open). */
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
        return -errno;
    for (int i = 0;; i++) {
        struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};

        if (fcntl(fd, F_SETLK, &fl) == 0)
            break;
        if (errno == EINTR)
            continue;
        if (errno != EACCES && errno != EAGAIN) {
            rc = -errno;
            goto fail;
        }
        /* Held: ask the kernel by whom. It may have been released in between (the holder
         * just exited): then try again, a few times at most. */
        fl = (struct flock){.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
        if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type == F_UNLCK && i + 1 < LOCK_TRIES)
            continue;
        if (holder != NULL)
            *holder = fl.l_type != F_UNLCK && fl.l_pid > 0 ? fl.l_pid : read_pid(fd);
        rc = -EBUSY;
        goto fail;
    }
    /* The pid in the file is for people (and for a rival the kernel cannot name it to);
     * the lock is held whether or not it could be written, e.g. on a full disk. */
    (void)write_pid(fd); /* best effort: informational only */
    lock = mem_alloc(sizeof(*lock));
    lock->fd = fd;
    *out = lock;
    return 0;
fail:
    close(fd);
    return rc;
}

void datadir_lock_free(datadir_lock_t *lock)
{
    if (lock == NULL)
        return;
    /* Emptied while still held, so no rival ever reads a pid that is gone; closing the
     * (only) descriptor releases the record lock. */
    (void)!ftruncate(lock->fd, 0); /* best effort: the lock is what counts, not the text */
    close(lock->fd);
    mem_free(lock);
}
