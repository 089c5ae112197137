/* Unit tests of src/core/datadir.c: the data directory check and cimd's lock. Record
 * locks never conflict within one process, so the rival is a forked child. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/datadir.h"
#include "support/test.h"

static void touch(const char *dir, const char *name)
{
    char path[256];
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ASSERT_TRUE(fd >= 0);
    close(fd);
}

/* The pid written in DIR/cimd.lock (0: empty). Read by a child: closing a descriptor of
 * the file in this process would drop a lock this process holds (datadir.h, Caveats). */
static long file_pid(const char *dir)
{
    char path[256], buf[32] = {0};
    int pfd[2], status;
    ssize_t n;
    pid_t pid;

    snprintf(path, sizeof(path), "%s/%s", dir, DATADIR_LOCK);
    ASSERT_OK(pipe(pfd));
    fflush(NULL);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        int fd = open(path, O_RDONLY);
        close(pfd[0]);
        if (fd < 0)
            _exit(1);
        n = read(fd, buf, sizeof(buf) - 1);
        if (n > 0)
            (void)!write(pfd[1], buf, (size_t)n);
        _exit(0);
    }
    close(pfd[1]);
    n = read(pfd[0], buf, sizeof(buf) - 1);
    close(pfd[0]);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return n > 0 ? atol(buf) : 0;
}

/* In a child: try the lock on @p dir. Exit status 0: got it; 1: -EBUSY naming @p want;
 * 2: -EBUSY naming another pid; 3: anything else. */
static int child_try(const char *dir, pid_t want)
{
    pid_t pid;
    int status;

    fflush(NULL);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        datadir_lock_t *l = NULL;
        pid_t holder = -1;
        int rc = datadir_lock_new(dir, &l, &holder);
        if (rc == 0) {
            datadir_lock_free(l);
            _exit(0);
        }
        _exit(rc == -EBUSY ? (holder == want ? 1 : 2) : 3);
    }
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

TEST(datadir_check_what_is_missing)
{
    char dir[] = "/tmp/cimtest-datadir-XXXXXX", sub[128], why[128];
    char big[DATADIR_PATH_MAX + 16];

    ASSERT_NOT_NULL(mkdtemp(dir));
    snprintf(sub, sizeof(sub), "%s/nope", dir);
    ASSERT_RC(datadir_check(sub, why, sizeof(why)), RC_ENOTFOUND);
    ASSERT_STREQ(why, "no such directory");
    ASSERT_RC(datadir_check(dir, why, sizeof(why)), RC_ENOTFOUND);
    ASSERT_STREQ(why, "no data.mdb");
    touch(dir, DATADIR_DATA);
    ASSERT_RC(datadir_check(dir, why, sizeof(why)), RC_ENOTFOUND);
    ASSERT_STREQ(why, "no identity.key");
    snprintf(sub, sizeof(sub), "%s/%s", dir, DATADIR_DATA);
    ASSERT_RC(datadir_check(sub, why, sizeof(why)), RC_ENOTFOUND);
    ASSERT_STREQ(why, "not a directory");
    touch(dir, DATADIR_IDENTITY);
    ASSERT_OK(datadir_check(dir, why, sizeof(why)));
    ASSERT_STREQ(why, "");

    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ASSERT_RC(datadir_path(sub, sizeof(sub), big, DATADIR_DATA), RC_ETOOBIG);
    ASSERT_OK(datadir_path(sub, sizeof(sub), "/x", DATADIR_LOCK));
    ASSERT_STREQ(sub, "/x/cimd.lock");

    snprintf(sub, sizeof(sub), "rm -rf '%s'", dir);
    ASSERT_EQ(system(sub), 0);
}

TEST(datadir_lock_excludes_other_processes)
{
    char dir[] = "/tmp/cimtest-datadir-XXXXXX", sub[128];
    datadir_lock_t *l = NULL;
    pid_t holder = 0;
    struct stat sb;

    ASSERT_NOT_NULL(mkdtemp(dir));
    ASSERT_EQ(child_try(dir, 0), 0); /* free: a child takes and releases it */
    ASSERT_EQ(file_pid(dir), 0);     /* and empties the file on release */

    ASSERT_OK(datadir_lock_new(dir, &l, &holder));
    ASSERT_EQ(file_pid(dir), (long)getpid());
    ASSERT_EQ(child_try(dir, getpid()), 1); /* busy, and the holder is us */
    ASSERT_EQ(child_try(dir, getpid()), 1);
    datadir_lock_free(l);
    ASSERT_EQ(file_pid(dir), 0);
    ASSERT_EQ(stat(dir, &sb), 0);
    ASSERT_EQ(child_try(dir, 0), 0); /* released */

    /* A stale pid in the file (a holder killed with SIGKILL) blocks nothing. */
    {
        char path[160];
        FILE *f;
        snprintf(path, sizeof(path), "%s/%s", dir, DATADIR_LOCK);
        ASSERT_NOT_NULL(f = fopen(path, "w"));
        fputs("999999\n", f);
        fclose(f);
    }
    ASSERT_EQ(child_try(dir, 0), 0);

    /* No directory: the file system's error, nothing created. */
    snprintf(sub, sizeof(sub), "%s/nope", dir);
    ASSERT_RC(datadir_lock_new(sub, &l, &holder), -ENOENT);
    ASSERT_TRUE(stat(sub, &sb) < 0);

    snprintf(sub, sizeof(sub), "rm -rf '%s'", dir);
    ASSERT_EQ(system(sub), 0);
}

/* The lock dies with its holder, however it dies. */
TEST(datadir_lock_dies_with_sigkill)
{
    char dir[] = "/tmp/cimtest-datadir-XXXXXX", sub[128];
    int pfd[2], status;
    char c;
    pid_t pid;

    ASSERT_NOT_NULL(mkdtemp(dir));
    ASSERT_OK(pipe(pfd));
    fflush(NULL);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        datadir_lock_t *l = NULL;
        close(pfd[0]);
        if (datadir_lock_new(dir, &l, NULL) != 0)
            _exit(1);
        (void)!write(pfd[1], "k", 1);
        for (;;)
            pause();
    }
    close(pfd[1]);
    ASSERT_EQ(read(pfd[0], &c, 1), 1);
    close(pfd[0]);
    ASSERT_EQ(file_pid(dir), (long)pid);
    ASSERT_EQ(child_try(dir, pid), 1);
    kill(pid, SIGKILL);
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_EQ(file_pid(dir), (long)pid); /* stale text left behind ... */
    ASSERT_EQ(child_try(dir, 0), 0);     /* ... and no lock */

    snprintf(sub, sizeof(sub), "rm -rf '%s'", dir);
    ASSERT_EQ(system(sub), 0);
}
