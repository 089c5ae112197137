/* Integration: the data directory (issue 8, defects 11 and 12), through the real programs.
 *
 * One cimd per data directory: a second one exits at once, naming the holder's pid, while
 * the first keeps serving; a kill -9 leaves no lock behind; cimctl and cimdump keep working
 * beside a running cimd. Only cimd and `cimctl init` make a data directory: the tools
 * refuse one that holds no cim data and create nothing there; cimd's ready line says when
 * it created the identity key. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "client/cim.h"
#include "core/chan.h"
#include "core/kv.h"
#include "support/server.h"
#include "support/test.h"

#define TOOL_MS 10000

/* Run a program of this variant to its end, stdout and stderr kept in @p tt.
 * @return its exit status (-1: killed, by a signal or after @p ms). */
#define RUN_MS(tt, ms, ...)                                                                        \
    (tsrv_tool_start((tt), NULL, 0, __VA_ARGS__, (char *)NULL), tsrv_tool_finish((tt), (ms)))
#define RUN(tt, ...) RUN_MS(tt, TOOL_MS, __VA_ARGS__)

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s != '\0'; s++)
        n += *s == '\n';
    return n;
}

/* The entries of @p dir, "." and ".." aside; -1 when it cannot be opened. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static bool exists(const char *dir, const char *name)
{
    char path[512];
    struct stat sb;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return stat(path, &sb) == 0;
}

/* The pid written in DIR/cimd.lock, 0 when empty, -1 when there is no such file. */
static long lock_file_pid(const char *dir)
{
    char path[512], buf[64] = {0};
    FILE *f;

    snprintf(path, sizeof(path), "%s/cimd.lock", dir);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    if (fgets(buf, sizeof(buf), f) == NULL)
        buf[0] = '\0';
    fclose(f);
    return atol(buf);
}

/* A second cimd on t's directory: it must exit 1 within a moment, with one line that names
 * t's pid, and never get ready. */
static void expect_second_refused(const tsrv_t *t)
{
    tsrv_tool_t tt;
    char pid[48];
    int64_t t0 = now_ms();
    int st;

    st = RUN_MS(&tt, 4000, "cimd", "--data", t->dir, "--listen", "127.0.0.1:0", "--durability",
                "nosync");
    if (st != 1)
        fprintf(stderr, "second cimd: exit %d, stderr:\n%s\n", st, tt.err);
    ASSERT_EQ(st, 1);
    ASSERT_LT(now_ms() - t0, 3000);
    snprintf(pid, sizeof(pid), "(pid %ld)", (long)t->pid);
    ASSERT_NOT_NULL(strstr(tt.err, pid));
    ASSERT_NOT_NULL(strstr(tt.err, "in use by another cimd"));
    ASSERT_NOT_NULL(strstr(tt.err, t->dir));
    ASSERT_EQ(count_lines(tt.err), 1);
    ASSERT_NULL(strstr(tt.err, "cimd ready"));
    ASSERT_EQ(tt.out_len, 0);
}

/* (a) A second cimd on a served directory exits non-zero at once, naming the holder; the
 * first one keeps serving (a login through libcim afterwards) and still holds the lock. */
TEST_TIMEOUT(e2e_datadir_second_cimd_refused, 30)
{
    tsrv_t t;

    tsrv_start(&t, NULL);
    cimc_close(tsrv_login(&t, "alice", "d1", NULL));
    expect_second_refused(&t);
    ASSERT_EQ(lock_file_pid(t.dir), (long)t.pid);
    cimc_close(tsrv_login(&t, "alice", "d2", NULL));
    cimc_close(tsrv_login(&t, "bob", "d1", NULL));
    expect_second_refused(&t); /* and again: the refusal took nothing from the first */
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* (b) kill -9 leaves cimd.lock behind with a dead pid in it; that stale file does not block
 * the next start (the kernel dropped the lock), and the new cimd holds the lock in turn. */
TEST_TIMEOUT(e2e_datadir_kill9_leaves_no_stale_lock, 30)
{
    tsrv_t t;
    uint8_t key[32];
    pid_t old;

    tsrv_start(&t, NULL);
    memcpy(key, t.key, sizeof(key));
    old = t.pid;
    ASSERT_EQ(lock_file_pid(t.dir), (long)old);
    tsrv_kill(&t);
    ASSERT_EQ(lock_file_pid(t.dir), (long)old); /* stale contents: they must not matter */
    tsrv_restart(&t);                           /* aborts unless it gets ready */
    ASSERT_NE(t.pid, old);
    ASSERT_TRUE(memcmp(key, t.key, sizeof(key)) == 0);
    ASSERT_TRUE(!t.new_identity);
    ASSERT_EQ(lock_file_pid(t.dir), (long)t.pid);
    expect_second_refused(&t);
    cimc_close(tsrv_login(&t, "alice", "d1", NULL));
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* (c) cimctl and cimdump beside a running cimd: they do not take its lock. `cimctl init`
 * on the served directory is refused and changes nothing. */
TEST_TIMEOUT(e2e_datadir_tools_beside_cimd, 60)
{
    tsrv_t t;
    tsrv_tool_t tt;
    char hex[65];
    cim_LoginReq req = cim_LoginReq_init_zero;
    cim_LoginRsp rsp = cim_LoginRsp_init_zero;
    cimc_t *c;

    tsrv_start(&t, NULL);
    chan_hex(t.key, hex);
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "show-key"), 0);
    ASSERT_TRUE(strncmp(tt.out, hex, 64) == 0);

    /* a token from cimctl logs in to the running cimd */
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "token", "--user", "bob", "--ttl", "600"), 0);
    tt.out[strcspn(tt.out, "\r\n")] = '\0';
    snprintf(req.user, sizeof(req.user), "bob");
    snprintf(req.device_id, sizeof(req.device_id), "d1");
    ASSERT_TRUE(strlen(tt.out) < sizeof(req.token));
    memcpy(req.token, tt.out, strlen(tt.out) + 1);
    req.device_kind = cim_DeviceKind_DESKTOP;
    c = tsrv_connect(&t);
    ASSERT_OK(cimc_login(c, &req, &rsp));
    ASSERT_EQ(rsp.code, cim_Code_OK);
    cimc_close(c);

    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "user", "add", "carol"), 0);
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "user", "list"), 0);
    ASSERT_NOT_NULL(strstr(tt.out, "carol\n"));
    ASSERT_EQ(RUN(&tt, "cimdump", "--data", t.dir, "stats"), 0);
    ASSERT_NOT_NULL(strstr(tt.out, t.dir));
    ASSERT_EQ(RUN(&tt, "cimdump", "--data", t.dir, "--json", "users"), 0);
    ASSERT_NOT_NULL(strstr(tt.out, "\"carol\""));

    /* init does not re-make a directory that holds cim data */
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "init"), 1);
    ASSERT_NOT_NULL(strstr(tt.err, "already holds cim data"));
    ASSERT_EQ(count_lines(tt.err), 1);
    ASSERT_EQ(tt.out_len, 0);
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "show-key"), 0);
    ASSERT_TRUE(strncmp(tt.out, hex, 64) == 0);

    /* the server is untouched by all that and still holds its directory */
    cimc_close(tsrv_login(&t, "carol", "d1", NULL));
    expect_second_refused(&t);
    ASSERT_EQ(tsrv_stop(&t), 0);
}

/* One tool on @p dir must fail: exit 1, nothing on stdout, one line on stderr that says
 * the directory holds no cim data (and, from cimctl, how to make one). */
static void expect_no_data(const char *dir, const char *prog, const char *a1, const char *a2,
                           const char *a3, const char *a4)
{
    tsrv_tool_t tt;
    char want[600];
    int st;

    st = RUN(&tt, prog, "--data", dir, a1, a2, a3, a4);
    if (st != 1 || strstr(tt.err, "no cim data in ") == NULL)
        fprintf(stderr, "%s --data %s %s: exit %d, stdout:\n%s\nstderr:\n%s\n", prog, dir, a1, st,
                tt.out, tt.err);
    ASSERT_EQ(st, 1);
    ASSERT_EQ(tt.out_len, 0);
    ASSERT_EQ(count_lines(tt.err), 1);
    snprintf(want, sizeof(want), "%s: no cim data in %s: ", prog, dir);
    ASSERT_NOT_NULL(strstr(tt.err, want));
    if (strcmp(prog, "cimctl") == 0) {
        snprintf(want, sizeof(want), "cimctl --data %s init", dir);
        ASSERT_NOT_NULL(strstr(tt.err, want));
    }
}

/* Every cimctl command and cimdump on @p dir. */
static void expect_all_refuse(const char *dir)
{
    expect_no_data(dir, "cimctl", "show-key", NULL, NULL, NULL);
    expect_no_data(dir, "cimctl", "token", "--user", "alice", NULL);
    expect_no_data(dir, "cimctl", "user", "add", "alice", NULL);
    expect_no_data(dir, "cimctl", "user", "list", NULL, NULL);
    expect_no_data(dir, "cimctl", "app", "add", "acme", NULL);
    expect_no_data(dir, "cimctl", "app", "show", "default", NULL);
    expect_no_data(dir, "cimctl", "app", "list", NULL, NULL);
    expect_no_data(dir, "cimdump", "stats", NULL, NULL, NULL);
    expect_no_data(dir, "cimdump", "users", NULL, NULL, NULL);
}

/* (d) cimctl and cimdump refuse a directory that holds no cim data: missing (a typo),
 * empty, or with LMDB but no identity key; they create nothing in any of them. */
TEST_TIMEOUT(e2e_datadir_tools_refuse_no_data, 60)
{
    char base[] = "/tmp/cimtest-nodata-XXXXXX";
    char missing[128], empty[128], partial[128], path[160];
    kv_t *kv = NULL;
    struct stat sb;

    ASSERT_NOT_NULL(mkdtemp(base));
    snprintf(missing, sizeof(missing), "%s/typo/data", base);
    snprintf(empty, sizeof(empty), "%s/empty", base);
    snprintf(partial, sizeof(partial), "%s/partial", base);
    ASSERT_OK(mkdir(empty, 0700));
    /* LMDB with the default app, as if a first start died before the identity key */
    ASSERT_OK(kv_open(partial, 0, &kv));
    ASSERT_OK(kv_app_ensure_default(kv));
    kv_close(kv);
    ASSERT_EQ(count_entries(partial), 2); /* data.mdb, lock.mdb */

    expect_all_refuse(missing);
    snprintf(path, sizeof(path), "%s/typo", base);
    ASSERT_TRUE(stat(path, &sb) < 0 && errno == ENOENT);
    ASSERT_EQ(count_entries(base), 2); /* empty, partial: no "typo" */

    expect_all_refuse(empty);
    ASSERT_EQ(count_entries(empty), 0);

    expect_all_refuse(partial);
    ASSERT_EQ(count_entries(partial), 2);
    ASSERT_TRUE(!exists(partial, "identity.key"));

    /* a file where the directory should be */
    snprintf(path, sizeof(path), "%s/partial/data.mdb", base);
    expect_no_data(path, "cimctl", "show-key", NULL, NULL, NULL);
    expect_no_data(path, "cimdump", "stats", NULL, NULL, NULL);

    snprintf(path, sizeof(path), "rm -rf '%s'", base);
    ASSERT_EQ(system(path), 0);
}

/* (e) `cimctl init` makes a data directory (parents too) whose key show-key prints and a
 * cimd started on it serves, without "new identity"; a cimd that makes its own directory
 * says "new identity" once, and not on its next start. */
TEST_TIMEOUT(e2e_datadir_init_then_cimd, 60)
{
    char base[] = "/tmp/cimtest-init-XXXXXX";
    char dir[128], key[65], note[300], path[160];
    tsrv_tool_t tt;
    tsrv_t t;

    ASSERT_NOT_NULL(mkdtemp(base));
    snprintf(dir, sizeof(dir), "%s/srv/data", base);
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", dir, "init"), 0);
    ASSERT_EQ(tt.out_len, 65);
    ASSERT_EQ(tt.out[64], '\n');
    snprintf(key, sizeof(key), "%.64s", tt.out);
    ASSERT_TRUE(exists(dir, "data.mdb") && exists(dir, "identity.key"));
    ASSERT_TRUE(!exists(dir, "cimd.lock")); /* the tools never take cimd's lock */

    ASSERT_EQ(RUN(&tt, "cimctl", "--data", dir, "show-key"), 0);
    ASSERT_TRUE(strncmp(tt.out, key, 64) == 0);
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", dir, "app", "list"), 0);
    ASSERT_EQ(strcmp(tt.out, "default\n"), 0);
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", dir, "user", "add", "alice"), 0);
    ASSERT_EQ(RUN(&tt, "cimdump", "--data", dir, "users"), 0);
    ASSERT_NOT_NULL(strstr(tt.out, "alice"));
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", dir, "init"), 1); /* once only */
    ASSERT_NOT_NULL(strstr(tt.err, "already holds cim data"));

    /* cimd on it: the same key, not announced as new, and alice can log in */
    tsrv_start_on(&t, dir, NULL);
    chan_hex(t.key, note);
    ASSERT_EQ(strcmp(note, key), 0);
    ASSERT_TRUE(!t.new_identity);
    cimc_close(tsrv_login(&t, "alice", "d1", NULL));
    ASSERT_EQ(tsrv_stop(&t), 0);
    snprintf(path, sizeof(path), "rm -rf '%s'", base);
    ASSERT_EQ(system(path), 0);

    /* cimd on a directory without data makes it, and says so in its ready line */
    tsrv_start(&t, NULL);
    ASSERT_TRUE(t.new_identity);
    {
        FILE *f = fopen(t.log, "r");
        char line[1024];
        bool seen = false;
        ASSERT_NOT_NULL(f);
        while (fgets(line, sizeof(line), f) != NULL) {
            char *p = strstr(line, "cimd ready: listening on ");
            if (p == NULL)
                continue;
            snprintf(note, sizeof(note), " (new identity created in %s)\n", t.dir);
            seen = strlen(line) > strlen(note) &&
                   strcmp(line + strlen(line) - strlen(note), note) == 0;
        }
        fclose(f);
        ASSERT_TRUE(seen);
    }
    ASSERT_EQ(RUN(&tt, "cimctl", "--data", t.dir, "show-key"), 0);
    chan_hex(t.key, key);
    ASSERT_TRUE(strncmp(tt.out, key, 64) == 0);
    tsrv_restart(&t); /* SIGTERM, start again: the key is not new any more */
    ASSERT_TRUE(!t.new_identity);
    chan_hex(t.key, note);
    ASSERT_EQ(strcmp(note, key), 0);
    ASSERT_EQ(tsrv_stop(&t), 0);
}
